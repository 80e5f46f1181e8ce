//! Direct messages on loopback: `dm {to,text}` opens `@PEER` on both sides with a key only the
//! two derive; an outsider connected to both sees nothing; a DM to a peer that is offline
//! arrives by sync when they next meet.

use hark_node::Event;
use hark_tests::process::DELIVERY;
use hark_tests::NodeProcess;
use serde_json::json;

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

    dm(&mut alice, &pd, "call the bridge when you are back");

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
}
