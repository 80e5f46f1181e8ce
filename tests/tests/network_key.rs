//! The private network key: same key connects and chats; another key, or none, cannot
//! connect, and the failing node says why in one log line.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hark_node::Event;
use hark_tests::process::DELIVERY;
use hark_tests::{hark_node_bin, NodeProcess};
use serde_json::json;

fn keygen(path: &Path) {
    let out = Command::new(hark_node_bin())
        .args(["keygen", "--network"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn only_nodes_with_the_same_key_connect() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2) = (dir.path().join("k1.key"), dir.path().join("k2.key"));
    keygen(&k1);
    keygen(&k2);
    let (k1, k2) = (k1.to_str().unwrap(), k2.to_str().unwrap());

    let mut a = NodeProcess::start("alice", &["--network-key", k1]);
    assert_eq!(
        a.listen.len(),
        1,
        "no QUIC listener with a network key: {:?}",
        a.listen
    );
    let mut b = NodeProcess::start("bob", &["--network-key", k1, "--peer", &a.addr()]);
    let (pa, pb) = (a.peer_id.clone(), b.peer_id.clone());
    b.wait_presence("lobby", &[&pa], DELIVERY);
    a.wait_presence("lobby", &[&pb], DELIVERY);
    b.send(json!({"cmd": "send", "room": "lobby", "text": "inside the fence"}));
    a.expect(
        "bob's message",
        DELIVERY,
        |e| matches!(e, Event::Message { text, .. } if text == "inside the fence"),
    );

    let mut other_key = NodeProcess::start("mallory", &["--network-key", k2, "--peer", &a.addr()]);
    let mut no_key = NodeProcess::start("eve", &["--peer", &a.addr()]);
    assert!(
        other_key.wait_stderr("network key", Duration::from_secs(20)),
        "the node with another key says why:\n{}",
        other_key.stderr()
    );
    assert!(
        no_key.wait_stderr("network key", Duration::from_secs(20)),
        "the node without a key says why:\n{}",
        no_key.stderr()
    );
    let one_line = |s: &str| {
        s.lines()
            .filter(|l| l.contains("network key"))
            .all(|l| l.contains("cannot connect to"))
    };
    assert!(one_line(&other_key.stderr()), "{}", other_key.stderr());
    assert!(
        a.wait_stderr("network key", Duration::from_secs(5)),
        "the listener logs it too:\n{}",
        a.stderr()
    );

    // Neither ever connected, in either direction.
    for outsider in [&mut other_key, &mut no_key] {
        outsider.drain();
        assert!(
            !outsider
                .seen
                .iter()
                .any(|e| matches!(e, Event::PeerConnected { .. })),
            "{}: {:?}",
            outsider.name,
            outsider.seen
        );
    }
    a.drain();
    let outsiders = [other_key.peer_id.clone(), no_key.peer_id.clone()];
    assert!(!a
        .seen
        .iter()
        .any(|e| matches!(e, Event::PeerConnected { peer_id } if outsiders.contains(peer_id))));
}

#[test]
fn an_unreadable_or_malformed_key_file_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "not a key\n").unwrap();
    for path in [bad, dir.path().join("missing.key")] {
        let out = Command::new(hark_node_bin())
            .args(["--json", "--no-mdns", "--network-key"])
            .arg(&path)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("network key") && stderr.contains(path.to_str().unwrap()),
            "{stderr}"
        );
    }
}
