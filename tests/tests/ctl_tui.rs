//! `hark-node ctl` against a running `hark` (the TUI, in tmux): its control socket takes the
//! same commands as a relay's, and `ptt start|stop` keys the TUI's microphone (here the machine
//! has no audio device, so the TUI says so on screen).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hark_node::Event;
use hark_tests::process::{hark_node_bin, DELIVERY};
use hark_tests::tmux::{hark_bin, Tmux};
use hark_tests::NodeProcess;

fn ctl(data_dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(hark_node_bin())
        .arg("ctl")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + DELIVERY;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ctl {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn ctl_drives_a_running_hark_and_ptt_reaches_its_microphone() {
    let mut bob = NodeProcess::start("bob", &[]);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("alice");
    let command = format!(
        "{} --no-mdns --listen /ip4/127.0.0.1/tcp/0 --data-dir {} --name alice --peer {}; exec sleep 600",
        hark_bin().display(),
        data_dir.display(),
        bob.addr()
    );
    let tmux = Tmux::start(100, 30, &command);
    tmux.wait_for("F1 help");
    tmux.wait_for(" · 1 peer · ");

    let out = ctl(&data_dir, &["send", "lobby", "from a script"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    bob.expect("the scripted line", DELIVERY, |e| {
        matches!(e, Event::Message { name, text, .. } if name == "alice" && text == "from a script")
    });
    // hark shows what a script said through its node, as its own line.
    tmux.wait_for("from a script");
    let out = ctl(&data_dir, &["peers"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&bob.peer_id));

    // hark takes ptt (a hark-node would refuse it); with no audio device it says so.
    let out = ctl(&data_dir, &["ptt", "start", "lobby"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    tmux.wait_for("voice not available");
    let out = ctl(&data_dir, &["ptt", "stop", "lobby"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = ctl(&data_dir, &["ptt", "start", "nowhere"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
