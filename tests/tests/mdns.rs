//! mDNS discovery inside network namespaces this test builds (three hosts on a bridge) and
//! tears down, even when it fails. mDNS never runs in the root namespace.

use std::io::Write;

use hark_node::Event;
use hark_tests::netns::{self, Lan};
use hark_tests::process::{wait_all_present, DELIVERY};
use hark_tests::NodeProcess;
use serde_json::json;
use std::time::Duration;

/// Say loudly that a test could not run: on stderr, and in a file `make test` prints at the end.
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

#[test]
fn nodes_on_one_lan_find_each_other_by_mdns_and_chat() {
    if let Some(why) = netns::unavailable() {
        return skip(
            "mdns::nodes_on_one_lan_find_each_other_by_mdns_and_chat",
            &why,
        );
    }
    let lan = match Lan::new("m", 3) {
        Ok(lan) => lan,
        Err(why) => {
            return skip(
                "mdns::nodes_on_one_lan_find_each_other_by_mdns_and_chat",
                &why,
            )
        }
    };
    // Default listening (all interfaces, TCP and QUIC), mDNS on, no --peer.
    let mut nodes: Vec<NodeProcess> = ["alice", "bob", "carol"]
        .iter()
        .enumerate()
        .map(|(i, name)| NodeProcess::start_raw(name, &[], &[], Some(&lan.exec_prefix(i))))
        .collect();
    let ids: Vec<String> = nodes.iter().map(|n| n.peer_id.clone()).collect();
    for node in &nodes {
        // `ready` lists every interface address of the wildcard listeners, TCP and QUIC.
        let lan_tcp = node
            .listen
            .iter()
            .any(|a| a.starts_with("/ip4/10.231.") && a.contains("/tcp/"));
        let lan_quic = node
            .listen
            .iter()
            .any(|a| a.starts_with("/ip4/10.231.") && a.contains("/quic-v1/"));
        assert!(lan_tcp && lan_quic, "{}: {:?}", node.name, node.listen);
    }
    wait_all_present(&mut nodes, "lobby", Duration::from_secs(10));
    nodes[0].send(json!({"cmd": "send", "room": "lobby", "text": "found you by mdns"}));
    for node in &mut nodes[1..] {
        let got = node.expect(
            "alice's message",
            Duration::from_secs(10),
            |e| matches!(e, Event::Message { text, .. } if text == "found you by mdns"),
        );
        assert!(matches!(got, Event::Message { from, .. } if from == ids[0]));
    }
    // One connection per pair: the dial rule keeps both sides from dialling each other.
    nodes[1].send(json!({"cmd": "peers"}));
    let Event::Peers { peers } =
        nodes[1].expect("peers", DELIVERY, |e| matches!(e, Event::Peers { .. }))
    else {
        unreachable!()
    };
    assert_eq!(peers.len(), 2, "{peers:?}");
    assert!(
        peers.iter().all(|p| p.addrs.len() == 1),
        "one connection per pair: {peers:?}"
    );
    drop(nodes);
    drop(lan);
}
