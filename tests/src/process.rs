//! `hark-node --json` as a child process, driven line by line.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hark_node::{Event, HistoryMessage};
use tempfile::TempDir;

/// The `hark-node` binary next to the running test (`target/<profile>/hark-node`), or
/// `$HARK_NODE_BIN`. `make test` builds it before the tests run.
pub fn hark_node_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("HARK_NODE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let mut dir = exe
        .parent()
        .expect("test executable has a directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("hark-node");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p hark-node` first (make test does)",
        bin.display()
    );
    bin
}

/// A running node. Killed on drop.
pub struct NodeProcess {
    pub name: String,
    pub peer_id: String,
    /// Listen addresses with `/p2p/…`, from the `ready` event.
    pub listen: Vec<String>,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Lines as read, stamped then and parsed by the reader of the events: a reader thread
    /// that parsed as it went would fall behind a burst (a 100k catch-up) and stamp late.
    events: Receiver<(SystemTime, String)>,
    /// Every event seen so far, including those consumed by waits.
    pub seen: Vec<Event>,
    /// When each event in `seen` was read from the node's stdout (for benchmarks).
    pub seen_at: Vec<SystemTime>,
    stderr: Arc<Mutex<String>>,
    data_dir: DataDir,
}

enum DataDir {
    Temp(TempDir),
    Given(PathBuf),
}

impl DataDir {
    fn path(&self) -> PathBuf {
        match self {
            DataDir::Temp(dir) => dir.path().to_path_buf(),
            DataDir::Given(path) => path.clone(),
        }
    }
}

pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

impl NodeProcess {
    /// Start `hark-node --json --no-mdns --listen /ip4/127.0.0.1/tcp/0 --name NAME` with a
    /// fresh data dir, plus `extra` arguments, and wait for `ready`.
    pub fn start(name: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(
            name,
            DataDir::Temp(dir),
            &["--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"],
            extra,
            None,
            &[],
        )
    }

    /// Like [`start`](Self::start), with extra environment variables (test hooks such as
    /// `HARK_CLOCK_OFFSET_MS`).
    pub fn start_with_env(name: &str, env: &[(&str, &str)], extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(
            name,
            DataDir::Temp(dir),
            &["--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"],
            extra,
            None,
            env,
        )
    }

    /// Like [`start`](Self::start) but with a given data dir (for restarts) and listen address.
    pub fn start_with_dir(name: &str, data_dir: PathBuf, listen: &str, extra: &[&str]) -> Self {
        Self::start_in(
            name,
            DataDir::Given(data_dir),
            &["--no-mdns", "--listen", listen],
            extra,
            None,
            &[],
        )
    }

    /// Start with full control: `base` arguments, and an optional command prefix such as
    /// `ip netns exec NS`.
    pub fn start_raw(name: &str, base: &[&str], extra: &[&str], prefix: Option<&[String]>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(name, DataDir::Temp(dir), base, extra, prefix, &[])
    }

    fn start_in(
        name: &str,
        data_dir: DataDir,
        base: &[&str],
        extra: &[&str],
        prefix: Option<&[String]>,
        env: &[(&str, &str)],
    ) -> Self {
        let bin = hark_node_bin();
        let mut command = match prefix {
            Some([program, args @ ..]) => {
                let mut c = Command::new(program);
                c.args(args).arg(&bin);
                c
            }
            _ => Command::new(&bin),
        };
        command
            .arg("--json")
            .arg("--name")
            .arg(name)
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(base)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("HARK_TEST_LOG").unwrap_or_else(|_| "hark_node=debug,warn".into()),
            )
            // Never a developer's ~/.config/hark/config.toml: a config home with no file.
            .env("XDG_CONFIG_HOME", data_dir.path().join("no-config"))
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");

        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((SystemTime::now(), line)).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                let mut buf = sink.lock().unwrap_or_else(|e| e.into_inner());
                // Bounded: a chatty node cannot eat the test's memory.
                if buf.len() < 8 << 20 {
                    buf.push_str(&line);
                    buf.push('\n');
                }
            }
        });

        let mut node = NodeProcess {
            name: name.to_owned(),
            peer_id: String::new(),
            listen: Vec::new(),
            child,
            stdin,
            events,
            seen: Vec::new(),
            seen_at: Vec::new(),
            stderr,
            data_dir,
        };
        match node.next_event(READY_TIMEOUT) {
            Some(Event::Ready {
                peer_id, listen, ..
            }) => {
                node.peer_id = peer_id;
                node.listen = listen;
            }
            other => panic!(
                "{name}: expected ready first, got {other:?}; stderr:\n{}",
                node.stderr()
            ),
        }
        node
    }

    /// The first listen address, with `/p2p/…`, for other nodes' `--peer`.
    pub fn addr(&self) -> String {
        self.listen
            .first()
            .cloned()
            .expect("node listens somewhere")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.path()
    }

    /// Send one JSON command line.
    pub fn send(&mut self, command: serde_json::Value) {
        self.send_line(&command.to_string());
    }

    /// Send a raw line (for malformed-input tests).
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .expect("write to node stdin");
    }

    fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok((at, line)) => {
                    if let Some(event) = self.parse(&line) {
                        self.seen.push(event.clone());
                        self.seen_at.push(at);
                        return Some(event);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn parse(&self, line: &str) -> Option<Event> {
        match serde_json::from_str::<Event>(line) {
            Ok(event) => Some(event),
            Err(e) => {
                eprintln!("[{}] unparsed stdout line ({e}): {line}", self.name);
                None
            }
        }
    }

    /// Wait until an event matching `pred` arrives, or the deadline passes.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match self.next_event(left) {
                Some(event) if pred(&event) => return Some(event),
                Some(_) => {}
                None => {
                    if self.events_closed() {
                        return None;
                    }
                }
            }
        }
    }

    /// Like [`wait_for`](Self::wait_for) but panics with context when it times out.
    pub fn expect(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl FnMut(&Event) -> bool,
    ) -> Event {
        match self.wait_for(timeout, pred) {
            Some(event) => event,
            None => panic!(
                "{}: no {what} within {timeout:?}; events seen: {:#?}\nstderr:\n{}",
                self.name,
                self.seen,
                self.stderr()
            ),
        }
    }

    /// Take every event that is already waiting, without blocking.
    pub fn drain(&mut self) {
        while let Ok((at, line)) = self.events.try_recv() {
            if let Some(event) = self.parse(&line) {
                self.seen.push(event);
                self.seen_at.push(at);
            }
        }
    }

    fn events_closed(&self) -> bool {
        matches!(
            self.events.try_recv(),
            Err(mpsc::TryRecvError::Disconnected)
        )
    }

    /// Messages seen so far (after draining) with this text.
    pub fn messages_with_text(&mut self, text: &str) -> Vec<Event> {
        self.drain();
        self.seen
            .iter()
            .filter(|e| matches!(e, Event::Message { text: t, .. } if t == text))
            .cloned()
            .collect()
    }

    /// Ask for the room's stored history and wait for the answer.
    pub fn history(&mut self, room: &str, limit: usize) -> Vec<HistoryMessage> {
        self.send(serde_json::json!({"cmd": "history", "room": room, "limit": limit}));
        match self.expect(
            "history",
            DELIVERY,
            |e| matches!(e, Event::History { room: r, .. } if r == room),
        ) {
            Event::History { messages, .. } => messages,
            _ => unreachable!("expect returns a matching event"),
        }
    }

    /// Poll the stored history until it holds `count` messages (or the deadline passes), and
    /// return the last answer.
    pub fn wait_history_len(
        &mut self,
        room: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<HistoryMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.history(room, count.max(1) * 2);
            if messages.len() >= count || Instant::now() >= deadline {
                return messages;
            }
            // Between polls, wait for anything to happen (a message, a sync), at most 200 ms.
            let _ = self.wait_for(Duration::from_millis(200), |e| {
                matches!(e, Event::Message { .. } | Event::Synced { .. })
            });
        }
    }

    /// Send `count` messages `prefix 0` … and wait for every `sent`; returns the ids in order.
    pub fn send_burst(&mut self, room: &str, prefix: &str, count: usize) -> Vec<String> {
        for i in 0..count {
            self.send(
                serde_json::json!({"cmd": "send", "room": room, "text": format!("{prefix} {i}")}),
            );
        }
        let mut ids = Vec::with_capacity(count);
        while ids.len() < count {
            match self.expect("sent", DELIVERY, |e| {
                matches!(e, Event::Sent { .. } | Event::Error { .. })
            }) {
                Event::Sent { id, .. } => ids.push(id),
                other => panic!("{}: sending failed: {other:?}", self.name),
            }
        }
        ids
    }

    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Wait until stderr holds `needle`.
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.stderr().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stderr().contains(needle)
    }

    /// The HTTP API's address (`IP:PORT`) from the node's log line, for a node started with
    /// `--http`; panics with the node's stderr if none is logged within [`DELIVERY`].
    pub fn http_addr(&self) -> String {
        let needle = "HTTP API listening on http://";
        assert!(
            self.wait_stderr(needle, DELIVERY),
            "no HTTP address logged; stderr:\n{}",
            self.stderr()
        );
        let stderr = self.stderr();
        let start = stderr.find(needle).unwrap_or_default() + needle.len();
        stderr[start..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// Wait for the peers this node is in a room with to announce themselves there. Presence
    /// already seen counts: the announcements arrive in any order.
    pub fn wait_presence(&mut self, room: &str, peers: &[&str], timeout: Duration) {
        let heard = |e: &Event, peer: &str| matches!(e, Event::Presence { room: r, from, .. } if r == room && from == peer);
        let deadline = Instant::now() + timeout;
        for peer in peers {
            self.drain();
            if self.seen.iter().any(|e| heard(e, peer)) {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            self.expect(&format!("presence of {peer} in {room}"), left, |e| {
                heard(e, peer)
            });
        }
    }

    /// Close stdin (the node quits) and wait for the exit status.
    pub fn quit(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().expect("wait for killed node");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send a signal by name (`TERM`, `INT`) with stdin left open, as a supervisor does,
    /// and wait up to `within` for the exit status.
    pub fn signal_and_wait(
        mut self,
        signal: &str,
        within: Duration,
    ) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL, as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A generous deadline for one message to cross a few nodes on a loaded 2-core machine.
pub const DELIVERY: Duration = Duration::from_secs(15);

/// Wait until every node has heard every other announce itself in `room`.
pub fn wait_all_present(nodes: &mut [NodeProcess], room: &str, timeout: Duration) {
    let ids: Vec<String> = nodes.iter().map(|n| n.peer_id.clone()).collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        let others: Vec<&str> = ids
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, id)| id.as_str())
            .collect();
        node.wait_presence(room, &others, timeout);
    }
}

/// A `/proc/PID/status` figure in KiB, such as `VmRSS:` or `VmHWM:` (peak RSS); 0 if unknown.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
