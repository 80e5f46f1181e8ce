//! A relay that joins two LAN segments: two bridges in network namespaces with no route
//! between them, a relay host with a leg in each, mDNS on everywhere (inside the namespaces
//! only), no `--peer` anywhere. Nodes that see only their own segment chat, catch up and talk
//! with the other segment through the relay.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use hark_node::Event;
use hark_tests::netns::{self, Site};
use hark_tests::NodeProcess;
use serde_json::json;

/// mDNS in namespaces, gossip through the relay, sync: generous on a loaded 2-core machine.
const FOUND: Duration = Duration::from_secs(30);
const SPURT: Duration = Duration::from_secs(30);

fn skip(test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}");
    eprintln!("\n*** {line} ***\n");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.txt");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{line}");
    }
}

/// `hark-node --json` inside `host` with the defaults: mDNS on, listening on every interface.
fn start(name: &str, host: &str, extra: &[&str]) -> NodeProcess {
    NodeProcess::start_raw(name, &[], extra, Some(&Site::exec_prefix(host)))
}

/// Two seconds of a 440 Hz tone with a rising 5 Hz warble, 48 kHz mono.
fn tone(dir: &Path) -> std::path::PathBuf {
    let samples: Vec<i16> = (0..96_000)
        .map(|n| {
            let t = n as f64 / 48_000.0;
            let f = 440.0 + 40.0 * (2.0 * std::f64::consts::PI * 5.0 * t).sin();
            (8_000.0 * (2.0 * std::f64::consts::PI * f * t).sin()) as i16
        })
        .collect();
    let path = dir.join("tone.wav");
    hark_node::voice::wav::write_48k_mono(&path, &samples).expect("the tone writes");
    path
}

fn connected_to(node: &mut NodeProcess) -> Vec<String> {
    node.send(json!({"cmd": "peers"}));
    let Event::Peers { peers } = node.expect("peers", FOUND, |e| matches!(e, Event::Peers { .. }))
    else {
        unreachable!()
    };
    peers.into_iter().map(|p| p.peer_id).collect()
}

#[test]
fn a_relay_with_a_leg_in_each_segment_joins_them_for_chat_history_and_voice() {
    const TEST: &str = "segments::a_relay_with_a_leg_in_each_segment_joins_them";
    if let Some(why) = netns::unavailable() {
        return skip(TEST, &why);
    }
    let site = match Site::new("s", 2) {
        Ok(site) => site,
        Err(why) => return skip(TEST, &why),
    };
    // No route from one segment to the other: only the relay can join them.
    assert!(!Site::has_route(&site.a[0], &site.address(1, 1)));
    assert!(!Site::has_route(&site.b[0], &site.address(0, 1)));
    assert!(Site::has_route(&site.a[0], &site.address(0, 254)));

    let mut relay = start("relay", &site.relay, &["--relay"]);
    let mut alice = start("alice", &site.a[0], &[]);
    let mut carol = start("carol", &site.a[1], &[]);
    let (pr, pa, pc) = (
        relay.peer_id.clone(),
        alice.peer_id.clone(),
        carol.peer_id.clone(),
    );
    alice.wait_presence("lobby", &[&pr, &pc], FOUND);
    relay.wait_presence("lobby", &[&pa], FOUND);

    // Written while segment B is empty: only the relay can hand it on.
    alice.send(json!({"cmd": "send", "room": "lobby", "text": "written before B woke"}));
    alice.expect("sent", FOUND, |e| matches!(e, Event::Sent { .. }));
    relay.expect(
        "alice's line at the relay",
        FOUND,
        |e| matches!(e, Event::Message { text, .. } if text == "written before B woke"),
    );

    let mut bob = start("bob", &site.b[0], &[]);
    let mut dave = start("dave", &site.b[1], &[]);
    let (pb, pd) = (bob.peer_id.clone(), dave.peer_id.clone());
    // Catch-up: bob's first sync is with the relay (the only one he can reach that has it).
    let got = bob.expect(
        "the line written before B woke",
        FOUND,
        |e| matches!(e, Event::Message { text, .. } if text == "written before B woke"),
    );
    assert!(matches!(got, Event::Message { from, .. } if from == pa));

    // Presence crosses the relay: each segment hears the other.
    alice.wait_presence("lobby", &[&pb, &pd], FOUND);
    bob.wait_presence("lobby", &[&pa, &pc, &pd, &pr], FOUND);

    // Live chat both ways.
    bob.send(json!({"cmd": "send", "room": "lobby", "text": "hello from B"}));
    for node in [&mut alice, &mut carol] {
        let got = node.expect(
            "bob's line",
            FOUND,
            |e| matches!(e, Event::Message { text, .. } if text == "hello from B"),
        );
        assert!(matches!(got, Event::Message { from, .. } if from == pb));
    }
    carol.send(json!({"cmd": "send", "room": "lobby", "text": "hello from A"}));
    for node in [&mut bob, &mut dave] {
        node.expect(
            "carol's line",
            FOUND,
            |e| matches!(e, Event::Message { text, .. } if text == "hello from A"),
        );
    }

    // Voice: alice talks in segment A, bob and dave hear her in segment B.
    let dir = tempfile::tempdir().unwrap();
    let wav = tone(dir.path());
    alice.send(json!({"cmd": "voice", "room": "lobby", "wav": wav}));
    let sent = alice.expect("voice_sent", SPURT, |e| {
        matches!(e, Event::VoiceSent { .. })
    });
    let Event::VoiceSent { frames: sent, .. } = sent else {
        unreachable!()
    };
    assert!(sent >= 90, "two seconds of 20 ms frames: {sent}");
    for node in [&mut bob, &mut dave] {
        // A late frame on a loaded machine can end a spurt early and start another: count
        // what arrived over all of alice's spurts.
        let (mut received, mut spurts) = (0, 0);
        while received * 10 < sent * 9 {
            let Some(Event::VoiceEnd { received: got, .. }) = node.wait_for(
                SPURT,
                |e| matches!(e, Event::VoiceEnd { from, .. } if *from == pa),
            ) else {
                panic!(
                    "{}: {received} of {sent} frames arrived in {spurts} spurts",
                    node.name
                );
            };
            received += got;
            spurts += 1;
        }
        assert!(spurts <= 3, "{}: {spurts} spurts", node.name);
    }

    // The segments never met directly: each side is connected to its own and the relay.
    let bob_peers = connected_to(&mut bob);
    assert!(bob_peers.contains(&pr), "{bob_peers:?}");
    assert!(
        !bob_peers.contains(&pa) && !bob_peers.contains(&pc),
        "{bob_peers:?}"
    );
    let alice_peers = connected_to(&mut alice);
    assert!(
        !alice_peers.contains(&pb) && !alice_peers.contains(&pd),
        "{alice_peers:?}"
    );

    drop((alice, bob, carol, dave, relay));
    drop(site);
}
