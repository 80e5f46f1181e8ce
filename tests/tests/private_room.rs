//! Private rooms: members read them, a lobby-only node gets nothing, and a raw gossipsub
//! subscriber on the room's topic sees only ciphertext.

use std::time::Duration;

use hark_node::history::shard::record_in_change;
use hark_node::Event;
use hark_proto::{Body, Envelope, Invite};
use hark_tests::process::DELIVERY;
use hark_tests::raw::RawPeer;
use hark_tests::NodeProcess;
use serde_json::json;

const SECRET: &str = "the spare key is under pump 4";

#[test]
fn only_members_read_a_private_room() {
    let mut a = NodeProcess::start("alice", &[]);
    let mut b = NodeProcess::start("bob", &["--peer", &a.addr()]);
    let mut c = NodeProcess::start("carol", &["--peer", &a.addr(), "--peer", &b.addr()]);
    let (pa, pb, pc) = (a.peer_id.clone(), b.peer_id.clone(), c.peer_id.clone());

    a.send(json!({"cmd": "create", "room": "ops"}));
    let Event::Created { room, invite } =
        a.expect("created", DELIVERY, |e| matches!(e, Event::Created { .. }))
    else {
        unreachable!()
    };
    assert_eq!(room, "ops");
    let decoded = Invite::decode(&invite).expect("the invite decodes");
    let topic = decoded.key.chat_topic();

    // An outsider on the wire, subscribed to the room's topic.
    let mut raw = RawPeer::new();
    raw.subscribe(topic.as_str());
    raw.dial(&a.addr());
    assert!(
        raw.wait_connected(&pa, DELIVERY),
        "raw peer connects to alice"
    );

    b.send(json!({"cmd": "join", "invite": invite}));
    b.expect(
        "joined",
        DELIVERY,
        |e| matches!(e, Event::Joined { room } if room == "ops"),
    );
    a.wait_presence("ops", &[&pb], DELIVERY);
    assert!(raw.wait_subscribed(&pa, topic.as_str(), DELIVERY));

    a.send(json!({"cmd": "send", "room": "ops", "text": SECRET}));
    let got = b.expect(
        "the secret",
        DELIVERY,
        |e| matches!(e, Event::Message { text, .. } if text == SECRET),
    );
    assert!(matches!(got, Event::Message { room, from, .. } if room == "ops" && from == pa));

    // The outsider's copies (presence and the message): ciphertext that only the key opens.
    let mut found = false;
    while let Some(seen) = raw.next_message(Duration::from_secs(3)) {
        assert_eq!(seen.topic, topic.as_str());
        assert!(
            !contains(&seen.data, SECRET.as_bytes()),
            "plaintext on the wire"
        );
        assert!(!contains(&seen.data, b"alice"), "author name on the wire");
        assert!(
            Envelope::decode(&seen.data).is_err(),
            "the payload is not a readable envelope"
        );
        let opened =
            hark_proto::seal::open(&decoded.key, &topic, &seen.data).expect("members can open it");
        let body = Envelope::decode(&opened).unwrap().body;
        let text = match body {
            Body::Change { change, .. } => record_in_change(&change).map(|r| r.text),
            _ => None,
        };
        if text.as_deref() == Some(SECRET) {
            found = true;
            break;
        }
    }
    assert!(found, "the raw subscriber saw the sealed message");

    // Carol is only in the lobby: a lobby message reaches her, the room's never does.
    c.wait_presence("lobby", &[&pa], DELIVERY);
    a.send(json!({"cmd": "send", "room": "lobby", "text": "sentinel"}));
    c.expect(
        "the lobby sentinel",
        DELIVERY,
        |e| matches!(e, Event::Message { text, .. } if text == "sentinel"),
    );
    c.drain();
    assert!(c.messages_with_text(SECRET).is_empty());
    assert!(!c.seen.iter().any(
        |e| matches!(e, Event::Message { room, .. } | Event::Presence { room, .. } if room == "ops")
    ));
    let _ = pc;
}

#[test]
fn rooms_and_keys_survive_a_restart_and_bad_invites_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("alice");
    let mut a = NodeProcess::start_with_dir("alice", data.clone(), "/ip4/127.0.0.1/tcp/0", &[]);
    a.send(json!({"cmd": "create", "room": "ops"}));
    let Event::Created { invite, .. } =
        a.expect("created", DELIVERY, |e| matches!(e, Event::Created { .. }))
    else {
        unreachable!()
    };
    a.send(json!({"cmd": "join", "invite": "hark:notavalidinvite"}));
    let err = a.expect("error", DELIVERY, |e| matches!(e, Event::Error { .. }));
    assert!(
        matches!(&err, Event::Error { code, .. } if code == "bad_invite"),
        "{err:?}"
    );
    let peer = a.peer_id.clone();
    assert!(a.quit().success());

    let mut a = NodeProcess::start_with_dir("alice", data, "/ip4/127.0.0.1/tcp/0", &[]);
    assert_eq!(a.peer_id, peer);
    // Creating it again is refused: the room and its key came back from the store.
    a.send(json!({"cmd": "create", "room": "ops"}));
    a.expect(
        "room_exists",
        DELIVERY,
        |e| matches!(e, Event::Error { code, .. } if code == "room_exists"),
    );
    // Joining with the stored invite is the same room: accepted.
    a.send(json!({"cmd": "join", "invite": invite}));
    a.expect(
        "joined",
        Duration::from_secs(5),
        |e| matches!(e, Event::Joined { room } if room == "ops"),
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
