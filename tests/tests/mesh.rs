//! Three `hark-node --json --no-mdns` processes on 127.0.0.1, peered with `--peer`.

use std::time::Duration;

use hark_node::Event;
use hark_tests::process::{wait_all_present, DELIVERY};
use hark_tests::NodeProcess;
use serde_json::json;

#[test]
fn a_message_reaches_the_other_two_exactly_once() {
    let mut a = NodeProcess::start("alice", &[]);
    let mut b = NodeProcess::start("bob", &["--peer", &a.addr()]);
    let mut c = NodeProcess::start("carol", &["--peer", &a.addr(), "--peer", &b.addr()]);
    let (pa, pb, pc) = (a.peer_id.clone(), b.peer_id.clone(), c.peer_id.clone());
    a.wait_presence("lobby", &[&pb, &pc], DELIVERY);
    b.wait_presence("lobby", &[&pa, &pc], DELIVERY);
    c.wait_presence("lobby", &[&pa, &pb], DELIVERY);

    a.send(json!({"cmd": "send", "room": "lobby", "text": "pump 4 is running hot"}));
    let sent = a.expect("sent", DELIVERY, |e| matches!(e, Event::Sent { .. }));
    let Event::Sent { id: sent_id, room } = sent else {
        unreachable!()
    };
    assert_eq!(room, "lobby");

    for node in [&mut b, &mut c] {
        let got = node.expect(
            "alice's message",
            DELIVERY,
            |e| matches!(e, Event::Message { text, .. } if text == "pump 4 is running hot"),
        );
        let Event::Message {
            room,
            id,
            from,
            name,
            kind,
            ts,
            ..
        } = got
        else {
            unreachable!()
        };
        assert_eq!(
            (
                room.as_str(),
                id.as_str(),
                from.as_str(),
                name.as_str(),
                kind.as_str()
            ),
            ("lobby", sent_id.as_str(), pa.as_str(), "alice", "text")
        );
        assert!(
            ts > 1_700_000_000_000,
            "timestamp is wall-clock milliseconds: {ts}"
        );
    }

    // A second message from another sender, after the first: once it has arrived everywhere,
    // any duplicate of the first would have arrived too.
    c.send(json!({"cmd": "me", "room": "lobby", "text": "checks the pump"}));
    for node in [&mut a, &mut b] {
        node.expect("carol's action", DELIVERY, |e| matches!(e, Event::Message { kind, text, .. } if kind == "me" && text == "checks the pump"));
    }
    for node in [&mut b, &mut c] {
        assert_eq!(
            node.messages_with_text("pump 4 is running hot").len(),
            1,
            "{} got it exactly once",
            node.name
        );
    }
    assert!(
        a.messages_with_text("pump 4 is running hot").is_empty(),
        "the sender does not get its own message back"
    );
    assert_eq!(a.messages_with_text("checks the pump").len(), 1);
}

#[test]
fn alerts_typing_and_peer_list_cross_the_mesh() {
    let mut a = NodeProcess::start("alice", &[]);
    let mut b = NodeProcess::start("bob", &["--peer", &a.addr()]);
    let (pa, pb) = (a.peer_id.clone(), b.peer_id.clone());
    a.wait_presence("lobby", &[&pb], DELIVERY);
    b.wait_presence("lobby", &[&pa], DELIVERY);

    b.send(json!({"cmd": "typing", "room": "lobby"}));
    a.expect(
        "typing from bob",
        DELIVERY,
        |e| matches!(e, Event::Typing { from, name, .. } if *from == pb && name == "bob"),
    );
    b.send(json!({"cmd": "alert", "room": "lobby", "text": "fire alarm on deck 2"}));
    a.expect("bob's alert", DELIVERY, |e| matches!(e, Event::Message { kind, text, .. } if kind == "alert" && text == "fire alarm on deck 2"));

    a.send(json!({"cmd": "peers"}));
    let Event::Peers { peers } = a.expect("peers", DELIVERY, |e| matches!(e, Event::Peers { .. }))
    else {
        unreachable!()
    };
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].peer_id, pb);
    assert_eq!(peers[0].name, "bob");
    assert!(
        peers[0]
            .addrs
            .iter()
            .any(|a| a.starts_with("/ip4/127.0.0.1/tcp/")),
        "{peers:?}"
    );
}

#[test]
fn a_dropped_static_peer_is_redialled_when_it_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let a_dir = dir.path().join("alice");
    let a = NodeProcess::start_with_dir("alice", a_dir.clone(), "/ip4/127.0.0.1/tcp/0", &[]);
    let (a_addr, a_id) = (a.addr(), a.peer_id.clone());
    let mut b = NodeProcess::start("bob", &["--peer", &a_addr]);
    b.expect(
        "connection to alice",
        DELIVERY,
        |e| matches!(e, Event::PeerConnected { peer_id } if *peer_id == a_id),
    );

    a.kill();
    b.expect(
        "alice gone",
        DELIVERY,
        |e| matches!(e, Event::PeerDisconnected { peer_id } if *peer_id == a_id),
    );

    let listen = a_addr.split("/p2p/").next().unwrap().to_owned();
    let mut a = NodeProcess::start_with_dir("alice", a_dir, &listen, &[]);
    assert_eq!(a.peer_id, a_id, "identity survives a restart");
    b.expect(
        "reconnection to alice",
        Duration::from_secs(40),
        |e| matches!(e, Event::PeerConnected { peer_id } if *peer_id == a_id),
    );
    let pb = b.peer_id.clone();
    a.wait_presence("lobby", &[&pb], DELIVERY);
    b.send(json!({"cmd": "send", "room": "lobby", "text": "welcome back"}));
    a.expect(
        "message after reconnect",
        DELIVERY,
        |e| matches!(e, Event::Message { text, .. } if text == "welcome back"),
    );
}

#[test]
fn a_message_sent_before_any_peer_is_delivered_when_one_arrives() {
    let mut a = NodeProcess::start("alice", &[]);
    a.send(json!({"cmd": "send", "room": "lobby", "text": "anyone there?"}));
    a.expect("sent while alone", DELIVERY, |e| {
        matches!(e, Event::Sent { .. })
    });
    let mut b = NodeProcess::start("bob", &["--peer", &a.addr()]);
    let got = b.expect(
        "the early message",
        DELIVERY,
        |e| matches!(e, Event::Message { text, .. } if text == "anyone there?"),
    );
    assert!(matches!(got, Event::Message { from, .. } if from == a.peer_id));
}

#[test]
fn after_leaving_a_room_nothing_more_of_it_arrives() {
    let mut a = NodeProcess::start("alice", &["--join", "ops"]);
    let mut b = NodeProcess::start("bob", &["--join", "ops", "--peer", &a.addr()]);
    let (pa, pb) = (a.peer_id.clone(), b.peer_id.clone());
    a.wait_presence("ops", &[&pb], DELIVERY);
    b.wait_presence("ops", &[&pa], DELIVERY);

    b.send(json!({"cmd": "leave", "room": "lobby"}));
    b.expect(
        "left",
        DELIVERY,
        |e| matches!(e, Event::Left { room } if room == "lobby"),
    );
    b.send(json!({"cmd": "send", "room": "lobby", "text": "x"}));
    b.expect(
        "not_joined",
        DELIVERY,
        |e| matches!(e, Event::Error { code, .. } if code == "not_joined"),
    );

    a.send(json!({"cmd": "send", "room": "lobby", "text": "after bob left"}));
    a.send(json!({"cmd": "send", "room": "ops", "text": "sentinel"}));
    b.expect(
        "the ops sentinel",
        DELIVERY,
        |e| matches!(e, Event::Message { room, text, .. } if room == "ops" && text == "sentinel"),
    );
    assert!(b.messages_with_text("after bob left").is_empty());
}

/// Our gossipsub fork chokes mesh links that only bring duplicates (third_party/
/// libp2p-gossipsub/HARK.md). Seven nodes in a ladder (each linked to the two before it), so
/// that most messages take several hops and a node in the middle hears each one over two or
/// more links until it chokes the redundant ones. After that, messages from every node, sent
/// all at once, must still reach every other node exactly once. With one pushing link per room
/// (a tree built for n0's messages) the others' messages may need a gap filled by IHAVE/IWANT
/// within a heartbeat; the rules for that, and for links that go silent, are tested in the fork.
#[test]
fn with_links_choked_every_sender_still_reaches_everyone_exactly_once() {
    const NODES: usize = 7;
    let log = [("RUST_LOG", "libp2p_gossipsub::choke=debug,warn")];
    let mut nodes: Vec<NodeProcess> = Vec::new();
    for i in 0..NODES {
        let peers: Vec<String> = nodes.iter().rev().take(2).map(|n| n.addr()).collect();
        let mut args = Vec::new();
        for p in &peers {
            args.extend(["--peer", p.as_str()]);
        }
        nodes.push(NodeProcess::start_with_env(&format!("n{i}"), &log, &args));
    }
    wait_all_present(&mut nodes, "lobby", DELIVERY);

    // One sender until links are choked (after the first heartbeat, three duplicates in a
    // row on a link).
    let deadline = std::time::Instant::now() + DELIVERY;
    let mut warm = 0;
    while !nodes
        .iter()
        .any(|n| n.stderr().contains("Choking a mesh link"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no link was choked; n1's log:\n{}",
            nodes[1].stderr()
        );
        nodes[0].send(json!({"cmd": "send", "room": "lobby", "text": format!("warm {warm}")}));
        warm += 1;
        let _ = nodes[1].wait_for(Duration::from_millis(200), |_| false);
    }

    // Everyone at once.
    const EACH: usize = 10;
    for round in 0..EACH {
        for (i, node) in nodes.iter_mut().enumerate() {
            node.send(
                json!({"cmd": "send", "room": "lobby", "text": format!("from n{i} #{round}")}),
            );
        }
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        for j in (0..NODES).filter(|j| *j != i) {
            for round in 0..EACH {
                let text = format!("from n{j} #{round}");
                if node.messages_with_text(&text).is_empty() {
                    node.expect(
                        &text,
                        DELIVERY,
                        |e| matches!(e, Event::Message { text: t, .. } if *t == text),
                    );
                }
            }
        }
    }
    // Nothing twice, after a moment for any late copy to show.
    let _ = nodes[0].wait_for(Duration::from_millis(500), |_| false);
    for node in nodes.iter_mut() {
        node.drain();
        let mut texts: Vec<&str> = node
            .seen
            .iter()
            .filter_map(|e| match e {
                Event::Message { text, .. } if text.starts_with("from ") => Some(text.as_str()),
                _ => None,
            })
            .collect();
        let all = texts.len();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), all, "{} showed a message twice", node.name);
        assert_eq!(all, (NODES - 1) * EACH, "{}", node.name);
    }
}
