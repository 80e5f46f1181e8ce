//! The control socket (`DATA_DIR/control.sock`) and `hark-node ctl`, on loopback: several
//! clients on one node at once, ids echoed, bad lines answered one by one, history pages, and
//! `ctl` against a running `hark-node`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hark_node::Event;
use hark_tests::process::{hark_node_bin, DELIVERY};
use hark_tests::NodeProcess;
use serde_json::{json, Value};

/// One client of a node's control socket.
struct Client {
    stream: UnixStream,
    lines: BufReader<UnixStream>,
    seen: Vec<Value>,
}

impl Client {
    fn connect(data_dir: &Path) -> Self {
        let stream = UnixStream::connect(data_dir.join("control.sock")).expect("control socket");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let lines = BufReader::new(stream.try_clone().unwrap());
        let mut client = Self {
            stream,
            lines,
            seen: Vec::new(),
        };
        let ready = client.expect("ready", DELIVERY, |v| v["event"] == "ready");
        assert_eq!(ready["api"], 3, "{ready}");
        assert!(ready["version"].is_string(), "{ready}");
        client
    }

    fn send(&mut self, command: Value) {
        self.send_raw(format!("{command}\n").as_bytes());
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn expect(&mut self, what: &str, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        let mut line = String::new();
        while Instant::now() < deadline {
            line.clear();
            match self.lines.read_line(&mut line) {
                Ok(0) => panic!("the node closed the socket while waiting for {what}"),
                Ok(_) => {
                    let value: Value = serde_json::from_str(line.trim()).expect("a JSON line");
                    if pred(&value) {
                        return value;
                    }
                    self.seen.push(value);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("reading the socket: {e}"),
            }
        }
        panic!("no {what} within {within:?}; seen {:?}", self.seen);
    }

    /// Everything that arrives within `for_how_long`.
    fn collect(&mut self, for_how_long: Duration) -> Vec<Value> {
        let deadline = Instant::now() + for_how_long;
        let mut line = String::new();
        while Instant::now() < deadline {
            line.clear();
            if let Ok(n) = self.lines.read_line(&mut line) {
                if n == 0 {
                    break;
                }
                if let Ok(value) = serde_json::from_str(line.trim()) {
                    self.seen.push(value);
                }
            }
        }
        std::mem::take(&mut self.seen)
    }
}

fn ctl(data_dir: &Path, args: &[&str]) -> std::process::Output {
    let mut child = Command::new(hark_node_bin())
        .arg("ctl")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::null())
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
fn two_clients_at_once_one_tails_one_sends_and_the_node_keeps_its_peers() {
    let mut a = NodeProcess::start("alice", &[]);
    let mut b = NodeProcess::start("bob", &["--peer", &a.addr()]);
    let (pa, pb) = (a.peer_id.clone(), b.peer_id.clone());
    a.wait_presence("lobby", &[&pb], DELIVERY);
    b.wait_presence("lobby", &[&pa], DELIVERY);

    let socket = std::fs::metadata(a.data_dir().join("control.sock")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(socket.permissions().mode() & 0o777, 0o600);

    let mut tail = Client::connect(&a.data_dir());
    tail.send(json!({"cmd": "subscribe", "rooms": ["lobby"], "kinds": ["message"], "id": "t"}));
    let subscribed = tail.expect("subscribed", DELIVERY, |v| v["event"] == "subscribed");
    assert_eq!(subscribed["id"], "t");
    let mut sender = Client::connect(&a.data_dir());

    sender.send(json!({"cmd": "send", "room": "lobby", "text": "from the socket", "id": 41}));
    let sent = sender.expect("sent", DELIVERY, |v| v["event"] == "sent");
    assert_eq!(sent["cmd_id"], 41, "{sent}");
    assert_eq!(
        sent["id"].as_str().unwrap().len(),
        32,
        "`id` stays the message id"
    );
    b.expect(
        "the socket's message at bob",
        DELIVERY,
        |e| matches!(e, Event::Message { text, .. } if text == "from the socket"),
    );
    // The node's other clients see it as the node's own message (`hark` shows what a bot on
    // its socket said); the client that sent it has its `sent` instead.
    let own = tail.expect("the socket's message on the tail", DELIVERY, |v| {
        v["event"] == "message" && v["text"] == "from the socket"
    });
    assert_eq!(own["from"], pa);
    a.expect(
        "the socket's message on stdin's client",
        DELIVERY,
        |e| matches!(e, Event::Message { text, from, .. } if text == "from the socket" && *from == pa),
    );
    assert!(
        sender
            .collect(Duration::from_millis(300))
            .iter()
            .all(|v| v["event"] != "message"),
        "the sender does not get its own message back"
    );

    b.send(json!({"cmd": "send", "room": "lobby", "text": "from bob"}));
    let got = tail.expect("bob's message on the tail", DELIVERY, |v| {
        v["event"] == "message" && v["text"] == "from bob"
    });
    assert_eq!(got["from"], pb);
    a.expect(
        "bob's message on stdin's client too",
        DELIVERY,
        |e| matches!(e, Event::Message { text, .. } if text == "from bob"),
    );

    sender.send(json!({"cmd": "peers", "id": "p"}));
    let peers = sender.expect("peers", DELIVERY, |v| v["event"] == "peers");
    assert_eq!(peers["id"], "p");
    assert!(
        peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["peer_id"] == pb),
        "the node kept its peer: {peers}"
    );
    // Answers go to the asker only; the tail follows only lobby messages.
    let rest = tail.collect(Duration::from_millis(500));
    assert!(
        rest.iter().all(|v| v["event"] == "message"),
        "tail got only messages: {rest:?}"
    );
    a.drain();
    assert!(
        !a.seen
            .iter()
            .any(|e| matches!(e, Event::Sent { .. } | Event::Peers { .. })),
        "another client's answers never reach stdin's client: {:?}",
        a.seen
    );
}

#[test]
fn bad_lines_get_one_error_each_and_the_node_keeps_running() {
    let a = NodeProcess::start("alice", &[]);
    let mut c = Client::connect(&a.data_dir());
    c.send_raw(b"\xff\xfe\n");
    let e = c.expect("not UTF-8", DELIVERY, |v| v["event"] == "error");
    assert_eq!(e["code"], "bad_command", "{e}");
    let mut long = vec![b'x'; 70 * 1024];
    long.push(b'\n');
    c.send_raw(&long);
    let e = c.expect("too long", DELIVERY, |v| v["event"] == "error");
    assert_eq!(e["code"], "too_long", "{e}");
    c.send(json!({"cmd": "fly", "id": "z"}));
    let e = c.expect("unknown command", DELIVERY, |v| v["event"] == "error");
    assert_eq!(
        (&e["code"], &e["id"], &e["cmd"]),
        (&json!("bad_command"), &json!("z"), &json!("fly"))
    );
    c.send(json!({"cmd": "leave", "room": "nowhere", "id": 3, "unknown_field": true}));
    let e = c.expect("not joined", DELIVERY, |v| v["event"] == "error");
    assert_eq!(
        (&e["code"], &e["id"], &e["cmd"]),
        (&json!("not_joined"), &json!(3), &json!("leave"))
    );
    c.send(json!({"cmd": "quit", "id": 4}));
    let e = c.expect("quit refused", DELIVERY, |v| v["event"] == "error");
    assert_eq!(e["id"], 4);
    c.send(json!({"cmd": "peers", "id": 5}));
    let peers = c.expect("peers", DELIVERY, |v| v["event"] == "peers");
    assert_eq!(peers["id"], 5);
    // A second client is served as well.
    let mut d = Client::connect(&a.data_dir());
    d.send(json!({"cmd": "peers", "id": 6}));
    assert_eq!(
        d.expect("peers", DELIVERY, |v| v["event"] == "peers")["id"],
        6
    );
}

#[test]
fn stdin_gets_the_same_treatment_and_a_bad_byte_never_stops_the_node() {
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
    stdin.write_all(b"\xff\xfe\n").unwrap();
    let mut long = vec![b'y'; 70 * 1024];
    long.push(b'\n');
    stdin.write_all(&long).unwrap();
    stdin
        .write_all(b"{\"cmd\":\"peers\",\"id\":\"after\"}\n")
        .unwrap();
    stdin.flush().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while out.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            let _ = tx.send(line.clone());
            line.clear();
        }
    });
    let deadline = Instant::now() + DELIVERY;
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            let value: Value = serde_json::from_str(line.trim()).unwrap();
            let done = value["event"] == "peers";
            lines.push(value);
            if done {
                break;
            }
        }
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running: {lines:?}"
    );
    let codes: Vec<&Value> = lines
        .iter()
        .filter(|v| v["event"] == "error")
        .map(|v| &v["code"])
        .collect();
    assert_eq!(
        codes,
        [&json!("bad_command"), &json!("too_long")],
        "{lines:?}"
    );
    assert_eq!(lines.last().unwrap()["id"], "after", "{lines:?}");
    stdin.write_all(b"{\"cmd\":\"quit\"}\n").unwrap();
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    assert!(child.wait().unwrap().success());
}

#[test]
fn history_pages_back_with_before_and_ctl_drives_a_running_node() {
    let mut a = NodeProcess::start("alice", &[]);
    let mut b = NodeProcess::start("bob", &["--peer", &a.addr()]);
    let (pa, pb) = (a.peer_id.clone(), b.peer_id.clone());
    a.wait_presence("lobby", &[&pb], DELIVERY);
    b.wait_presence("lobby", &[&pa], DELIVERY);
    let dir = a.data_dir();

    // No node: exit 2 and a clear line.
    let none = tempfile::tempdir().unwrap();
    let out = ctl(none.path(), &["peers"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no node running at"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // `tail` follows lobby while `send` goes through another connection.
    let mut tail = Command::new(hark_node_bin())
        .args(["ctl", "--data-dir"])
        .arg(&dir)
        .args(["tail", "lobby"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tail_out = BufReader::new(tail.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in tail_out.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    let mut ids = Vec::new();
    for n in 0..5 {
        let out = ctl(&dir, &["send", "lobby", &format!("page {n}")]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let sent: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(sent["event"], "sent");
        ids.push(sent["id"].as_str().unwrap().to_owned());
    }
    let out = ctl(&dir, &["alert", "lobby", "fire"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    b.expect(
        "the alert at bob",
        DELIVERY,
        |e| matches!(e, Event::Message { text, kind, .. } if text == "fire" && kind == "alert"),
    );

    b.send(json!({"cmd": "send", "room": "lobby", "text": "tail me"}));
    let deadline = Instant::now() + DELIVERY;
    let mut tailed = false;
    while !tailed && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            let v: Value = serde_json::from_str(&line).unwrap();
            tailed = v["event"] == "message" && v["text"] == "tail me";
        }
    }
    let _ = tail.kill();
    let _ = tail.wait();
    assert!(tailed, "ctl tail printed bob's message");

    // History in pages: the newest two, then the two before them.
    let page = |args: &[&str]| -> Vec<Value> {
        let out = ctl(&dir, args);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let texts = |msgs: &[Value]| -> Vec<String> {
        msgs.iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect()
    };
    let newest = page(&["history", "lobby", "--limit", "3"]);
    assert_eq!(texts(&newest), ["page 4", "fire", "tail me"]);
    let older = page(&["history", "lobby", "--limit", "2", "--before", &ids[4]]);
    assert_eq!(texts(&older), ["page 2", "page 3"]);
    let oldest = page(&["history", "lobby", "--limit", "10", "--before", &ids[2]]);
    assert_eq!(texts(&oldest), ["page 0", "page 1"]);
    let end = page(&["history", "lobby", "--before", &ids[0]]);
    assert!(end.is_empty(), "nothing before the first: {end:?}");

    let out = ctl(&dir, &["peers"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&pb));

    // Refused by the node: exit 1, its reason on one line.
    let out = ctl(&dir, &["send", "nowhere", "x"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not_joined"), "{stderr}");
    let out = ctl(&dir, &["ptt", "start", "lobby"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no_microphone"), "{stderr}");
    let out = ctl(&dir, &["history", "lobby", "--before", "nothex"]);
    assert_eq!(out.status.code(), Some(1));
    // Usage: exit 2.
    let out = ctl(&dir, &["send", "lobby"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A send waiting for a slow disk holds up only its own client: another client is answered
/// meanwhile, and the sender's next answer still comes after its `sent`.
#[test]
fn a_slow_fsync_holds_up_only_the_client_whose_message_waits_for_it() {
    // Each fsync of alice's own messages takes 8 s longer than the disk.
    let slow = Duration::from_secs(8);
    let a = NodeProcess::start_with_env("alice", &[("HARK_TEST_FSYNC_DELAY_MS", "8000")], &[]);
    let mut sender = Client::connect(&a.data_dir());
    let mut other = Client::connect(&a.data_dir());

    sender.send(json!({"cmd": "send", "room": "lobby", "text": "on a slow disk", "id": 1}));
    sender.send(json!({"cmd": "peers", "id": 2}));
    // The message is committed (history shows it) while its fsync runs: the other client is
    // answered then, before the sender's `sent`.
    let deadline = Instant::now() + DELIVERY;
    loop {
        assert!(
            Instant::now() < deadline,
            "history never showed the message"
        );
        other.send(json!({"cmd": "history", "room": "lobby", "id": "h"}));
        let history = other.expect("history", DELIVERY, |v| v["event"] == "history");
        let texts: Vec<&str> = history["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["text"].as_str())
            .collect();
        if texts.contains(&"on a slow disk") {
            break;
        }
    }
    let early = sender.collect(Duration::from_millis(300));
    assert!(
        early
            .iter()
            .all(|v| v["event"] != "sent" && v["cmd_id"] != 2),
        "the sender has neither `sent` nor its next answer before the fsync: {early:?}"
    );

    // Then, in the order it asked: `sent`, then the peers.
    sender.expect("sent", DELIVERY + slow, |v| v["event"] == "sent");
    assert!(
        sender.seen.iter().all(|v| v["cmd_id"] != 2),
        "the answer to what it asked next came before its `sent`: {:?}",
        sender.seen
    );
    sender.expect("the next answer", DELIVERY, |v| v["cmd_id"] == 2);
}

/// `ctl` follows nothing but its answer: once it has exited, the node lets its connection go
/// (a monitoring `ctl` call every minute must not use up the node's descriptors).
#[test]
fn a_finished_ctl_call_leaves_nothing_open_on_the_node() {
    let a = NodeProcess::start("alice", &[]);
    let open = || {
        std::fs::read_dir(format!("/proc/{}/fd", a.pid()))
            .expect("the node's descriptors")
            .count()
    };
    assert!(ctl(&a.data_dir(), &["peers"]).status.success());
    let before = open();
    for _ in 0..10 {
        assert!(ctl(&a.data_dir(), &["peers"]).status.success());
    }
    let deadline = Instant::now() + DELIVERY;
    while open() > before + 2 {
        assert!(
            Instant::now() < deadline,
            "the node still holds {} descriptors more than before ten ctl calls",
            open() - before
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The end of a `voice` command (`voice_sent`, or `voice_failed`) answers the client that
/// asked, with its id, even one that follows no events; the node's other clients do not get
/// it.
#[test]
fn the_end_of_a_voice_command_answers_the_client_that_asked() {
    let a = NodeProcess::start("alice", &[]);
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    hark_tests::tone_wav(&wav, 0.1);
    let mut asker = Client::connect(&a.data_dir());
    let mut other = Client::connect(&a.data_dir());
    asker.send(json!({"cmd": "subscribe", "kinds": [], "id": "quiet"}));
    asker.expect("subscribed", DELIVERY, |v| v["event"] == "subscribed");

    let missing = dir.path().join("missing.wav");
    asker.send(json!({"cmd": "voice", "room": "lobby", "wav": missing, "id": "bad"}));
    let failed = asker.expect("voice_failed", DELIVERY, |v| v["code"] == "voice_failed");
    assert_eq!(
        (&failed["cmd_id"], &failed["cmd"]),
        (&json!("bad"), &json!("voice")),
        "{failed}"
    );
    asker.send(json!({"cmd": "voice", "room": "lobby", "wav": wav, "id": "ok"}));
    let sent = asker.expect("voice_sent", DELIVERY, |v| v["event"] == "voice_sent");
    assert_eq!(sent["cmd_id"], "ok", "{sent}");

    // The other client hears that the node talked (its own voice_start/voice_end, if any), but
    // not the answers.
    other.send(json!({"cmd": "peers", "id": "p"}));
    other.expect("peers", DELIVERY, |v| v["event"] == "peers");
    let seen = other.collect(Duration::from_millis(300));
    assert!(
        seen.iter()
            .all(|v| v["event"] != "voice_sent" && v["code"] != "voice_failed"),
        "another client got the answers: {seen:?}"
    );
}

/// A socket whose node took the connection but never says `ready` (stuck, or stopping):
/// `ctl` gives up with exit 2 and a reason instead of hanging.
#[test]
fn ctl_gives_up_on_a_node_that_never_says_ready() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::os::unix::net::UnixListener::bind(dir.path().join("control.sock")).unwrap();
    // Accepted by the kernel's backlog; nothing is ever written.
    let out = ctl(dir.path(), &["peers"]);
    drop(listener);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not answer"), "{err}");
}
