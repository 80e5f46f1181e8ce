//! The command line and the JSON-lines control behave as SPEC §2 says.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use hark_node::Event;
use hark_tests::process::DELIVERY;
use hark_tests::{hark_node_bin, NodeProcess};
use serde_json::json;

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(hark_node_bin())
        .args(args)
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn bad_options_end_with_one_line_and_exit_code_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["--bogus"], "--bogus"),
        (&["--peer", "/ip4/127.0.0.1/tcp/1"], "/p2p/"),
        (&["--peer", "not-an-address"], "multiaddr"),
        (&["--listen", "nonsense"], "multiaddr"),
        (&["--name", "has space"], "--name"),
        (&["--join", "hark:broken"], "--join"),
        (&["--join", "Bad Room!"], "--join"),
        (
            &["--network-key", "/nonexistent/swarm.key"],
            "/nonexistent/swarm.key",
        ),
        (&["keygen"], "--network"),
        (&["web-invite", "--hours", "0"], "--hours"),
        (&["web-invite", "--hours", "100000"], "--hours"),
    ];
    for (args, needle) in cases {
        let (code, stdout, stderr) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{args:?} prints one line:\n{stderr}"
        );
        assert!(
            stderr.starts_with("hark-node: ") && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
        assert!(
            !stderr.contains("panicked") && stdout.is_empty(),
            "{args:?}"
        );
    }
}

#[test]
fn help_explains_every_option() {
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    for option in [
        "--name",
        "--data-dir",
        "--listen",
        "--peer",
        "--no-mdns",
        "--network-key",
        "--join",
        "--json",
        "keygen",
    ] {
        assert!(
            stdout.contains(option),
            "--help mentions {option}:\n{stdout}"
        );
    }
}

#[test]
fn a_data_dir_in_use_is_refused() {
    let a = NodeProcess::start("alice", &[]);
    let dir = a.data_dir();
    let (code, _, stderr) = run(&["--json", "--no-mdns", "--data-dir", dir.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("in use"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn bad_json_lines_get_an_error_event_and_the_node_keeps_running() {
    let mut a = NodeProcess::start("alice", &[]);
    let bad_lines = [
        "not json",
        "{}",
        r#"{"cmd":"fly"}"#,
        r#"{"cmd":"send","room":"lobby"}"#,
        r#"{"cmd":"send","room":42,"text":"x"}"#,
        "[1,2,3]",
        "\u{0}\u{1}binary",
    ];
    for line in bad_lines {
        a.send_line(line);
        let event = a.expect("bad_command", DELIVERY, |e| {
            matches!(e, Event::Error { .. })
        });
        assert!(
            matches!(&event, Event::Error { code, .. } if code == "bad_command"),
            "{line:?} → {event:?}"
        );
    }
    let semantic: &[(serde_json::Value, &str)] = &[
        (
            json!({"cmd": "send", "room": "nowhere", "text": "x"}),
            "not_joined",
        ),
        (
            json!({"cmd": "send", "room": "lobby", "text": "   "}),
            "bad_command",
        ),
        (
            json!({"cmd": "send", "room": "lobby", "text": "x".repeat(16 * 1024 + 1)}),
            "too_long",
        ),
        (json!({"cmd": "join", "room": "no spaces"}), "bad_room"),
        (json!({"cmd": "join"}), "bad_command"),
        (json!({"cmd": "join", "invite": "hark:zzzz"}), "bad_invite"),
        // An invite field is an invite or an error, never a public room of that name.
        (json!({"cmd": "join", "invite": "nothark"}), "bad_invite"),
        (
            json!({"cmd": "join", "room": "ops", "invite": "hark:zzzz"}),
            "bad_command",
        ),
        (json!({"cmd": "create", "room": "lobby"}), "room_exists"),
        (json!({"cmd": "leave", "room": "nowhere"}), "not_joined"),
    ];
    for (command, expected) in semantic {
        a.send(command.clone());
        let event = a.expect("error", DELIVERY, |e| matches!(e, Event::Error { .. }));
        assert!(
            matches!(&event, Event::Error { code, .. } if code == expected),
            "{command} → {event:?}"
        );
    }
    a.send(json!({"cmd": "peers"}));
    a.expect("peers after bad input", DELIVERY, |e| {
        matches!(e, Event::Peers { .. })
    });
    a.send(json!({"cmd": "quit"}));
    assert!(a.quit().success());
}

/// A fresh `hark-node --json` fed `lines` and then the end of input: its stdout once it stops
/// (killed after 20 s).
fn json_session(lines: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(hark_node_bin())
        .args([
            "--json",
            "--no-mdns",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into()
}

#[test]
fn ready_is_the_first_line_even_when_commands_arrive_early() {
    let stdout = json_session(&["garbage before ready", r#"{"cmd":"quit"}"#]);
    let first: Event = serde_json::from_str(stdout.lines().next().expect("some output")).unwrap();
    assert!(matches!(first, Event::Ready { .. }), "{stdout}");
    assert!(stdout.contains("bad_command"), "{stdout}");
}

/// A script that asks and quits at once (`history`, then `quit`, on stdin) gets its answer: the
/// node answers before it stops, and that answer used to be dropped when the end of input
/// found the node already stopped (most runs). Five runs, each a fresh node.
#[test]
fn an_answer_given_before_quit_is_printed() {
    for run in 0..5 {
        let stdout = json_session(&[r#"{"cmd":"history","room":"lobby"}"#, r#"{"cmd":"quit"}"#]);
        assert!(
            stdout.lines().any(|l| l.contains(r#""event":"history""#)),
            "run {run}: {stdout}"
        );
    }
}

/// A bot that says something and is done (`voice`, then the end of its input) is heard to
/// the end: the node stops only once the WAV has played (`voice_sent`).
#[test]
fn a_voice_command_at_the_end_of_input_plays_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    hark_tests::tone_wav(&wav, 0.5);
    let command = serde_json::json!({"cmd": "voice", "room": "lobby", "wav": wav, "id": 1});
    let stdout = json_session(&[&command.to_string()]);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(r#""event":"voice_sent""#) && l.contains(r#""cmd_id":1"#)),
        "{stdout}"
    );
}

#[test]
fn sigterm_and_sigint_stop_the_node_while_stdin_stays_open() {
    for signal in ["TERM", "INT"] {
        let a = NodeProcess::start("alice", &[]);
        let status = a.signal_and_wait(signal, Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| s.success()),
            "SIG{signal}: the node exits by itself, cleanly: {status:?}"
        );
    }
}
