//! Blind relays on loopback: a DM written while its receiver is away reaches it through a
//! `--relay` that is no member and never had the key; the relay's files and logs hold no
//! plaintext; an outsider who knows the DM's topic and floods the relay stays within the
//! documented per-sender bound and cannot push the genuine message out.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use hark_node::store::blind::{BlindDb, Bounds, ITEM_OVERHEAD};
use hark_node::swarm::BehaviourEvent;
use hark_node::Event;
use hark_proto::blind::{BlindRequest, BlindResponse, Sealed, StoreResult};
use hark_tests::process::DELIVERY;
use hark_tests::NodeProcess;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, Message};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use serde_json::json;

const LISTEN: &str = "/ip4/127.0.0.1/tcp/0";
/// A nick and a text that must never appear in the relay's files or logs.
const NICK: &str = "ysoldequarter";
const TEXT: &str = "meet me at the north gate at 0600, bring the blue folder";

/// Alice (named `nick`) and bob, over the data dirs given, meet once directly so that each
/// knows the other's id, then both stop. Their peer ids.
fn meet_once(nick: &str, alice_dir: &Path, bob_dir: &Path) -> (String, String) {
    let mut alice = NodeProcess::start_with_dir(nick, alice_dir.to_path_buf(), LISTEN, &[]);
    let pa = alice.peer_id.clone();
    let mut bob = NodeProcess::start_with_dir(
        "bob",
        bob_dir.to_path_buf(),
        LISTEN,
        &["--peer", &alice.addr()],
    );
    let pb = bob.peer_id.clone();
    bob.expect(
        "alice connected",
        DELIVERY,
        |e| matches!(e, Event::PeerConnected { peer_id } if *peer_id == pa),
    );
    alice.expect(
        "bob connected",
        DELIVERY,
        |e| matches!(e, Event::PeerConnected { peer_id } if *peer_id == pb),
    );
    assert!(bob.quit().success());
    assert!(alice.quit().success());
    (pa, pb)
}

/// The chat topic of the DM between the identity stored in `dir` (not running) and `peer`.
fn dm_topic(dir: &Path, peer: &str) -> String {
    let store = hark_node::store::Store::open(dir).expect("the stopped node's store opens");
    let keypair = store.identity().expect("an identity");
    let seed: [u8; 32] = keypair
        .try_into_ed25519()
        .expect("ed25519")
        .secret()
        .as_ref()
        .try_into()
        .expect("a 32-byte seed");
    let peer: PeerId = peer.parse().expect("a peer id");
    let key = libp2p::identity::PublicKey::try_decode_protobuf(peer.as_ref().digest())
        .expect("an inlined key")
        .try_into_ed25519()
        .expect("ed25519")
        .to_bytes();
    hark_proto::direct::direct_key(&seed, &key)
        .expect("a DM key")
        .chat_topic()
        .to_string()
}

/// Every byte under `dir`, file by file.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), bytes));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// An outsider in the test process (the node's own swarm, which asks blind relays): it knows
/// `topic` and hands the relay `count` items of junk of `size` bytes, 16 to a request.
fn flood(relay: &str, topic: &str, count: usize, size: usize) -> (PeerId, Vec<StoreResult>) {
    let addr: Multiaddr = relay.parse().expect("a relay address");
    let Some(libp2p::multiaddr::Protocol::P2p(relay_id)) = addr.iter().last() else {
        panic!("no /p2p/ in {relay}");
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let key = Keypair::generate_ed25519();
        let me = key.public().to_peer_id();
        let mut swarm =
            hark_node::swarm::build(key, hark_node::swarm::Transports::Network(None), false)
                .expect("a Hark swarm");
        swarm.dial(addr).expect("dial");
        let deadline = tokio::time::sleep(Duration::from_secs(60));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                event = swarm.select_next_some() => {
                    if matches!(event, SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == relay_id) {
                        break;
                    }
                }
                _ = &mut deadline => panic!("the outsider could not connect to the relay"),
            }
        }
        let mut pending = HashSet::new();
        let items: Vec<Vec<u8>> = (0..count)
            .map(|n| {
                let mut junk = vec![0xa5u8; size];
                junk[..8].copy_from_slice(&(n as u64).to_le_bytes());
                junk
            })
            .collect();
        for chunk in items.chunks(16) {
            let request = BlindRequest::Store {
                items: chunk
                    .iter()
                    .map(|sealed| Sealed {
                        topic: topic.to_owned(),
                        sealed: sealed.clone(),
                    })
                    .collect(),
            };
            pending.insert(swarm.behaviour_mut().blind.send_request(&relay_id, request));
        }
        let mut results = Vec::new();
        while !pending.is_empty() {
            tokio::select! {
                event = swarm.select_next_some() => match event {
                    SwarmEvent::Behaviour(BehaviourEvent::Blind(request_response::Event::Message {
                        message: Message::Response { request_id, response }, ..
                    })) => {
                        pending.remove(&request_id);
                        match response {
                            BlindResponse::Stored { results: r } => results.extend(r),
                            other => panic!("the relay answered {other:?}"),
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Blind(request_response::Event::OutboundFailure {
                        error, ..
                    })) => panic!("a flood request failed: {error}"),
                    _ => {}
                },
                _ = &mut deadline => panic!("the relay did not answer the flood"),
            }
        }
        (me, results)
    })
}

#[test]
fn a_dm_to_an_absent_peer_arrives_through_a_blind_relay_that_never_had_the_key() {
    let relay = NodeProcess::start("relay", &["--relay"]);
    let (alice_dir, bob_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice_path = alice_dir.path().to_path_buf();
    let bob_path = bob_dir.path().to_path_buf();

    // Alice and bob meet once, directly (so bob knows alice's id), then both go away.
    let (pa, pb) = meet_once(NICK, &alice_path, &bob_path);

    // Alice comes back connected only to the relay, which is in no room with her but lobby,
    // and writes to bob.
    let mut alice =
        NodeProcess::start_with_dir(NICK, alice_path.clone(), LISTEN, &["--peer", &relay.addr()]);
    alice.expect(
        "the relay connected",
        DELIVERY,
        |e| matches!(e, Event::PeerConnected { peer_id } if *peer_id == relay.peer_id),
    );
    alice.send(json!({"cmd": "dm", "to": pb, "text": TEXT}));
    let id = match alice.expect("sent", DELIVERY, |e| {
        matches!(e, Event::Sent { .. } | Event::Error { .. })
    }) {
        Event::Sent { id, room } => {
            assert_eq!(room, format!("@{pb}"));
            id
        }
        other => panic!("dm: {other:?}"),
    };
    // The sender sees that the relay holds it.
    let delivered = alice.expect(
        "delivered (the relay holds it)",
        DELIVERY,
        |e| matches!(e, Event::Delivered { id: d, peers, .. } if *d == id && peers.contains(&relay.peer_id)),
    );
    let Event::Delivered { room, .. } = delivered else {
        unreachable!()
    };
    assert_eq!(room, format!("@{pb}"));
    assert!(alice.quit().success());

    // An outsider who knows the DM's topic floods the relay with junk on it.
    let topic = dm_topic(&alice_path, &pb);
    let (outsider, results) = flood(&relay.addr(), &topic, 48, 60_000);
    assert_eq!(results.len(), 48);
    assert!(
        results.iter().all(|r| *r == StoreResult::Stored),
        "{results:?}"
    );
    let bounds = Bounds::default();
    {
        let held = BlindDb::open(&relay.data_dir(), bounds).expect("the relay's blind.db opens");
        let junk = held
            .held_bytes(&topic, Some(&outsider.to_base58()))
            .unwrap();
        let genuine = held.held_bytes(&topic, Some(&pa)).unwrap();
        let all = held.held_bytes(&topic, None).unwrap();
        eprintln!("relay holds on the DM topic: outsider {junk} B, alice {genuine} B, all {all} B");
        assert!(
            junk <= bounds.per_sender_topic,
            "the flood is bounded: {junk}"
        );
        assert!(
            junk >= bounds.per_sender_topic - 60_000 - ITEM_OVERHEAD,
            "the flood was kept up to its bound: {junk}"
        );
        assert!(genuine > 0, "the genuine DM was not evicted by the flood");
        assert!(all <= bounds.per_topic);
        assert!(held.total_bytes() <= bounds.total);
    }
    let on_disk: u64 = files(&relay.data_dir())
        .iter()
        .filter(|(name, _)| name.contains("blind.db"))
        .map(|(_, bytes)| bytes.len() as u64)
        .sum();
    assert!(on_disk < 16 << 20, "blind.db and its WAL: {on_disk} bytes");

    // Bob comes back connected only to the relay, and gets the DM, from alice, in @alice.
    let mut bob = NodeProcess::start_with_dir("bob", bob_path, LISTEN, &["--peer", &relay.addr()]);
    let got = bob.expect(
        "the DM through the blind relay",
        DELIVERY,
        |e| matches!(e, Event::Message { text, .. } if text == TEXT),
    );
    let Event::Message {
        room,
        from,
        name,
        id: got_id,
        ..
    } = got
    else {
        unreachable!()
    };
    assert_eq!(room, format!("@{pa}"));
    assert_eq!(from, pa);
    assert_eq!(name, NICK);
    assert_eq!(got_id, id);
    assert!(
        bob.seen
            .iter()
            .any(|e| matches!(e, Event::Joined { room } if *room == format!("@{pa}"))),
        "the DM room became real on bob's side"
    );
    // It is bob's history now, like any message.
    let history = bob.history(&format!("@{pa}"), 10);
    assert_eq!(history.len(), 1, "the junk left nothing: {history:?}");

    // The relay never had the key: nothing it keeps or logs shows the text or the nick.
    let relay_dir = relay.data_dir();
    let relay_log = relay.stderr();
    assert!(
        relay_log.contains("blind items handed"),
        "the relay logs at debug level"
    );
    for (file, bytes) in files(&relay_dir) {
        assert!(!contains(&bytes, TEXT), "{file} holds the DM's text");
        assert!(
            !contains(&bytes, "north gate"),
            "{file} holds part of the DM's text"
        );
        assert!(!contains(&bytes, NICK), "{file} holds the sender's nick");
    }
    assert!(
        !relay_log.contains("north gate"),
        "the relay logged the text"
    );
    assert!(
        !relay_log.contains(NICK),
        "the relay logged the sender's nick"
    );
}

#[test]
fn a_private_room_crosses_a_relay_that_is_not_in_it_while_both_members_are_online() {
    let relay = NodeProcess::start("relay", &["--relay"]);
    let mut alice = NodeProcess::start("alice", &["--peer", &relay.addr()]);
    alice.send(json!({"cmd": "create", "room": "ops"}));
    let Event::Created { invite, .. } =
        alice.expect("created", DELIVERY, |e| matches!(e, Event::Created { .. }))
    else {
        unreachable!()
    };
    // Bob has the invite (out of band) and is connected to the relay only: no gossip path to
    // alice, and the relay has no key.
    let mut bob = NodeProcess::start("bob", &["--peer", &relay.addr()]);
    bob.send(json!({"cmd": "join", "invite": invite}));
    bob.expect(
        "joined ops",
        DELIVERY,
        |e| matches!(e, Event::Joined { room } if room == "ops"),
    );
    alice.send(json!({"cmd": "send", "room": "ops", "text": "pumps 3 and 4 are down"}));
    let got = bob.expect(
        "the room's message through the relay (fetched every 10 s)",
        DELIVERY + Duration::from_secs(12),
        |e| matches!(e, Event::Message { text, .. } if text == "pumps 3 and 4 are down"),
    );
    assert!(
        matches!(&got, Event::Message { room, from, .. } if room == "ops" && *from == alice.peer_id),
        "{got:?}"
    );
    assert!(
        !bob.seen
            .iter()
            .any(|e| matches!(e, Event::PeerConnected { peer_id } if *peer_id == alice.peer_id)),
        "bob and alice never connected: it came through the relay"
    );
    assert!(
        !relay.stderr().contains("pumps 3"),
        "the relay logged the text"
    );
}

#[test]
fn a_dm_written_alone_goes_to_a_relay_met_after_a_restart() {
    let (alice_dir, bob_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice_path = alice_dir.path().to_path_buf();
    let bob_path = bob_dir.path().to_path_buf();
    let (pa, pb) = meet_once("alice", &alice_path, &bob_path);

    // Alice, alone, writes to bob and stops before meeting anyone.
    let mut alice = NodeProcess::start_with_dir("alice", alice_path.clone(), LISTEN, &[]);
    alice.send(json!({"cmd": "dm", "to": pb, "text": "written alone"}));
    alice.expect("sent", DELIVERY, |e| matches!(e, Event::Sent { .. }));
    // Not `quit`: at the end of its input `--json` waits for a peer to hold what it sent.
    alice.kill();

    // Next run she meets a relay: what waited goes to it, and bob gets it from there.
    let relay = NodeProcess::start("relay", &["--relay"]);
    let alice =
        NodeProcess::start_with_dir("alice", alice_path, LISTEN, &["--peer", &relay.addr()]);
    let topic = {
        // The DM topic, from bob's side (bob is stopped).
        let relay_dir = relay.data_dir();
        let deadline = std::time::Instant::now() + DELIVERY;
        let topic = dm_topic(&bob_path, &pa);
        loop {
            let held = BlindDb::open(&relay_dir, Bounds::default())
                .expect("the relay's blind.db opens")
                .held_bytes(&topic, Some(&pa))
                .unwrap();
            if held > 0 {
                break topic;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the relay never got the message written alone; alice:\n{}",
                alice.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert!(topic.starts_with("hark/1/chat/"));
    let log = alice.stderr();
    let status = alice.quit();
    assert!(status.success(), "{status:?}; alice:\n{log}");
    let mut bob = NodeProcess::start_with_dir("bob", bob_path, LISTEN, &["--peer", &relay.addr()]);
    bob.expect(
        "the DM written alone",
        DELIVERY,
        |e| matches!(e, Event::Message { text, room, .. } if text == "written alone" && *room == format!("@{pa}")),
    );
}

/// Two members who only ever reach each other through a relay (each connected to it alone)
/// and have heard each other in a room they share: a DM crosses too, though neither has met
/// the other to ask the relay for their DM.
#[test]
fn a_dm_crosses_a_relay_between_members_who_never_met() {
    let relay = NodeProcess::start("relay", &["--relay"]);
    let mut alice = NodeProcess::start("alice", &["--peer", &relay.addr()]);
    let mut bob = NodeProcess::start("bob", &["--peer", &relay.addr()]);
    let (pa, pb) = (alice.peer_id.clone(), bob.peer_id.clone());
    // Lobby crosses the relay (it is in lobby): each hears the other's presence through it.
    alice.wait_presence("lobby", &[&pb], DELIVERY);
    bob.wait_presence("lobby", &[&pa], DELIVERY);
    alice.send(json!({"cmd": "dm", "to": pb, "text": "through the relay, unmet"}));
    let got = bob.expect(
        "the DM through the relay (fetched every 10 s)",
        DELIVERY + Duration::from_secs(12),
        |e| matches!(e, Event::Message { text, .. } if text == "through the relay, unmet"),
    );
    assert!(
        matches!(&got, Event::Message { room, from, .. } if *room == format!("@{pa}") && *from == pa),
        "{got:?}"
    );
    assert!(
        !bob.seen
            .iter()
            .any(|e| matches!(e, Event::PeerConnected { peer_id } if *peer_id == pa)),
        "bob and alice never connected: it came through the relay"
    );
}
