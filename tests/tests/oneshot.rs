//! One-shot sends that arrive: `hark-node --json` given messages and then the end of its input,
//! and `hark-node send`, stay until a peer holds each message (exit 0), or say why not and exit
//! 1 after the timeout. Loopback only.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hark_node::Event;
use hark_tests::process::{hark_node_bin, DELIVERY};
use hark_tests::NodeProcess;

/// Run to completion within `within` (killed otherwise); stdin given.
fn run(args: &[&str], stdin: &[u8], within: Duration) -> (Option<i32>, String, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(hark_node_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > within {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn the_panic_button_reaches_a_reachable_peer_before_the_process_exits() {
    let mut b = NodeProcess::start("bob", &[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let addr = b.addr();
    let (code, stdout, stderr, _) = run(
        &[
            "--json",
            "--no-mdns",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--data-dir",
            &data,
            "--peer",
            &addr,
        ],
        b"{\"cmd\":\"alert\",\"room\":\"lobby\",\"text\":\"fire\"}\n",
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    assert!(stdout.contains("\"event\":\"sent\""), "{stdout}");
    assert!(stdout.contains("\"event\":\"delivered\""), "{stdout}");
    // Held by bob by the time the process said so: no waiting needed beyond a moment.
    b.expect(
        "the alert",
        Duration::from_secs(2),
        |e| matches!(e, Event::Message { text, kind, .. } if text == "fire" && kind == "alert"),
    );

    // The sub-command does the same.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let (code, stdout, stderr, _) = run(
        &[
            "send",
            "--no-mdns",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--data-dir",
            &data,
            "--peer",
            &addr,
            "--text",
            "pump 4",
            "--alert",
        ],
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    assert!(stdout.starts_with("delivered "), "{stdout}");
    b.expect(
        "the second alert",
        Duration::from_secs(2),
        |e| matches!(e, Event::Message { text, .. } if text == "pump 4"),
    );
}

#[test]
fn with_no_peer_reachable_it_says_so_and_exits_non_zero() {
    // A peer id that is real but not listening there.
    let gone = NodeProcess::start("gone", &[]);
    let addr = format!("/ip4/127.0.0.1/tcp/1/p2p/{}", gone.peer_id);
    gone.kill();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let (code, stdout, stderr, took) = run(
        &[
            "send",
            "--no-mdns",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--data-dir",
            &data,
            "--peer",
            &addr,
            "--text",
            "anyone?",
            "--deliver-timeout",
            "2",
        ],
        b"",
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(1), "stdout {stdout}\nstderr {stderr}");
    assert!(stdout.is_empty(), "no success printed: {stdout}");
    let reason = stderr
        .lines()
        .find(|l| l.starts_with("hark-node send:"))
        .unwrap_or_else(|| panic!("a reason line: {stderr}"));
    assert!(reason.contains("not delivered within 2 s"), "{reason}");
    assert!(reason.contains("no peer was reachable"), "{reason}");
    assert!(
        took >= Duration::from_secs(2) && took < DELIVERY,
        "{took:?}"
    );

    // `--json` at the end of its input waits the default 10 s, then the same.
    let (code, stdout, stderr, took) = run(
        &[
            "--json",
            "--no-mdns",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--data-dir",
            &data,
            "--peer",
            &addr,
        ],
        b"{\"cmd\":\"alert\",\"room\":\"lobby\",\"text\":\"fire\"}\n",
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(1), "stdout {stdout}\nstderr {stderr}");
    assert!(stdout.contains("\"event\":\"sent\""), "{stdout}");
    assert!(!stdout.contains("\"event\":\"delivered\""), "{stdout}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("not delivered within 10 s")),
        "{stderr}"
    );
    assert!(took >= Duration::from_secs(10), "{took:?}");
}
