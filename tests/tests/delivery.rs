//! Delivery marks end to end (docs/protocol.md, Delivery marks): alice, bob and carol in a
//! room, carol away; what alice sends is marked held by bob (1 of 2 members), and by carol too
//! (2 of 2) once she is back — from the syncs the nodes run anyway, with no client asking. Then
//! the same through the real `hark` in tmux: `✓✓ 1/2` and then `✓✓` beside the message. A
//! control-socket client (`hark-node ctl tail`) gets the events like any other.
//!
//! Processes on loopback with `--no-mdns`; every wait has a deadline.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hark_node::Event;
use hark_tests::process::{hark_node_bin, DELIVERY};
use hark_tests::tmux::{hark_bin, Tmux, SCREEN_DEADLINE};
use hark_tests::NodeProcess;
use serde_json::json;

/// Alice's next `delivered` for `id`, as (holders, N, M).
fn next_delivered(alice: &mut NodeProcess, id: &str) -> (Vec<String>, usize, usize) {
    match alice.expect(
        "delivered",
        DELIVERY,
        |e| matches!(e, Event::Delivered { id: d, .. } if d == id),
    ) {
        Event::Delivered {
            peers,
            members,
            members_holding,
            ..
        } => (peers, members_holding, members),
        _ => unreachable!("expect returns a matching event"),
    }
}

#[test]
fn marks_grow_from_the_member_online_to_the_one_who_comes_back() {
    let mut alice = NodeProcess::start("alice", &[]);
    let mut bob = NodeProcess::start("bob", &["--peer", &alice.addr()]);
    let carol_dir = tempfile::tempdir().expect("temp dir");
    let carol_path = carol_dir.path().to_path_buf();
    let carol = NodeProcess::start_with_dir(
        "carol",
        carol_path.clone(),
        "/ip4/127.0.0.1/tcp/0",
        &["--peer", &alice.addr()],
    );
    let carol_id = carol.peer_id.clone();
    // Alice has heard both in the lobby: two members.
    alice.wait_presence("lobby", &[&bob.peer_id, &carol_id], DELIVERY);
    // A control-socket client follows alice's events as they come: it gets `delivered` too.
    let tail = Tail::start(&alice.data_dir());

    // Carol goes away.
    assert!(carol.quit().success());
    alice.expect(
        "carol gone",
        DELIVERY,
        |e| matches!(e, Event::PeerDisconnected { peer_id } if *peer_id == carol_id),
    );

    // Alice writes; nobody asks for confirmation, yet the mark moves: bob holds it, 1 of 2.
    alice.send(json!({"cmd": "send", "room": "lobby", "text": "pump 4 is running hot"}));
    let id = match alice.expect("sent", DELIVERY, |e| matches!(e, Event::Sent { .. })) {
        Event::Sent { id, .. } => id,
        _ => unreachable!(),
    };
    bob.expect(
        "alice's line",
        DELIVERY,
        |e| matches!(e, Event::Message { text, .. } if text == "pump 4 is running hot"),
    );
    assert_eq!(
        next_delivered(&mut alice, &id),
        (vec![bob.peer_id.clone()], 1, 2)
    );

    // Carol comes back: her node syncs on meeting alice's, and alice's mark grows to 2 of 2.
    let mut carol = NodeProcess::start_with_dir(
        "carol",
        carol_path,
        "/ip4/127.0.0.1/tcp/0",
        &["--peer", &alice.addr()],
    );
    carol.expect(
        "alice's line, synced",
        DELIVERY,
        |e| matches!(e, Event::Message { text, .. } if text == "pump 4 is running hot"),
    );
    let (holders, n, m) = next_delivered(&mut alice, &id);
    assert_eq!(holders, vec![bob.peer_id.clone(), carol_id.clone()]);
    assert_eq!((n, m), (2, 2));
    // Each growth was reported once: exactly the two events.
    alice.drain();
    let events = alice
        .seen
        .iter()
        .filter(|e| matches!(e, Event::Delivered { id: d, .. } if *d == id))
        .count();
    assert_eq!(events, 2, "{:#?}", alice.seen);
    let line = tail.wait_line(|l| {
        l["event"] == "delivered" && l["id"] == id.as_str() && l["members_holding"] == 2
    });
    assert_eq!(line["members"], 2, "{line}");
    assert_eq!(line["peers"].as_array().map(Vec::len), Some(2), "{line}");
}

/// `hark-node ctl tail lobby` on a node's control socket, its JSON lines read as they come;
/// killed on drop.
struct Tail {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Tail {
    fn start(data_dir: &Path) -> Self {
        let mut child = Command::new(hark_node_bin())
            .arg("ctl")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["tail", "lobby"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("hark-node ctl tail");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(value) = serde_json::from_str(&line) {
                    if tx.send(value).is_err() {
                        break;
                    }
                }
            }
        });
        Tail { child, lines }
    }

    /// The first line (from the start) that passes `check`, within [`DELIVERY`].
    fn wait_line(&self, check: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + DELIVERY;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if check(&line) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("ctl tail printed no such line within {DELIVERY:?}: {seen:#?}"),
            }
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The listen address of the node inside `hark`, from the `ready` line of its control socket.
fn hark_addr(data_dir: &Path) -> String {
    let socket = data_dir.join("control.sock");
    let deadline = Instant::now() + SCREEN_DEADLINE;
    let stream = loop {
        match UnixStream::connect(&socket) {
            Ok(stream) => break stream,
            Err(e) => {
                assert!(Instant::now() < deadline, "{}: {e}", socket.display());
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    stream
        .set_read_timeout(Some(SCREEN_DEADLINE))
        .expect("read timeout");
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .expect("ready from the control socket");
    let ready: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    ready["listen"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no listen address in {line}"))
        .to_owned()
}

#[test]
fn the_tui_shows_the_mark_grow_beside_its_message() {
    let hark = hark_bin();
    let dir = tempfile::tempdir().expect("temp dir");
    let alice_dir = dir.path().join("alice");
    let command = format!(
        "{} --no-mdns --listen /ip4/127.0.0.1/tcp/0 --data-dir {} --name alice; exec sleep 600",
        hark.display(),
        alice_dir.display()
    );
    let tmux = Tmux::start(100, 30, &command);
    tmux.wait_line("F1 help", |_| true);
    let alice_addr = hark_addr(&alice_dir);

    let bob = NodeProcess::start("bob", &["--peer", &alice_addr]);
    let carol_path = dir.path().join("carol");
    let carol = NodeProcess::start_with_dir(
        "carol",
        carol_path.clone(),
        "/ip4/127.0.0.1/tcp/0",
        &["--peer", &alice_addr],
    );
    // Both are heard in the lobby: the people list shows them.
    let (bob_short, carol_short) = (
        bob.peer_id[bob.peer_id.len() - 4..].to_owned(),
        carol.peer_id[carol.peer_id.len() - 4..].to_owned(),
    );
    tmux.wait_line(&format!("bob#{bob_short}"), |_| true);
    tmux.wait_line(&format!("carol#{carol_short}"), |_| true);
    tmux.wait_line(" · 2 peers · ", |_| true);

    // Carol goes away; alice types a line.
    assert!(carol.quit().success());
    tmux.wait_line(" · 1 peer · ", |_| true);
    tmux.run(&["send-keys", "-t", "e2e", "-l", "pump 4 is running hot"]);
    tmux.run(&["send-keys", "-t", "e2e", "Enter"]);
    let line = tmux.wait_line("pump 4 is running hot", |l| l.contains("✓✓ 1/2"));
    assert!(line.contains("alice#"), "{line}");

    // Carol is back: all of the members hold it, `✓✓` alone.
    let _carol = NodeProcess::start_with_dir(
        "carol",
        carol_path,
        "/ip4/127.0.0.1/tcp/0",
        &["--peer", &alice_addr],
    );
    let line = tmux.wait_line("pump 4 is running hot", |l| {
        l.contains("hot ✓✓") && !l.contains("1/2")
    });
    assert!(!line.contains("2/2"), "all members: no count, {line}");
    // For the log of a run (`--nocapture`): the screen as the user saw it.
    eprintln!("{}", tmux.screen());
    drop(bob);
}
