//! Direct messages on loopback: `dm {to,text}` opens `@PEER` on both sides with a key only the
//! two derive; an outsider connected to both sees nothing; a DM to a peer that is offline
//! arrives by sync when they next meet.

use hark_node::Event;
use hark_tests::process::DELIVERY;
use hark_tests::NodeProcess;
use serde_json::json;

/// A voice spurt played in real time, plus buffering: generous on a loaded machine.
const SPURT: std::time::Duration = std::time::Duration::from_secs(30);

/// One second of a 440 Hz tone, 48 kHz mono.
fn tone(dir: &std::path::Path) -> std::path::PathBuf {
    let samples: Vec<i16> = (0..48_000)
        .map(|n| {
            (8_000.0 * (2.0 * std::f64::consts::PI * 440.0 * n as f64 / 48_000.0).sin()) as i16
        })
        .collect();
    let path = dir.join("tone.wav");
    hark_node::voice::wav::write_48k_mono(&path, &samples).expect("the tone writes");
    path
}

fn dm(node: &mut NodeProcess, to: &str, text: &str) -> String {
    node.send(json!({"cmd": "dm", "to": to, "text": text}));
    match node.expect("sent", DELIVERY, |e| {
        matches!(e, Event::Sent { .. } | Event::Error { .. })
    }) {
        Event::Sent { room, id } => {
            assert_eq!(
                room,
                format!("@{to}"),
                "a DM's room is @PEER on the sender's side"
            );
            id
        }
        other => panic!("{}: dm to {to}: {other:?}", node.name),
    }
}

fn receives(node: &mut NodeProcess, from: &str, text: &str) {
    let got = node.expect(
        &format!("the DM {text:?}"),
        DELIVERY,
        |e| matches!(e, Event::Message { text: t, .. } if t == text),
    );
    let Event::Message {
        room, from: author, ..
    } = got
    else {
        unreachable!()
    };
    assert_eq!(
        room,
        format!("@{from}"),
        "the room is named after the other side"
    );
    assert_eq!(author, from);
}

#[test]
fn a_direct_message_reaches_only_its_peer_both_ways() {
    let mut alice = NodeProcess::start("alice", &[]);
    let mut bob = NodeProcess::start("bob", &["--peer", &alice.addr()]);
    let mut carol = NodeProcess::start("carol", &["--peer", &alice.addr(), "--peer", &bob.addr()]);
    let (pa, pb, pc) = (
        alice.peer_id.clone(),
        bob.peer_id.clone(),
        carol.peer_id.clone(),
    );
    alice.wait_presence("lobby", &[&pb, &pc], DELIVERY);
    bob.wait_presence("lobby", &[&pa, &pc], DELIVERY);

    dm(&mut alice, &pb, "psst, the spare key is under pump 4");
    receives(&mut bob, &pa, "psst, the spare key is under pump 4");
    assert!(
        bob.seen
            .iter()
            .any(|e| matches!(e, Event::Joined { room } if *room == format!("@{pa}"))),
        "bob's side opened @alice"
    );
    // By name too, and back.
    dm(&mut bob, &pa, "got it");
    receives(&mut alice, &pb, "got it");
    bob.send(json!({"cmd": "dm", "to": "alice", "text": "by name"}));
    receives(&mut alice, &pb, "by name");

    // Both sides keep it as history, like any room.
    let history = bob.history(&format!("@{pa}"), 10);
    let texts: Vec<&str> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        ["psst, the spare key is under pump 4", "got it", "by name"]
    );

    // `hark-node ctl dm` through bob's control socket: waits for `sent`, prints it.
    let out = std::process::Command::new(hark_tests::hark_node_bin())
        .args(["ctl", "--data-dir"])
        .arg(bob.data_dir())
        .args(["dm", &pa, "from the command line"])
        .output()
        .expect("ctl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON line on stdout");
    assert_eq!(printed["event"], "sent");
    assert_eq!(printed["room"], format!("@{pa}"));
    receives(&mut alice, &pb, "from the command line");

    // Search works in a DM room like in any room.
    bob.send(json!({"cmd": "search", "room": format!("@{pa}"), "text": "spare"}));
    let found = bob.expect("search_results", DELIVERY, |e| {
        matches!(e, Event::SearchResults { .. } | Event::Error { .. })
    });
    assert!(
        matches!(&found, Event::SearchResults { messages, .. } if messages.len() == 1),
        "{found:?}"
    );

    // Push-to-talk in the DM room: bob hears alice there, carol hears nothing.
    let dir = tempfile::tempdir().unwrap();
    let wav = tone(dir.path());
    alice.send(json!({"cmd": "voice", "room": format!("@{pb}"), "wav": wav}));
    alice.expect("voice_sent", SPURT, |e| {
        matches!(e, Event::VoiceSent { .. })
    });
    let end = bob.expect(
        "alice's spurt",
        SPURT,
        |e| matches!(e, Event::VoiceEnd { from, .. } if *from == pa),
    );
    assert!(
        matches!(&end, Event::VoiceEnd { room, received, .. } if *room == format!("@{pa}") && *received > 0),
        "{end:?}"
    );

    // Carol, connected to both all along, saw none of it.
    carol.drain();
    assert!(
        !carol
            .seen
            .iter()
            .any(|e| matches!(e, Event::Message { text, .. }
            if text.contains("psst") || text == "got it" || text == "by name")),
        "an outsider read a DM"
    );
    assert!(
        !carol
            .seen
            .iter()
            .any(|e| matches!(e, Event::VoiceStart { .. } | Event::VoiceEnd { .. })),
        "an outsider heard a DM"
    );
    // A DM has no invite to hand on.
    alice.send(json!({"cmd": "invite", "room": format!("@{pb}")}));
    let answer = alice.expect("invite refused", DELIVERY, |e| {
        matches!(e, Event::Error { .. } | Event::Invite { .. })
    });
    assert!(
        matches!(&answer, Event::Error { code, .. } if code == "direct_room"),
        "{answer:?}"
    );
}

#[test]
fn a_direct_message_to_a_peer_that_is_offline_arrives_when_they_meet() {
    let mut alice = NodeProcess::start("alice", &[]);
    // Dave runs once to have an identity, then goes away.
    let dave_dir = tempfile::tempdir().unwrap();
    let dave = NodeProcess::start_with_dir(
        "dave",
        dave_dir.path().to_path_buf(),
        "/ip4/127.0.0.1/tcp/0",
        &[],
    );
    let pd = dave.peer_id.clone();
    assert!(dave.quit().success());

    let id = dm(&mut alice, &pd, "call the bridge when you are back");

    let mut dave = NodeProcess::start_with_dir(
        "dave",
        dave_dir.path().to_path_buf(),
        "/ip4/127.0.0.1/tcp/0",
        &["--peer", &alice.addr()],
    );
    receives(
        &mut dave,
        &alice.peer_id.clone(),
        "call the bridge when you are back",
    );
    // The sender sees that it arrived, and at whom.
    let delivered = alice.expect(
        "delivered",
        DELIVERY,
        |e| matches!(e, Event::Delivered { id: d, .. } if *d == id),
    );
    assert!(
        matches!(&delivered, Event::Delivered { room, peers, .. }
            if *room == format!("@{pd}") && peers.contains(&pd)),
        "{delivered:?}"
    );
}

#[test]
fn a_direct_message_over_the_http_api() {
    use std::io::{Read, Write};
    let alice = NodeProcess::start("alice", &["--http", "127.0.0.1:0"]);
    let mut bob = NodeProcess::start("bob", &["--peer", &alice.addr()]);
    let (pa, pb) = (alice.peer_id.clone(), bob.peer_id.clone());
    let needle = "HTTP API listening on http://";
    assert!(alice.wait_stderr(needle, DELIVERY), "{}", alice.stderr());
    let stderr = alice.stderr();
    let start = stderr.find(needle).unwrap() + needle.len();
    let addr = stderr[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    bob.wait_presence("lobby", &[&pa], DELIVERY);

    let body = r#"{"text":"over http"}"#;
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    write!(
        stream,
        "POST /v1/peers/{pb}/messages HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let json: serde_json::Value =
        serde_json::from_str(response.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(json["room"], format!("@{pb}"));
    assert!(json["id"].is_string(), "{json}");
    receives(&mut bob, &pa, "over http");
}
