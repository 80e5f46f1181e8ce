//! The config file, `HARK_*` variables and their precedence, the invite file, `--print-config`,
//! `--print-messages`, systemd readiness and watchdog (`$NOTIFY_SOCKET`), and the shipped unit
//! (issue 10, items 6 and 7). Loopback only, `--no-mdns` everywhere, every process killed.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use hark_node::settings::Settings;
use hark_tests::process::{DELIVERY, READY_TIMEOUT};
use hark_tests::{hark_node_bin, NodeProcess};
use serde_json::{json, Value};
use tempfile::TempDir;

const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";

/// A `hark-node` command with a clean slate: no `HARK_*` variable from the test's own
/// environment, and a config home of its own (so a developer's ~/.config/hark is never read).
fn hark_node(home: &Path) -> Command {
    let mut command = Command::new(hark_node_bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HARK_") {
            command.env_remove(key);
        }
    }
    command
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("RUST_LOG", "hark_node=debug,warn")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
    command
}

/// Run to completion (stdin closed; bounded by a 30 s deadline): exit code, stdout, stderr.
fn output(mut command: Command) -> (Option<i32>, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hark-node");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A running `hark-node`, its stdout lines on a channel; killed on drop.
struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Running {
    fn start(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hark-node");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut buf = sink.lock().unwrap();
                if buf.len() < 1 << 20 {
                    buf.push_str(&line);
                    buf.push('\n');
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The first stdout line (from now on) that `pred` accepts, within `timeout`.
    fn line(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no {what} within {timeout:?}; stdout: {:#?}\nstderr:\n{}",
                    self.seen,
                    self.stderr()
                ),
            }
        }
    }

    /// The first JSON event that `pred` accepts.
    fn event(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let line = self.line(what, timeout, |l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| pred(&v))
        });
        serde_json::from_str(&line).unwrap()
    }

    fn send(&mut self, command: Value) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    /// Close stdin (a `--json` node quits) and wait up to 10 s for its exit code.
    fn quit(mut self) -> Option<i32> {
        drop(self.child.stdin.take());
        self.wait(Duration::from_secs(10))
    }

    fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status();
    }

    fn wait(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config file setting the name, the data dir and a room, loopback only, mDNS off.
fn node_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("hark.toml");
    let text = format!(
        "name = \"fromfile\"\ndata-dir = {:?}\nlisten = [\"{LOOPBACK}\"]\nno-mdns = true\njoin = [\"cfgroom\"]\n{extra}",
        dir.join("data").display().to_string()
    );
    write(&path, &text, 0o644);
    path
}

#[test]
fn a_config_file_sets_name_and_rooms_the_environment_and_command_line_override_it() {
    let dir = TempDir::new().unwrap();
    let config = node_config(dir.path(), "");

    // The file alone: the node's name and its room come from it.
    let mut command = hark_node(dir.path());
    command.arg("--json").arg("--config").arg(&config);
    let mut node = Running::start(command);
    let ready = node.event("ready", READY_TIMEOUT, |e| e["event"] == "ready");
    assert_eq!(ready["name"], "fromfile", "{ready}");
    node.send(json!({"cmd": "send", "room": "cfgroom", "text": "from the file"}));
    let sent = node.event("sent or error", DELIVERY, |e| {
        e["event"] == "sent" || e["event"] == "error"
    });
    assert_eq!(
        sent["event"], "sent",
        "joined cfgroom from the file: {sent}"
    );
    assert_eq!(sent["room"], "cfgroom");
    // No peer holds the message, so the end of input would wait for delivery: stop it instead.
    node.signal("TERM");
    assert_eq!(node.wait(Duration::from_secs(10)), Some(0));

    // HARK_NAME over the file, in a running node.
    let mut command = hark_node(dir.path());
    command
        .arg("--json")
        .arg("--config")
        .arg(&config)
        .env("HARK_NAME", "fromenv");
    let mut node = Running::start(command);
    let ready = node.event("ready", READY_TIMEOUT, |e| e["event"] == "ready");
    assert_eq!(ready["name"], "fromenv", "{ready}");
    assert_eq!(node.quit(), Some(0));

    // --name over HARK_NAME.
    let mut command = hark_node(dir.path());
    command
        .args(["--json", "--name", "fromcli", "--config"])
        .arg(&config)
        .env("HARK_NAME", "fromenv");
    let mut node = Running::start(command);
    let ready = node.event("ready", READY_TIMEOUT, |e| e["event"] == "ready");
    assert_eq!(ready["name"], "fromcli", "{ready}");
    assert_eq!(node.quit(), Some(0));
}

/// `--print-config` with `args` and `env`: the settings it printed (parsed back).
fn print_config(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Settings {
    let mut command = hark_node(home);
    command
        .arg("--print-config")
        .args(args)
        .envs(env.iter().copied());
    let (code, stdout, stderr) = output(command);
    assert_eq!(code, Some(0), "{args:?} {env:?}: {stderr}");
    Settings::parse(&stdout).unwrap_or_else(|e| panic!("--print-config parses back: {e}\n{stdout}"))
}

#[test]
fn precedence_is_command_line_then_environment_then_file_then_defaults() {
    let dir = TempDir::new().unwrap();
    let config = node_config(dir.path(), "relay = true\nvoice-frame-ms = 10\n");
    let config = config.to_str().unwrap();
    let peer = "/ip4/127.0.0.1/tcp/7000/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
    let peer2 = "/ip4/127.0.0.2/tcp/7000/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

    let file = print_config(dir.path(), &["--config", config], &[]);
    assert_eq!(file.name.as_deref(), Some("fromfile"));
    assert_eq!(file.join, Some(vec!["cfgroom".to_owned()]));
    assert_eq!(file.relay, Some(true));
    assert_eq!(file.voice_frame_ms, Some(10));
    assert_eq!(file.no_mdns, Some(true));
    // Defaults fill in what nothing set.
    assert_eq!(file.print_messages, Some(false));
    assert_eq!(file.peer, Some(vec![]));

    let env = print_config(
        dir.path(),
        &["--config", config],
        &[
            ("HARK_NAME", "fromenv"),
            ("HARK_PEER", &format!("{peer}, {peer2}")),
            ("HARK_JOIN", "a,b"),
            ("HARK_RELAY", "false"),
        ],
    );
    assert_eq!(env.name.as_deref(), Some("fromenv"));
    assert_eq!(env.peer, Some(vec![peer.to_owned(), peer2.to_owned()]));
    assert_eq!(env.join, Some(vec!["a".to_owned(), "b".to_owned()]));
    assert_eq!(env.relay, Some(false));
    assert_eq!(env.voice_frame_ms, Some(10), "the file still counts");

    let cli = print_config(
        dir.path(),
        &[
            "--config", config, "--name", "fromcli", "--join", "c", "--peer", peer,
        ],
        &[("HARK_NAME", "fromenv"), ("HARK_JOIN", "a,b")],
    );
    assert_eq!(cli.name.as_deref(), Some("fromcli"));
    assert_eq!(cli.join, Some(vec!["c".to_owned()]));
    assert_eq!(cli.peer, Some(vec![peer.to_owned()]));

    // HARK_CONFIG names the file too; the default file is read when nothing names one.
    let via_env = print_config(dir.path(), &[], &[("HARK_CONFIG", config)]);
    assert_eq!(via_env.name.as_deref(), Some("fromfile"));
    let defaults = print_config(dir.path(), &[], &[]);
    assert_ne!(defaults.name.as_deref(), Some("fromfile"));
    std::fs::create_dir_all(dir.path().join("config/hark")).unwrap();
    std::fs::copy(config, dir.path().join("config/hark/config.toml")).unwrap();
    let default_file = print_config(dir.path(), &[], &[]);
    assert_eq!(default_file.name.as_deref(), Some("fromfile"));

    // The printed configuration, used as a config file, gives the same configuration.
    let mut command = hark_node(dir.path());
    command.args(["--print-config", "--config", config]);
    let (_, printed, _) = output(command);
    let again = dir.path().join("printed.toml");
    write(&again, &printed, 0o600);
    let reread = print_config(dir.path(), &["--config", again.to_str().unwrap()], &[]);
    assert_eq!(reread, file);
}

#[test]
fn bad_config_is_one_line_and_exit_code_2() {
    let dir = TempDir::new().unwrap();
    let bad_key = dir.path().join("bad.toml");
    write(&bad_key, "name = \"x\"\nnmae = \"typo\"\n", 0o644);
    let bad_hook = dir.path().join("hook.toml");
    write(
        &bad_hook,
        "[[hook]]\nroom = \"ops\"\non = [\"alert\"]\nurl = \"http://10.0.0.9/\"\ncommand = \"logger\"\n",
        0o644,
    );
    let bad_value = dir.path().join("value.toml");
    write(&bad_value, "peer = [\"/ip4/127.0.0.1/tcp/1\"]\n", 0o644);
    let missing = dir.path().join("missing.toml");
    // (arguments, environment, what the one line must name)
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, Vec<String>);
    let cases: Vec<Case> = vec![
        (
            vec!["--config".into(), bad_key.display().to_string()],
            vec![],
            vec![
                "nmae".into(),
                bad_key.display().to_string(),
                "line 2".into(),
            ],
        ),
        (
            vec!["--config".into(), bad_hook.display().to_string()],
            vec![],
            vec!["hook 1".into(), "exactly one of url and command".into()],
        ),
        (
            vec!["--config".into(), bad_value.display().to_string()],
            vec![],
            vec![format!("{}: peer", bad_value.display()), "/p2p/".into()],
        ),
        (
            vec!["--config".into(), missing.display().to_string()],
            vec![],
            vec![missing.display().to_string()],
        ),
        (
            vec![],
            vec![("HARK_NO_MDNS", "perhaps")],
            vec!["HARK_NO_MDNS".into()],
        ),
        (
            vec![],
            vec![("HARK_NAME", "has space")],
            vec!["HARK_NAME".into()],
        ),
        (
            vec![],
            vec![("HARK_CONFIG", missing.to_str().unwrap())],
            vec![missing.display().to_string()],
        ),
    ];
    for (args, env, needles) in cases {
        // Both with --print-config and for a real start: the same check, before anything runs.
        for print in [false, true] {
            let mut command = hark_node(dir.path());
            command
                .args(["--json", "--no-mdns", "--listen", LOOPBACK, "--data-dir"])
                .arg(dir.path().join("data"))
                .args(&args)
                .args(print.then_some("--print-config"))
                .envs(env.iter().copied());
            let (code, stdout, stderr) = output(command);
            assert_eq!(code, Some(2), "{args:?} {env:?}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
            assert!(stderr.starts_with("hark-node: "), "{stderr}");
            for needle in &needles {
                assert!(stderr.contains(needle.as_str()), "{needle:?} in {stderr}");
            }
            assert!(stdout.is_empty() && !stderr.contains("panicked"));
        }
    }
}

#[test]
fn invites_in_a_private_file_and_refused_from_a_readable_one() {
    use hark_proto::{Invite, RoomKey, RoomName};
    let dir = TempDir::new().unwrap();
    let invite = Invite {
        name: RoomName::parse("hush").unwrap(),
        key: RoomKey::random(&mut rand::rngs::OsRng),
    }
    .encode();
    let invites = dir.path().join("invites");
    write(
        &invites,
        &format!("# the relay's rooms\n{invite}\n\nops\n"),
        0o644,
    );

    let start = |extra: &[&str]| {
        let mut command = hark_node(dir.path());
        command
            .args(["--json", "--no-mdns", "--listen", LOOPBACK, "--data-dir"])
            .arg(dir.path().join("data"))
            .args(extra);
        command
    };
    let (code, stdout, stderr) = output(start(&["--join-file", invites.to_str().unwrap()]));
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(invites.to_str().unwrap()) && stderr.contains("chmod 0600"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&invite),
        "the error does not show the secret"
    );
    assert!(stdout.is_empty());

    // Private to its owner: the node is in both rooms, here through the config file.
    std::fs::set_permissions(&invites, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("hark.toml");
    write(
        &config,
        &format!("join-file = {:?}\n", invites.display().to_string()),
        0o644,
    );
    let mut node = Running::start(start(&["--config", config.to_str().unwrap()]));
    node.event("ready", READY_TIMEOUT, |e| e["event"] == "ready");
    for room in ["hush", "ops"] {
        node.send(json!({"cmd": "send", "room": room, "text": "hello"}));
        let answer = node.event("sent or error", DELIVERY, |e| {
            e["event"] == "sent" || e["event"] == "error"
        });
        assert_eq!(answer["event"], "sent", "{room}: {answer}");
        assert_eq!(answer["room"], room);
    }
    node.signal("TERM");
    assert_eq!(node.wait(Duration::from_secs(10)), Some(0));
}

#[test]
fn test_only_switches_warn_at_start() {
    let dir = TempDir::new().unwrap();
    let mut command = hark_node(dir.path());
    command
        .args(["--json", "--no-mdns", "--listen", LOOPBACK, "--data-dir"])
        .arg(dir.path().join("data"))
        .env("HARK_CLOCK_OFFSET_MS", "1500")
        .env("HARK_VOICE_DROP_PERCENT", "10");
    let mut node = Running::start(command);
    node.event("ready", READY_TIMEOUT, |e| e["event"] == "ready");
    let stderr = node.stderr();
    for var in ["HARK_CLOCK_OFFSET_MS", "HARK_VOICE_DROP_PERCENT"] {
        let warnings: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("WARN") && l.contains(var))
            .collect();
        assert_eq!(warnings.len(), 1, "one warning naming {var}:\n{stderr}");
    }
    assert_eq!(node.quit(), Some(0));
}

#[test]
fn without_print_messages_no_message_text_reaches_stdout() {
    let mut sender = NodeProcess::start("sender", &[]);
    let text = format!("private words {}", std::process::id());
    sender.send(json!({"cmd": "send", "room": "lobby", "text": text}));
    sender.expect("sent", DELIVERY, |e| {
        matches!(e, hark_node::Event::Sent { .. })
    });
    let dir = TempDir::new().unwrap();
    let watch = |print: bool| {
        let data = dir.path().join(if print { "loud" } else { "quiet" });
        let mut command = hark_node(dir.path());
        command
            .args([
                "--no-mdns",
                "--listen",
                LOOPBACK,
                "--name",
                "watcher",
                "--peer",
            ])
            .arg(sender.addr())
            .arg("--data-dir")
            .arg(data)
            .args(print.then_some("--print-messages"));
        Running::start(command)
    };
    // The message reaches each watcher by history sync when it connects; the plain output says
    // so (`history synced … 1 new`), with the text only when asked.
    let mut quiet = watch(false);
    quiet.line("ready", READY_TIMEOUT, |l| l.starts_with("ready: watcher"));
    quiet.line("lobby synced", DELIVERY, |l| {
        l.starts_with("[lobby] history synced") && !l.ends_with(": 0 new")
    });
    let mut loud = watch(true);
    let line = loud.line("the message line", DELIVERY, |l| l.contains(&text));
    assert!(line.contains("lobby"), "{line}");
    loud.line("lobby synced", DELIVERY, |l| {
        l.starts_with("[lobby] history synced")
    });
    // Whatever the quiet one printed by now (it synced first), none of it is the text.
    std::thread::sleep(Duration::from_millis(200));
    while let Ok(line) = quiet.lines.try_recv() {
        quiet.seen.push(line);
    }
    assert!(
        quiet.seen.iter().all(|l| !l.contains(&text)),
        "{:#?}",
        quiet.seen
    );
    quiet.signal("TERM");
    assert_eq!(quiet.wait(Duration::from_secs(10)), Some(0));
}

/// Datagrams on `socket` until `pred` accepts one (or the deadline): all received.
fn datagrams_until(
    socket: &UnixDatagram,
    timeout: Duration,
    pred: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !pred(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        socket.set_read_timeout(Some(left)).unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    got
}

/// A node under a notify socket: READY=1 once `ready` is out, WATCHDOG=1 every 100 ms,
/// STOPPING=1 on SIGTERM (without --json, as the service runs; with --json, READY and
/// WATCHDOG).
fn notify_run(socket_name: &str, socket: &UnixDatagram, dir: &Path, json: bool) {
    let mut command = hark_node(dir);
    command
        .args(json.then_some("--json"))
        .args([
            "--no-mdns",
            "--listen",
            LOOPBACK,
            "--name",
            "svc",
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .env("NOTIFY_SOCKET", socket_name)
        .env("WATCHDOG_USEC", "200000");
    let mut node = Running::start(command);
    // Nothing from the node before READY=1, and READY=1 only once `ready` is written.
    let first = datagrams_until(socket, READY_TIMEOUT, |got| !got.is_empty());
    assert!(
        first
            .first()
            .is_some_and(|d| d.lines().any(|l| l == "READY=1")),
        "READY=1 first: {first:?}\nstderr:\n{}",
        node.stderr()
    );
    let ready = node.line("ready", Duration::from_secs(1), |l| {
        l.starts_with("ready: svc ") || l.contains("\"event\":\"ready\"")
    });
    assert_eq!(node.seen.len(), 1, "ready is the first line out: {ready}");
    // WATCHDOG_USEC=200000: a ping every 100 ms.
    let started = Instant::now();
    let pings = datagrams_until(socket, Duration::from_secs(10), |got| {
        got.iter().filter(|d| *d == "WATCHDOG=1").count() >= 3
    });
    assert!(
        pings.iter().filter(|d| *d == "WATCHDOG=1").count() >= 3,
        "watchdog pings: {pings:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "three pings at 100 ms intervals took {:?}",
        started.elapsed()
    );
    if json {
        node.signal("TERM");
        assert_eq!(node.wait(Duration::from_secs(10)), Some(0));
        return;
    }
    // systemctl stop: STOPPING=1, then exit 0.
    node.signal("TERM");
    let stopping = datagrams_until(socket, Duration::from_secs(10), |got| {
        got.iter().any(|d| d == "STOPPING=1")
    });
    assert!(stopping.iter().any(|d| d == "STOPPING=1"), "{stopping:?}");
    assert_eq!(node.wait(Duration::from_secs(10)), Some(0));
}

#[test]
fn systemd_readiness_and_watchdog_over_notify_socket() {
    let dir = TempDir::new().unwrap();
    // A socket path, as systemd uses for system services.
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    notify_run(path.to_str().unwrap(), &socket, dir.path(), false);

    // An abstract socket (`@name`), as systemd uses for user services.
    use std::os::linux::net::SocketAddrExt;
    let name = format!("hark-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    let dir = TempDir::new().unwrap();
    notify_run(&format!("@{name}"), &socket, dir.path(), true);
}

/// Say loudly that a test could not run: on stderr, and in a file `make test` prints at the end.
fn skip(test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}");
    eprintln!("\n*** {line} ***\n");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.txt");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{line}");
    }
}

#[test]
fn the_shipped_unit_passes_systemd_analyze_verify() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/hark-node.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "User=hark",
        "StateDirectory=hark",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "{} has {line}",
            unit.display()
        );
    }
    let available = Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        return skip(
            "config::the_shipped_unit_passes_systemd_analyze_verify",
            "systemd-analyze not found (Debian package systemd)",
        );
    }
    // The unit as installed, with the binary of this build in place of /usr/bin/hark-node
    // (verify checks that the program exists); the man page is not installed here.
    let dir = TempDir::new().unwrap();
    let copy = dir.path().join("hark-node.service");
    let bin = hark_node_bin();
    std::fs::write(
        &copy,
        text.replace("/usr/bin/hark-node", bin.to_str().unwrap()),
    )
    .unwrap();
    let (code, stdout, stderr) = {
        let mut command = Command::new("systemd-analyze");
        command.args(["verify", "--man=no"]).arg(&copy);
        output(command)
    };
    assert_eq!(code, Some(0), "systemd-analyze verify:\n{stdout}{stderr}");
    assert!(
        stdout.trim().is_empty() && stderr.trim().is_empty(),
        "no warnings from systemd-analyze verify:\n{stdout}{stderr}"
    );
}

#[test]
fn the_http_api_is_an_option_like_any_other() {
    let dir = TempDir::new().unwrap();
    let config = node_config(dir.path(), "http = \"127.0.0.1:8081\"\n");
    let config = config.to_str().unwrap();
    let http = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["--config", config];
        all.extend_from_slice(args);
        print_config(dir.path(), &all, env).http
    };
    let addr = |text: &str| Some(text.parse().unwrap());
    assert_eq!(http(&[], &[]), addr("127.0.0.1:8081"));
    assert_eq!(
        http(&[], &[("HARK_HTTP", "127.0.0.1:8082")]),
        addr("127.0.0.1:8082")
    );
    assert_eq!(
        http(
            &["--http", "127.0.0.1:8083"],
            &[("HARK_HTTP", "127.0.0.1:8082")]
        ),
        addr("127.0.0.1:8083")
    );

    // A non-loopback address from the file without a token is refused, as on the command line.
    let open = node_config(dir.path(), "http = \"0.0.0.0:0\"\n");
    let mut command = hark_node(dir.path());
    command
        .args(["--no-mdns", "--config"])
        .arg(&open)
        .arg("--data-dir")
        .arg(dir.path().join("data"));
    let (code, _, stderr) = output(command);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not a loopback address"), "{stderr}");

    let mut command = hark_node(dir.path());
    command.arg("--print-config").env("HARK_HTTP", "everywhere");
    let (code, _, stderr) = output(command);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("HARK_HTTP"), "{stderr}");
}
