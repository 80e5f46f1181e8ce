//! A hostile peer floods the lobby with garbage, oversized, wrongly keyed, forged-author,
//! malformed and replayed payloads. The receiver must not crash, must not let any of it
//! through, must keep its memory bounded, and must still deliver an honest message sent meanwhile.

use std::time::Duration;

use hark_node::history::Shard;
use hark_node::Event;
use hark_proto::{
    seal, Body, Envelope, Hlc, MessageId, MessageKind, MessageRecord, RoomKey, RoomName,
};
use hark_tests::process::{proc_status_kib, DELIVERY};
use hark_tests::raw::RawPeer;
use hark_tests::NodeProcess;
use libp2p::PeerId;
use rand::{Rng, RngCore};
use serde_json::json;

/// A chat message as a node sends it: the Automerge change adding its record to today's shard.
fn envelope(author: &PeerId, text: &str) -> Envelope {
    let record = MessageRecord {
        id: MessageId::random(&mut rand::rngs::OsRng),
        author: author.to_bytes(),
        name: "mallory".into(),
        hlc: Hlc::new(1_790_000_000_000, 0),
        kind: MessageKind::Text,
        text: text.into(),
        // Unsigned: fine from its author in person, never when relayed by anyone else.
        signature: Vec::new(),
    };
    let change = Shard::new(&author.to_bytes())
        .add_local(&record)
        .expect("a change");
    Envelope {
        author: author.to_bytes(),
        name: "mallory".into(),
        id: record.id,
        sent_at_ms: 1,
        body: Body::Change {
            shard: record.hlc.day(),
            change,
        },
    }
}

fn hostile_payloads(
    lobby: &RoomKey,
    hostile: &PeerId,
    victim: &PeerId,
    rounds: usize,
) -> Vec<Vec<u8>> {
    let mut rng = rand::rngs::OsRng;
    let topic = lobby.chat_topic();
    let mut out = Vec::new();
    for i in 0..rounds {
        // Claims to come from the victim.
        out.push(seal::seal(
            lobby,
            &topic,
            &envelope(victim, "forged by mallory").encode().unwrap(),
            &mut rng,
        ));
        // Sealed correctly, the current version, but the rest is not an envelope.
        let mut plain = vec![0xffu8; 100];
        plain[0] = hark_proto::ENVELOPE_VERSION;
        out.push(seal::seal(lobby, &topic, &plain, &mut rng));
        // Garbage of any length.
        let mut junk = vec![0u8; rng.gen_range(0..2000)];
        rng.fill_bytes(&mut junk);
        out.push(junk);
        // A valid envelope under another key.
        let other = RoomKey::random(&mut rng);
        out.push(seal::seal(
            &other,
            &topic,
            &envelope(hostile, "wrong key").encode().unwrap(),
            &mut rng,
        ));
        if i % 20 == 0 {
            // Over the envelope limit but inside the gossip frame limit.
            let mut big = vec![1u8; 64 * 1024 + 100];
            rng.fill_bytes(&mut big[1..]);
            out.push(seal::seal(lobby, &topic, &big, &mut rng));
            // Far over the gossip frame limit.
            out.push(vec![7u8; 300 * 1024]);
            // One well-formed message from mallory, then its replay in a new gossip message.
            let own = seal::seal(
                lobby,
                &topic,
                &envelope(hostile, "replayed").encode().unwrap(),
                &mut rng,
            );
            out.push(own.clone());
            out.push(own);
        }
    }
    out
}

#[test]
fn a_flood_of_hostile_payloads_does_not_stop_honest_traffic() {
    let mut a = NodeProcess::start("alice", &[]);
    let mut b = NodeProcess::start("bob", &["--peer", &a.addr()]);
    let (pa, pb) = (a.peer_id.clone(), b.peer_id.clone());
    a.wait_presence("lobby", &[&pb], DELIVERY);

    let lobby = RoomKey::public(&RoomName::parse("lobby").unwrap());
    let topic = lobby.chat_topic();
    let mut raw = RawPeer::new();
    raw.subscribe(topic.as_str());
    raw.dial(&a.addr());
    assert!(raw.wait_connected(&pa, DELIVERY));
    assert!(raw.wait_subscribed(&pa, topic.as_str(), DELIVERY));

    let victim: PeerId = pb.parse().unwrap();
    let payloads = hostile_payloads(&lobby, &raw.peer_id, &victim, 600);
    let total = payloads.len();
    let flood = raw.publish_in_background(topic.as_str(), payloads);
    b.send(json!({"cmd": "send", "room": "lobby", "text": "honest during the flood"}));
    a.expect(
        "the honest message",
        DELIVERY,
        |e| matches!(e, Event::Message { text, .. } if text == "honest during the flood"),
    );
    let sent = flood
        .recv_timeout(Duration::from_secs(60))
        .expect("the flood finishes");
    assert!(sent > total / 2, "the flood went out ({sent} of {total})");

    assert!(a.is_running(), "alice survived:\n{}", a.stderr());
    b.send(json!({"cmd": "send", "room": "lobby", "text": "honest after the flood"}));
    a.expect(
        "a message after the flood",
        DELIVERY,
        |e| matches!(e, Event::Message { text, .. } if text == "honest after the flood"),
    );

    a.drain();
    let leaked: Vec<&Event> = a
        .seen
        .iter()
        .filter(|e| matches!(e, Event::Message { text, .. } if text == "forged by mallory" || text == "wrong key"))
        .collect();
    assert!(
        leaked.is_empty(),
        "hostile payloads were delivered: {leaked:?}"
    );
    let replays = a.messages_with_text("replayed").len();
    assert!(
        replays <= 30,
        "each replayed envelope is delivered at most once ({replays} for 30 originals)"
    );
    let log = a.stderr();
    // The first rejects graylist the hostile peer (peer scoring), after which gossipsub ignores
    // it wholesale; the unit tests in node/src/validate.rs check every reason one by one.
    for reason in ["forged author", "malformed"] {
        assert!(
            log.contains(reason),
            "a drop for {reason:?} is logged:\n{log}"
        );
    }

    let peak_kib = proc_status_kib(a.pid(), "VmHWM:");
    assert!(
        peak_kib < 300 * 1024,
        "memory stays bounded: peak {peak_kib} KiB"
    );
}
