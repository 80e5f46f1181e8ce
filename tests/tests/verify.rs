//! Verified identities end to end: two `hark-node --json` on loopback see the same safety
//! number; an impostor using bob's name has another one and is flagged; `hark-node verify`
//! against the running node shows it and marks the peer, and the mark survives a restart.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hark_node::Event;
use hark_tests::process::{hark_node_bin, DELIVERY};
use hark_tests::NodeProcess;
use serde_json::json;

fn safety_number(node: &mut NodeProcess, peer: &str) -> (String, Vec<String>, bool) {
    node.send(json!({"cmd": "verify", "peer": peer}));
    match node.expect("safety_number", DELIVERY, |e| {
        matches!(e, Event::SafetyNumber { .. } | Event::Error { .. })
    }) {
        Event::SafetyNumber {
            number,
            same_name,
            verified,
            ..
        } => (number, same_name, verified),
        other => panic!("{}: verify {peer}: {other:?}", node.name),
    }
}

/// `hark-node verify ARGS…` against a running node; (exit code, stdout, stderr).
fn verify_cli(data_dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(hark_node_bin())
        .arg("verify")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hark-node verify starts");
    let deadline = Instant::now() + DELIVERY;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("hark-node verify {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn safety_numbers_match_on_both_sides_and_differ_for_an_impostor() {
    // Alice's data dir outlives her first run (the restart at the end).
    let alice_dir = tempfile::tempdir().unwrap();
    let dir = alice_dir.path().to_path_buf();
    let mut alice = NodeProcess::start_with_dir("alice", dir.clone(), "/ip4/127.0.0.1/tcp/0", &[]);
    let mut bob = NodeProcess::start("bob", &["--peer", &alice.addr()]);
    let mut fake = NodeProcess::start("bob", &["--peer", &alice.addr()]);
    let (pa, pb, pf) = (
        alice.peer_id.clone(),
        bob.peer_id.clone(),
        fake.peer_id.clone(),
    );
    alice.wait_presence("lobby", &[&pb, &pf], DELIVERY);

    let (number, same_name, verified) = safety_number(&mut alice, &pb);
    assert!(!verified);
    assert_eq!(number.split(' ').count(), 12, "{number}");
    assert_eq!(
        safety_number(&mut bob, &pa).0,
        number,
        "bob sees the number alice sees"
    );
    // Alice has heard two keys call themselves bob: the answer says so.
    assert_eq!(same_name, vec![pf.clone()]);

    let (impostor, same_name, _) = safety_number(&mut alice, &pf);
    assert_ne!(impostor, number, "the impostor's key gives another number");
    assert_eq!(same_name, vec![pb.clone()]);
    assert_eq!(safety_number(&mut fake, &pa).0, impostor);

    // "bob" alone is ambiguous at alice's; with its #id it is not.
    alice.send(json!({"cmd": "verify", "peer": "bob"}));
    let error = alice.expect("ambiguous", DELIVERY, |e| matches!(e, Event::Error { .. }));
    assert!(
        matches!(&error, Event::Error { code, .. } if code == "ambiguous_name"),
        "{error:?}"
    );
    let short = format!("bob#{}", &pb[pb.len() - 4..]);
    assert_eq!(safety_number(&mut alice, &short).0, number);

    // `hark-node verify` against alice's running node: the same digits, a QR code, a warning.
    let (code, out, err) = verify_cli(&dir, &[&pb]);
    assert_eq!(code, 0, "{err}");
    let first_half: Vec<&str> = number.split(' ').take(6).collect();
    assert!(out.contains(&first_half.join(" ")), "{out}");
    assert!(out.contains('▀') || out.contains('▄'), "a QR code:\n{out}");
    assert!(
        out.contains("WARNING: the name bob is also used by"),
        "{out}"
    );
    assert!(out.contains("--confirm"), "{out}");

    // Marking: --confirm, then the mark shows in `verify` and in `peers`.
    let (code, out, err) = verify_cli(&dir, &["--confirm", &pb]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is marked verified"), "{out}");
    let (code, out, _) = verify_cli(&dir, &["--json", &pb]);
    assert_eq!(code, 0);
    let event: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
    assert_eq!(event["event"], "safety_number");
    assert_eq!(event["verified"], true);
    assert_eq!(event["number"], number.as_str());
    alice.send(json!({"cmd": "peers"}));
    let Event::Peers { peers } =
        alice.expect("peers", DELIVERY, |e| matches!(e, Event::Peers { .. }))
    else {
        unreachable!()
    };
    let marked = |id: &str| peers.iter().find(|p| p.peer_id == id).map(|p| p.verified);
    assert_eq!(marked(&pb), Some(true));
    assert_eq!(marked(&pf), Some(false));
    // The shared name is flagged in `peers` too, on both keys.
    let shared = |id: &str| {
        peers
            .iter()
            .find(|p| p.peer_id == id)
            .map(|p| p.same_name.clone())
    };
    assert_eq!(shared(&pb), Some(vec![pf.clone()]));
    assert_eq!(shared(&pf), Some(vec![pb.clone()]));

    // An unknown name is refused: exit 1 with the node's reason.
    let (code, _, err) = verify_cli(&dir, &["nobody"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("hark-node verify: unknown_peer"),
        "named after the command typed: {err}"
    );

    // The mark survives a restart of alice.
    drop(fake);
    drop(bob);
    assert!(alice.quit().success());
    let mut again = NodeProcess::start_with_dir("alice", dir.clone(), "/ip4/127.0.0.1/tcp/0", &[]);
    again.send(json!({"cmd": "verified_peers"}));
    let Event::VerifiedPeers { peers } = again.expect("verified_peers", DELIVERY, |e| {
        matches!(e, Event::VerifiedPeers { .. })
    }) else {
        unreachable!()
    };
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert_eq!(peers[0].peer_id, pb);
    assert_eq!(peers[0].name, "bob");
}

#[test]
fn verify_without_a_running_node_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = verify_cli(dir.path(), &["12D3KooWanything"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no node running"), "{err}");
}
