//! The real `hark` binary driven in tmux, next to a `hark-node --json` peer on loopback: what
//! is typed into the TUI reaches the node, what the node sends shows in the pane, and `/quit`
//! gives the terminal back as it was.
//!
//! Every wait polls `tmux capture-pane` (or the node's events) against a deadline. Each test
//! runs its own tmux server (`-L` with a unique socket name), killed on drop even when the test
//! fails; the server's end hangs up on `hark`, which then exits.

use std::path::Path;
use std::time::{Duration, Instant};

use hark_node::Event;
use hark_tests::process::DELIVERY;
use hark_tests::tmux::{hark_bin, Tmux, SCREEN_DEADLINE};
use hark_tests::NodeProcess;
use serde_json::json;

/// The shell line tmux runs: note the terminal settings, run hark, and say afterwards whether
/// the settings are back and how hark exited. The pane stays open to be read.
fn wrapped(hark: &Path, dir: &Path, args: &[&str]) -> String {
    let dir = dir.display();
    format!(
        "stty -g > {dir}/stty.before; {} {}; code=$?; stty -g > {dir}/stty.after; \
         if cmp -s {dir}/stty.before {dir}/stty.after; then echo \"TERMINAL RESTORED exit=$code\"; \
         else echo \"TERMINAL NOT RESTORED exit=$code\"; fi; exec sleep 600",
        hark.display(),
        args.join(" ")
    )
}

#[test]
fn text_typed_in_the_tui_reaches_a_node_and_back_and_quit_restores_the_terminal() {
    let mut bob = NodeProcess::start("bob", &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("alice");
    let bob_addr = bob.addr();
    let data_dir_text = data_dir.display().to_string();
    let args = [
        "--no-mdns",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--data-dir",
        &data_dir_text,
        "--name",
        "alice",
        "--peer",
        &bob_addr,
    ];
    let tmux = Tmux::start(100, 30, &wrapped(&hark_bin(), dir.path(), &args));

    // The UI is up and has met bob: the status bar counts him.
    tmux.wait_for("F1 help");
    tmux.wait_for("alice#");
    tmux.wait_for(" · 1 peer · ");
    assert_eq!(
        tmux.pane_format("#{alternate_on}"),
        "1",
        "hark uses the alternate screen"
    );

    // Typed in the TUI, it arrives at the node.
    tmux.type_text("hello from the tui");
    tmux.key("Enter");
    let got = bob.expect("alice's line", DELIVERY, |e| {
        matches!(e, Event::Message { name, text, .. } if name == "alice" && text == "hello from the tui")
    });
    let Event::Message { room, .. } = got else {
        unreachable!()
    };
    assert_eq!(room, "lobby");
    // …and shows in alice's own pane once the node reports it sent.
    tmux.wait_for("alice#");
    tmux.wait_for("hello from the tui");

    // Sent by the node, it shows in the pane with bob's name and short id.
    bob.send(json!({"cmd": "send", "room": "lobby", "text": "hello from the node"}));
    let short = &bob.peer_id[bob.peer_id.len() - 4..];
    let screen = tmux.wait_for("hello from the node");
    assert!(
        screen.contains(&format!("bob#{short} hello from the node")),
        "{screen}"
    );

    // A bad command gets a one-line hint and nothing breaks.
    tmux.type_text("/frobnicate");
    tmux.key("Enter");
    tmux.wait_for("unknown command /frobnicate");
    tmux.key("C-u");

    // /quit leaves, and the terminal is as it was: settings, main screen, cursor shown.
    tmux.type_text("/quit");
    tmux.key("Enter");
    let screen = tmux.wait_for("TERMINAL ");
    assert!(screen.contains("TERMINAL RESTORED exit=0"), "{screen}");
    assert_eq!(tmux.pane_format("#{alternate_on}"), "0", "{screen}");
    assert_eq!(tmux.pane_format("#{cursor_flag}"), "1", "{screen}");
    // Logs went to the data dir, not onto the screen.
    let log = std::fs::read_to_string(data_dir.join("hark.log")).expect("hark.log");
    assert!(log.contains("ready"), "{log}");
    assert!(!screen.contains("INFO"), "{screen}");
}

/// This machine has no sound card (`/dev/snd` is absent): `hark` says once that voice is not
/// available, libasound's complaints stay off the screen (they go to hark.log), the status
/// bar says "voice n/a", and text chat works.
#[test]
fn without_an_audio_device_voice_says_so_once_and_text_chat_works() {
    let mut bob = NodeProcess::start("bob", &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("alice");
    let bob_addr = bob.addr();
    let data_dir_text = data_dir.display().to_string();
    let args = [
        "--no-mdns",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--data-dir",
        &data_dir_text,
        "--name",
        "alice",
        "--peer",
        &bob_addr,
    ];
    let tmux = Tmux::start(100, 30, &wrapped(&hark_bin(), dir.path(), &args));
    tmux.wait_for("F1 help");
    tmux.wait_for(" · 1 peer · ");
    tmux.wait_for("voice n/a");

    const NOTICE: &str = "voice not available: no audio device";
    // Pressed twice: one notice in the timeline (and the hint line, cleared by Escape).
    tmux.key("F2");
    tmux.wait_for(NOTICE);
    tmux.key("F2");
    tmux.key("Escape");
    // Wait for the Escape to be handled before typing (Escape then a letter at once reads
    // as Alt+letter).
    let deadline = Instant::now() + SCREEN_DEADLINE;
    loop {
        let screen = tmux.screen();
        if screen.matches(NOTICE).count() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the hint stayed:\n{screen}");
        std::thread::sleep(Duration::from_millis(100));
    }
    tmux.type_text("still here");
    tmux.key("Enter");
    bob.expect("alice's line", DELIVERY, |e| {
        matches!(e, Event::Message { name, text, .. } if name == "alice" && text == "still here")
    });
    let screen = tmux.wait_for(" still here");
    assert_eq!(screen.matches(NOTICE).count(), 1, "{screen}");
    for noise in ["ALSA", "cannot find card", "snd_", "Unknown PCM"] {
        assert!(!screen.contains(noise), "{noise:?} on screen:\n{screen}");
    }

    tmux.type_text("/quit");
    tmux.key("Enter");
    let screen = tmux.wait_for("TERMINAL ");
    assert!(screen.contains("TERMINAL RESTORED exit=0"), "{screen}");
    for noise in ["ALSA", "cannot find card"] {
        assert!(!screen.contains(noise), "{noise:?} on screen:\n{screen}");
    }
    let log = std::fs::read_to_string(data_dir.join("hark.log")).expect("hark.log");
    assert!(log.contains("no audio input"), "{log}");
}
