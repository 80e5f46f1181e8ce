//! A receiver forwards and shows what peers send first and stores it a moment later, many
//! messages at once (node/src/engine/held.rs), without waiting for the disk
//! (node/src/store/flusher.rs). What it received may therefore be lost in a crash (at most the
//! last three seconds of it); sync must bring it again. Here a receiver is killed with SIGKILL
//! in the middle of a burst and restarted: alone it has a part of the burst, and with its peer
//! it catches up on everything else, showing each message it lacked once.

use std::collections::HashSet;
use std::time::Duration;

use hark_node::{Event, HistoryMessage};
use hark_tests::process::DELIVERY;
use hark_tests::NodeProcess;
use serde_json::json;

/// Catch-up of a few hundred messages on a loaded 2-core machine: generous.
const CATCH_UP: Duration = Duration::from_secs(60);
const BURST: usize = 400;

fn ids(messages: &[HistoryMessage]) -> Vec<String> {
    messages.iter().map(|m| m.id.clone()).collect()
}

#[test]
fn a_receiver_killed_mid_burst_catches_up_on_restart_showing_what_it_lacked_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bob_dir = dir.path().join("bob");
    let mut alice = NodeProcess::start("alice", &[]);
    let mut bob = NodeProcess::start_with_dir(
        "bob",
        bob_dir.clone(),
        "/ip4/127.0.0.1/tcp/0",
        &["--peer", &alice.addr()],
    );
    let (pa, pb) = (alice.peer_id.clone(), bob.peer_id.clone());
    alice.wait_presence("lobby", &[&pb], DELIVERY);
    bob.wait_presence("lobby", &[&pa], DELIVERY);

    for i in 0..BURST {
        alice.send(json!({"cmd": "send", "room": "lobby", "text": format!("burst {i}")}));
    }
    // Kill bob the moment it has shown 20 of them: mid-burst, gossip in flight.
    let mut shown = Vec::new();
    while shown.len() < 20 {
        if let Event::Message { id, .. } = bob.expect(
            "message",
            DELIVERY,
            |e| matches!(e, Event::Message { room, .. } if room == "lobby"),
        ) {
            shown.push(id);
        }
    }
    bob.kill();

    let mut sent = Vec::with_capacity(BURST);
    while sent.len() < BURST {
        match alice.expect("sent", DELIVERY, |e| {
            matches!(e, Event::Sent { .. } | Event::Error { .. })
        }) {
            Event::Sent { id, .. } => sent.push(id),
            other => panic!("alice: sending failed: {other:?}"),
        }
    }
    let sent: HashSet<String> = sent.into_iter().collect();

    // Alone (no peer, so no sync yet): what bob stored before the crash, a part of what it
    // showed (the last three seconds of it may be lost).
    let mut bob = NodeProcess::start_with_dir("bob", bob_dir.clone(), "/ip4/127.0.0.1/tcp/0", &[]);
    let kept: HashSet<String> = ids(&bob.history("lobby", 2 * BURST)).into_iter().collect();
    assert!(shown.iter().all(|id| sent.contains(id)));
    assert!(
        kept.len() < BURST,
        "the crash came mid-burst: bob had {} of {BURST}",
        kept.len()
    );
    assert!(kept.is_subset(&sent));
    bob.quit();

    // With alice again: sync brings the rest, each message shown once.
    let mut bob = NodeProcess::start_with_dir(
        "bob",
        bob_dir,
        "/ip4/127.0.0.1/tcp/0",
        &["--peer", &alice.addr()],
    );
    let history = bob.wait_history_len("lobby", BURST, CATCH_UP);
    let got: HashSet<String> = ids(&history).into_iter().collect();
    assert_eq!(history.len(), got.len(), "no message stored twice");
    assert_eq!(got, sent, "bob has every message alice sent");
    bob.drain();
    let mut raised = HashSet::new();
    for event in &bob.seen {
        if let Event::Message { room, id, .. } = event {
            if room == "lobby" {
                assert!(raised.insert(id.clone()), "message {id} raised twice");
                assert!(!kept.contains(id), "message {id} was already shown before");
            }
        }
    }
    assert_eq!(
        raised.len(),
        BURST - kept.len(),
        "the restarted bob shows exactly what it lacked"
    );
}
