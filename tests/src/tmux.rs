//! Driving the real `hark` in a terminal: a tmux server of the test's own (its own socket, no
//! user config) running one command, polled with deadlines and killed on drop, even when the
//! test fails.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::process::hark_node_bin;

/// How long a test waits for something to show on the screen.
pub const SCREEN_DEADLINE: Duration = Duration::from_secs(30);

pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// A `width` × `height` pane running `command` (a shell command line).
    pub fn start(width: u16, height: u16, command: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmux = Tmux {
            socket: format!("hark-e2e-{}-{nanos}", std::process::id()),
        };
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "e2e",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux is installed (make deps installs it)")
    }

    /// Type `text` literally.
    pub fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "e2e", "-l", text]);
    }

    /// Press a key by its tmux name (`Enter`, `C-c`, …).
    pub fn key(&self, key: &str) {
        self.run(&["send-keys", "-t", "e2e", key]);
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "e2e"]).stdout).into_owned()
    }

    /// A tmux format about the pane (`#{pane_dead}`, …).
    pub fn pane_format(&self, format: &str) -> String {
        String::from_utf8_lossy(
            &self
                .run(&["display-message", "-p", "-t", "e2e", format])
                .stdout,
        )
        .trim()
        .to_owned()
    }

    /// Poll the pane until `needle` shows, or fail with what the pane shows.
    pub fn wait_for(&self, needle: &str) -> String {
        self.wait_screen(&format!("{needle:?}"), |screen| screen.contains(needle))
    }

    /// Poll the pane until a line holds `needle` and passes `check`; that line.
    pub fn wait_line(&self, needle: &str, check: impl Fn(&str) -> bool) -> String {
        let wanted = |line: &&str| line.contains(needle) && check(line);
        let screen = self.wait_screen(&format!("a line with {needle:?} as wanted"), |screen| {
            screen.lines().any(|line| wanted(&line))
        });
        let line = screen.lines().find(wanted).unwrap_or_default();
        line.to_owned()
    }

    fn wait_screen(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_DEADLINE;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not appear within {SCREEN_DEADLINE:?}; the pane shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The `hark` binary built beside `hark-node`.
pub fn hark_bin() -> PathBuf {
    let bin = hark_node_bin().with_file_name("hark");
    assert!(
        bin.exists(),
        "{} is missing: cargo build --workspace --bins",
        bin.display()
    );
    bin
}
