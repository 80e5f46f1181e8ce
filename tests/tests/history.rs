//! Room history end to end (SPEC §3 "History", §6): late joiners, relays, partitions that heal,
//! crashes right after `sent`, and nodes whose clocks disagree. Every node prints a room the
//! same: the same ids in the same order.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use hark_node::{Event, HistoryMessage};
use hark_tests::process::DELIVERY;
use hark_tests::seed::seed_public_room;
use hark_tests::NodeProcess;
use serde_json::json;

/// Catch-up of a few hundred messages on a loaded 2-core machine: generous.
const CATCH_UP: Duration = Duration::from_secs(60);

fn ids(messages: &[HistoryMessage]) -> Vec<String> {
    messages.iter().map(|m| m.id.clone()).collect()
}

/// Every `message` event this node has raised in `room`, by id, checking none came twice.
fn message_ids_once(node: &mut NodeProcess, room: &str) -> HashSet<String> {
    node.drain();
    let mut seen = HashSet::new();
    for event in &node.seen {
        if let Event::Message { room: r, id, .. } = event {
            if r == room {
                assert!(
                    seen.insert(id.clone()),
                    "{}: message {id} raised twice",
                    node.name
                );
            }
        }
    }
    seen
}

fn listen_of(node: &NodeProcess) -> String {
    node.addr()
        .split("/p2p/")
        .next()
        .expect("an address")
        .to_owned()
}

fn start_in(dir: &Path, name: &str, extra: &[&str]) -> NodeProcess {
    NodeProcess::start_with_dir(name, dir.join(name), "/ip4/127.0.0.1/tcp/0", extra)
}

#[test]
fn a_late_joiner_gets_all_500_messages_in_the_senders_order() {
    let mut a = NodeProcess::start("alice", &[]);
    let sent = a.send_burst("lobby", "note", 500);
    let a_history = a.history("lobby", 1000);
    assert_eq!(
        ids(&a_history),
        sent,
        "one writer's messages are in sending order"
    );

    let mut b = NodeProcess::start("bob", &["--peer", &a.addr()]);
    let b_history = b.wait_history_len("lobby", 500, CATCH_UP);
    assert_eq!(
        ids(&b_history),
        ids(&a_history),
        "bob prints the room as alice does"
    );
    assert!(b_history
        .iter()
        .all(|m| m.from == a.peer_id && m.name == "alice"));
    assert_eq!(b_history[0].text, "note 0");

    let raised = message_ids_once(&mut b, "lobby");
    assert_eq!(
        raised,
        sent.iter().cloned().collect::<HashSet<_>>(),
        "each synced message raised one `message` event"
    );
    // The session ends with one more exchange after the last messages arrive.
    let synced_sum = |node: &NodeProcess| -> usize {
        node.seen
            .iter()
            .filter_map(|e| match e {
                Event::Synced { room, received, .. } if room == "lobby" => Some(*received),
                _ => None,
            })
            .sum()
    };
    if synced_sum(&b) < 500 {
        b.expect(
            "synced",
            DELIVERY,
            |e| matches!(e, Event::Synced { received, .. } if *received > 0),
        );
    }
    assert_eq!(
        synced_sum(&b),
        500,
        "`synced` accounts for every message received"
    );
}

/// A catch-up big enough to be written behind (node/src/store/behind.rs: 1 000 messages or more
/// into a room with none) is readable at once, raised once per message, and still there after
/// a restart without any peer.
#[test]
fn a_big_catch_up_written_behind_is_readable_at_once_and_kept_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay_dir = dir.path().join("relay");
    let seeded = seed_public_room(&relay_dir, "lobby", 3_000, 1_000, false).expect("seeded");
    let relay =
        NodeProcess::start_with_dir("relay", relay_dir, "/ip4/127.0.0.1/tcp/0", &["--relay"]);
    let mut joiner = start_in(dir.path(), "joiner", &["--peer", &relay.addr()]);
    let history = joiner.wait_history_len("lobby", 3_000, CATCH_UP);
    assert_eq!(history.len(), 3_000, "the whole catch-up, readable");
    assert_eq!(history[0].id, seeded.first_id);
    assert_eq!(history[2_999].id, seeded.last_id);
    assert_eq!(message_ids_once(&mut joiner, "lobby").len(), 3_000);
    relay.kill();
    joiner.kill();

    let mut again = start_in(dir.path(), "joiner", &[]);
    assert_eq!(
        ids(&again.history("lobby", 5_000)),
        ids(&history),
        "stored, not only shown"
    );
}

#[test]
fn a_relay_hands_history_to_a_node_that_never_met_the_sender() {
    let mut relay = NodeProcess::start("relay", &["--relay"]);
    let mut a = NodeProcess::start("alice", &["--peer", &relay.addr()]);
    let (pa, pr) = (a.peer_id.clone(), relay.peer_id.clone());
    a.wait_presence("lobby", &[&pr], DELIVERY);
    let sent = a.send_burst("lobby", "from alice", 40);
    relay.wait_history_len("lobby", 40, CATCH_UP);
    assert_eq!(a.quit().code(), Some(0));

    let mut b = NodeProcess::start("bob", &["--peer", &relay.addr()]);
    let got = b.wait_history_len("lobby", 40, CATCH_UP);
    assert_eq!(ids(&got), sent);
    assert!(
        got.iter().all(|m| m.from == pa),
        "authorship survives the relay"
    );
    assert_eq!(message_ids_once(&mut b, "lobby").len(), 40);
}

#[test]
fn two_partitions_that_wrote_concurrently_converge_after_healing() {
    let dir = tempfile::tempdir().unwrap();
    // Group A and group B: full meshes of three, no link between them.
    let a1 = start_in(dir.path(), "a1", &[]);
    let a2 = start_in(dir.path(), "a2", &["--peer", &a1.addr()]);
    let a3 = start_in(
        dir.path(),
        "a3",
        &["--peer", &a1.addr(), "--peer", &a2.addr()],
    );
    let b1 = start_in(dir.path(), "b1", &[]);
    let b2 = start_in(dir.path(), "b2", &["--peer", &b1.addr()]);
    let b3 = start_in(
        dir.path(),
        "b3",
        &["--peer", &b1.addr(), "--peer", &b2.addr()],
    );
    let mut nodes = [a1, a2, a3, b1, b2, b3];
    let peers: Vec<String> = nodes.iter().map(|n| n.peer_id.clone()).collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        let group = if i < 3 { 0..3 } else { 3..6 };
        let others: Vec<&str> = group
            .filter(|&j| j != i)
            .map(|j| peers[j].as_str())
            .collect();
        node.wait_presence("lobby", &others, DELIVERY);
    }

    // Two writers in each group, all at once.
    let writers = [0, 1, 3, 5];
    for &w in &writers {
        for k in 0..15 {
            let text = format!("{} says {k}", nodes[w].name);
            nodes[w].send(json!({"cmd": "send", "room": "lobby", "text": text}));
        }
    }
    for &w in &writers {
        let mut sent = 0;
        while sent < 15 {
            nodes[w].expect("sent", DELIVERY, |e| matches!(e, Event::Sent { .. }));
            sent += 1;
        }
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        let got = node.wait_history_len("lobby", 30, CATCH_UP);
        assert_eq!(
            got.len(),
            30,
            "{} holds its own group's 30 messages (node {i})",
            node.name
        );
    }

    // Heal: a1 comes back with a link to b1 (a2 and a3 redial it on the same port).
    let [a1, a2, a3, b1, b2, b3] = nodes;
    let (a1_listen, b1_addr) = (listen_of(&a1), b1.addr());
    a1.kill();
    let a1 = NodeProcess::start_with_dir(
        "a1",
        dir.path().join("a1"),
        &a1_listen,
        &["--peer", &b1_addr],
    );
    let mut nodes = [a1, a2, a3, b1, b2, b3];
    let mut histories = Vec::new();
    for node in nodes.iter_mut() {
        let got = node.wait_history_len("lobby", 60, CATCH_UP);
        assert_eq!(got.len(), 60, "{} holds all 60 after healing", node.name);
        histories.push(got);
    }
    for (node, history) in nodes.iter().zip(&histories).skip(1) {
        assert_eq!(
            ids(history),
            ids(&histories[0]),
            "{} prints the room exactly as a1 does",
            node.name
        );
    }
    // (HLC, id) order: timestamps never go down along the printed room.
    let stamps: Vec<u64> = histories[0].iter().map(|m| m.ts).collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
}

#[test]
fn every_message_reported_sent_survives_kill_9_and_reaches_peers_later() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = start_in(dir.path(), "alice", &[]);
    for i in 0..300 {
        a.send(json!({"cmd": "send", "room": "lobby", "text": format!("burst {i}")}));
    }
    // Kill in the middle of the burst, the moment 100 `sent` have been read.
    let mut sent = Vec::new();
    while sent.len() < 100 {
        if let Event::Sent { id, .. } =
            a.expect("sent", DELIVERY, |e| matches!(e, Event::Sent { .. }))
        {
            sent.push(id);
        }
    }
    let listen = listen_of(&a);
    a.kill();

    let mut a = NodeProcess::start_with_dir("alice", dir.path().join("alice"), &listen, &[]);
    let stored: HashSet<String> = ids(&a.history("lobby", 1000)).into_iter().collect();
    for id in &sent {
        assert!(
            stored.contains(id),
            "message {id} was reported sent but is lost"
        );
    }

    let mut b = NodeProcess::start("bob", &["--peer", &a.addr()]);
    let got: HashSet<String> = ids(&b.wait_history_len("lobby", stored.len(), CATCH_UP))
        .into_iter()
        .collect();
    assert_eq!(got, stored, "bob gets everything alice kept");
}

#[test]
fn nodes_whose_clocks_disagree_by_minutes_agree_on_order() {
    // Alice's clock is 5 minutes fast, Bob's 4 minutes slow.
    let mut a = NodeProcess::start_with_env("alice", &[("HARK_CLOCK_OFFSET_MS", "300000")], &[]);
    let mut b = NodeProcess::start_with_env(
        "bob",
        &[("HARK_CLOCK_OFFSET_MS", "-240000")],
        &["--peer", &a.addr()],
    );
    let (pa, pb) = (a.peer_id.clone(), b.peer_id.clone());
    a.wait_presence("lobby", &[&pb], DELIVERY);
    b.wait_presence("lobby", &[&pa], DELIVERY);

    let said = |node: &mut NodeProcess, text: &str| {
        node.send(json!({"cmd": "send", "room": "lobby", "text": text}));
        node.expect("sent", DELIVERY, |e| matches!(e, Event::Sent { .. }));
    };
    let heard = |node: &mut NodeProcess, text: &str| {
        node.expect(
            text,
            DELIVERY,
            |e| matches!(e, Event::Message { text: t, .. } if t == text),
        );
    };
    said(&mut a, "is pump 4 running hot?");
    heard(&mut b, "is pump 4 running hot?");
    said(&mut b, "yes, 90 degrees");
    heard(&mut a, "yes, 90 degrees");
    said(&mut a, "shut it down");
    heard(&mut b, "shut it down");
    // And a burst from both at once, which may interleave any way, but the same way everywhere.
    for i in 0..10 {
        a.send(json!({"cmd": "send", "room": "lobby", "text": format!("a{i}")}));
        b.send(json!({"cmd": "send", "room": "lobby", "text": format!("b{i}")}));
    }

    let on_a = a.wait_history_len("lobby", 23, CATCH_UP);
    let on_b = b.wait_history_len("lobby", 23, CATCH_UP);
    assert_eq!(on_a.len(), 23);
    assert_eq!(ids(&on_a), ids(&on_b), "both print the room identically");
    let texts: Vec<&str> = on_a.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        &texts[..3],
        ["is pump 4 running hot?", "yes, 90 degrees", "shut it down"],
        "a reply sorts after what it answers though the replier's clock is 9 minutes behind"
    );
    assert!(
        on_a[1].ts >= on_a[0].ts,
        "bob's clock was pulled forward past alice's message"
    );
}

/// The sender's fsync runs beside its event loop: on a slow disk its own message waits (no
/// `sent`, nothing published) while it goes on forwarding others' messages at once.
#[test]
fn a_slow_disk_holds_up_the_senders_own_message_not_what_it_forwards() {
    // Each fsync of alice's own messages takes 8 s longer than the disk: far longer than
    // carol's message needs to reach dave through alice, even on a loaded machine.
    let slow = Duration::from_secs(8);
    let mut a = NodeProcess::start_with_env("alice", &[("HARK_TEST_FSYNC_DELAY_MS", "8000")], &[]);
    // carol — alice — dave: alice forwards between them.
    let mut c = NodeProcess::start("carol", &["--peer", &a.addr()]);
    let mut d = NodeProcess::start("dave", &["--peer", &a.addr()]);
    let (pa, pc, pd) = (a.peer_id.clone(), c.peer_id.clone(), d.peer_id.clone());
    a.wait_presence("lobby", &[&pc, &pd], DELIVERY);
    c.wait_presence("lobby", &[&pa, &pd], DELIVERY);
    d.wait_presence("lobby", &[&pa, &pc], DELIVERY);

    a.send(json!({"cmd": "send", "room": "lobby", "text": "from alice, on a slow disk"}));
    c.send(json!({"cmd": "send", "room": "lobby", "text": "from carol, through alice"}));
    d.expect(
        "carol's message",
        DELIVERY,
        |e| matches!(e, Event::Message { text, .. } if text == "from carol, through alice"),
    );
    a.drain();
    d.drain();
    assert!(
        !a.seen.iter().any(|e| matches!(e, Event::Sent { .. })),
        "alice's own message is not `sent` before its fsync: {:?}",
        a.seen
    );
    assert!(
        !d.seen.iter().any(
            |e| matches!(e, Event::Message { text, .. } if text == "from alice, on a slow disk")
        ),
        "nor published"
    );

    // Once the fsync is done: `sent`, then the room has it.
    a.expect("sent", DELIVERY + slow, |e| matches!(e, Event::Sent { .. }));
    d.expect(
        "alice's message",
        DELIVERY,
        |e| matches!(e, Event::Message { text, .. } if text == "from alice, on a slow disk"),
    );
}
