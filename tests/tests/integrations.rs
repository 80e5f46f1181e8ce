//! docs/integrations.md, run as written on loopback: outgoing hooks (a webhook receiver gets an
//! alert within 1 s and again after it failed once; a hook whose receiver stays down leaves the
//! alert in the dead-letter file; a command hook gets a mention in `HARK_TEXT` and on stdin;
//! the Mattermost recipe gets one readable line; chatter fires no alert hook; a message from
//! before the catch-up window fires nothing), and the cookbook's tested blocks: the panic
//! button's `curl`, the SMS gateway both ways (with a stand-in `gammu-smsd-inject`), and the
//! bot. The blocks are read from the document, with only addresses, paths and numbers swapped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use hark_tests::process::DELIVERY;
use hark_tests::NodeProcess;
use serde_json::{json, Value};

/// One request a receiver got: its path, body, and when it arrived.
struct Received {
    path: String,
    body: Value,
    at: Instant,
}

/// A webhook receiver on loopback that answers its first `failures` requests with 500 and
/// the rest with 200. Its thread ends with the test process.
fn receiver(failures: usize) -> (String, Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a receiver");
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let Some((path, body)) = read_request(&stream) else {
                continue;
            };
            let status = if n < failures {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let _ = tx.send(Received {
                path,
                body,
                at: Instant::now(),
            });
        }
    });
    (addr, rx)
}

/// The request line's path and the body (by Content-Length) of one HTTP/1.1 request.
fn read_request(stream: &TcpStream) -> Option<(String, Vec<u8>)> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, body))
}

fn next(rx: &Receiver<Received>, what: &str) -> Received {
    rx.recv_timeout(DELIVERY)
        .unwrap_or_else(|_| panic!("the receiver got no {what} within {DELIVERY:?}"))
}

/// A port on loopback that nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_file(path: &Path, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The fenced block after `<!-- tested: NAME -->` in docs/integrations.md.
fn doc_block(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/integrations.md");
    let doc = std::fs::read_to_string(&path).expect("read docs/integrations.md");
    let marker = format!("<!-- tested: {name} -->");
    let after = &doc[doc.find(&marker).unwrap_or_else(|| panic!("no {marker}"))..];
    let body = &after[after.find("```").expect("a fenced block")..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").expect("the block's end")].to_owned()
}

/// Run a shell snippet (bounded by a deadline) with extra environment; its exit status and
/// stderr.
fn run_sh(script: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sh");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn hooks_post_retry_run_commands_and_dead_letter() {
    let (alerts_addr, alerts) = receiver(1);
    let (mattermost_addr, mattermost) = receiver(0);
    let down = closed_port();
    let work = tempfile::tempdir().unwrap();
    let mentions_file = work.path().join("mentions.txt");
    let sms_file = work.path().join("sms.txt");
    // A stand-in for gammu-smsd-inject: it writes its arguments, one a line.
    let bin = work.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let inject = bin.join("gammu-smsd-inject");
    std::fs::write(
        &inject,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> {}\n",
            sms_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&inject, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = work.path().join("config.toml");
    let mattermost_hook = doc_block("mattermost").replace(
        "http://10.0.0.9:8065/hooks/",
        &format!("http://{mattermost_addr}/hooks/"),
    );
    std::fs::write(
        &config,
        format!(
            r##"
[[hook]]
room = "ops"
on = ["alert"]
url = "http://{alerts_addr}/alerts"

[[hook]]
room = "#Ops"
on = ["alert"]
url = "http://127.0.0.1:{down}/nobody"
retries = 1

[[hook]]
room = "ops"
on = ["mention"]
command = 'printf "%s|%s\n" "$HARK_NAME" "$HARK_TEXT" >> {mentions}; cat >> {mentions}'

{mattermost_hook}
{sms_out}"##,
            mentions = mentions_file.display(),
            sms_out = doc_block("sms-out"),
        ),
    )
    .unwrap();

    let config = config.display().to_string();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut watcher = NodeProcess::start_with_env(
        "watcher",
        &[("PATH", &path)],
        &["--join", "ops", "--config", &config],
    );
    let mut alice = NodeProcess::start("alice", &["--join", "ops", "--peer", &watcher.addr()]);
    alice.wait_presence("ops", &[&watcher.peer_id], DELIVERY);
    watcher.wait_presence("ops", &[&alice.peer_id], DELIVERY);

    // Chatter first: it fires no alert hook (the first thing the alert hook gets is the alert).
    alice.send(json!({"cmd": "send", "room": "ops", "text": "lunch at noon"}));

    // The alert: the receiver fails the first POST, which comes within 1 s, and gets the
    // retry.
    let sent_at = Instant::now();
    alice.send(json!({"cmd": "alert", "room": "ops", "text": "fire in hall B"}));
    let first = next(&alerts, "alert");
    assert!(
        first.at.duration_since(sent_at) < Duration::from_secs(1),
        "the alert took {:?} to reach the hook",
        first.at.duration_since(sent_at)
    );
    assert_eq!(first.path, "/alerts");
    assert_eq!(first.body["event"], "message");
    assert_eq!(first.body["kind"], "alert");
    assert_eq!(first.body["room"], "ops");
    assert_eq!(first.body["text"], "fire in hall B");
    assert_eq!(first.body["from"], alice.peer_id.as_str());
    let retry = next(&alerts, "retry of the alert");
    assert_eq!(retry.body, first.body, "the retry carries the same message");
    assert!(
        alerts.recv_timeout(Duration::from_secs(2)).is_err(),
        "a delivered alert is not sent again"
    );
    let line = next(&mattermost, "alert for Mattermost");
    assert!(line.path.starts_with("/hooks/"), "{}", line.path);
    assert_eq!(
        line.body,
        json!({"text": ":rotating_light: ALERT #ops alice: fire in hall B"})
    );

    // The hook whose receiver is down: two attempts, then the dead-letter file.
    let dead = watcher.data_dir().join("hooks-dead-letter.jsonl");
    let text = wait_for_file(&dead, "fire in hall B", DELIVERY);
    let entry: Value = serde_json::from_str(text.lines().next().unwrap_or(""))
        .unwrap_or_else(|e| panic!("dead-letter file not JSON lines ({e}): {text:?}"));
    assert_eq!(entry["hook"], 2);
    assert_eq!(entry["attempts"], 2);
    assert_eq!(entry["event"]["text"], "fire in hall B");
    let error = entry["error"].as_str().unwrap_or("");
    assert!(
        error.contains("connect") || error.contains("refused"),
        "{entry}"
    );
    let mode = std::fs::metadata(&dead).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the dead-letter file holds message text");

    // The SMS recipe's hook ran gammu-smsd-inject with the alert.
    let sms = wait_for_file(&sms_file, "alice: fire in hall B", DELIVERY);
    assert_eq!(
        sms.lines().collect::<Vec<_>>(),
        ["TEXT", "+441632960123", "-text", "alice: fire in hall B"],
        "{sms}"
    );

    // A mention runs the command, with the text in HARK_TEXT and the event on stdin, and
    // reaches Mattermost.
    alice.send(json!({"cmd": "send", "room": "ops", "text": "@watcher pump 4 is down"}));
    let text = wait_for_file(&mentions_file, "\"event\"", DELIVERY);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("alice|@watcher pump 4 is down"),
        "{text}"
    );
    let event: Value = serde_json::from_str(lines.next().unwrap_or("")).unwrap();
    assert_eq!(event["text"], "@watcher pump 4 is down");
    let line = next(&mattermost, "mention for Mattermost");
    assert_eq!(
        line.body,
        json!({"text": "#ops alice: @watcher pump 4 is down"})
    );
    assert_eq!(
        std::fs::read_to_string(&mentions_file)
            .unwrap()
            .matches("alice|")
            .count(),
        1,
        "only the mention ran the command"
    );
    assert!(
        mattermost.recv_timeout(Duration::from_millis(500)).is_err(),
        "chatter reached a hook for alerts and mentions"
    );
    assert!(watcher.is_running());
}

/// The panic button's `curl`, the SMS-in script and the bot, as docs/integrations.md gives
/// them, against a relay-like node with the HTTP API behind a token.
#[test]
fn cookbook_recipes_work_as_written() {
    for tool in ["curl", "jq", "python3"] {
        if Command::new(tool).arg("--version").output().is_err() {
            panic!("{tool} is missing: `make test` installs it");
        }
    }
    let work = tempfile::tempdir().unwrap();
    let token_file = work.path().join("http.token");
    std::fs::write(&token_file, "s3cr3t-token\n").unwrap();
    let token = token_file.display().to_string();
    let mut relay = NodeProcess::start(
        "relay1",
        &[
            "--join",
            "sms",
            "--join",
            "ops",
            "--http",
            "127.0.0.1:0",
            "--http-token",
            &token,
        ],
    );
    let addr = relay.http_addr();
    let mut bob = NodeProcess::start(
        "bob",
        &["--join", "sms", "--join", "ops", "--peer", &relay.addr()],
    );
    bob.wait_presence("lobby", &[&relay.peer_id], DELIVERY);
    relay.wait_presence("lobby", &[&bob.peer_id], DELIVERY);
    let local = |block: &str| {
        block
            .replace("/etc/hark/http.token", &token)
            .replace("10.0.0.5:8080", &addr)
    };

    // The panic button.
    let (ok, stderr) = run_sh(&local(&doc_block("panic-button")), &[]);
    assert!(ok, "the panic button's curl failed: {stderr}");
    bob.expect("the panic alert", DELIVERY, |e| {
        matches!(e, hark_node::Event::Message { room, kind, text, .. }
            if room == "lobby" && kind == "alert" && text == "PANIC BUTTON: hall B, east door")
    });

    // An SMS in, with a quote and a backslash that must not break the JSON.
    let sms_text = r#"tank "3" at 80% \ check"#;
    let (ok, stderr) = run_sh(
        &local(&doc_block("sms-in")),
        &[("SMS_1_NUMBER", "+441632960999"), ("SMS_1_TEXT", sms_text)],
    );
    assert!(ok, "sms-to-hark failed: {stderr}");
    let want = format!("SMS from +441632960999: {sms_text}");
    bob.expect("the SMS", DELIVERY, |e| {
        matches!(e, hark_node::Event::Message { room, text, .. } if room == "sms" && *text == want)
    });

    // The bot, beside the relay on its control socket.
    let command = doc_block("bot");
    let command = command
        .trim()
        .replace("/var/lib/hark", &relay.data_dir().display().to_string());
    let mut words = command.split_whitespace();
    assert_eq!(words.next(), Some("python3"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(words.next().expect("the bot's path"));
    let mut bot = Command::new("python3")
        .arg(&script)
        .args(words)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the bot");
    let _kill_bot = KillOnDrop(&mut bot);
    // The bot says it is answering once it has subscribed; retry !ping until it answers.
    let deadline = Instant::now() + DELIVERY;
    let pong = loop {
        bob.send(json!({"cmd": "send", "room": "ops", "text": "!ping"}));
        let answer = bob.wait_for(Duration::from_secs(2), |e| {
            matches!(e, hark_node::Event::Message { room, text, .. } if room == "ops" && text.starts_with("pong"))
        });
        if let Some(answer) = answer {
            break answer;
        }
        assert!(Instant::now() < deadline, "the bot never answered !ping");
    };
    let hark_node::Event::Message { text, from, .. } = pong else {
        unreachable!()
    };
    assert_eq!(text, "pong, bob");
    assert_eq!(
        from, relay.peer_id,
        "the bot speaks with the relay's identity"
    );
    bob.send(json!({"cmd": "send", "room": "ops", "text": "!peers"}));
    bob.expect(
        "the bot's peer list",
        DELIVERY,
        |e| matches!(e, hark_node::Event::Message { text, .. } if text.starts_with("1 peers: bob")),
    );
}

/// Kills a child process when the test ends, passed or not.
struct KillOnDrop<'a>(&'a mut Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A message written long ago (the author's clock set back a day) reaches the node and is
/// shown, but fires no hook: catching up on history must not replay it into an SMS gateway.
#[test]
fn old_messages_fire_no_hook() {
    let (addr, rx) = receiver(0);
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[[hook]]\nroom = \"ops\"\non = [\"message\"]\nurl = \"http://{addr}/\"\n"),
    )
    .unwrap();
    let config = config.display().to_string();
    let mut watcher = NodeProcess::start("watcher", &["--join", "ops", "--config", &config]);
    let day = (24 * 3600 * 1000).to_string();
    let mut old = NodeProcess::start_with_env(
        "old",
        &[("HARK_CLOCK_OFFSET_MS", &format!("-{day}"))],
        &["--join", "ops", "--peer", &watcher.addr()],
    );
    old.wait_presence("ops", &[&watcher.peer_id], DELIVERY);
    watcher.wait_presence("ops", &[&old.peer_id], DELIVERY);
    old.send(json!({"cmd": "send", "room": "ops", "text": "from yesterday"}));
    watcher.expect(
        "the old message",
        DELIVERY,
        |e| matches!(e, hark_node::Event::Message { text, .. } if text == "from yesterday"),
    );
    let mut now = NodeProcess::start("now", &["--join", "ops", "--peer", &watcher.addr()]);
    now.wait_presence("ops", &[&watcher.peer_id], DELIVERY);
    now.send(json!({"cmd": "send", "room": "ops", "text": "from today"}));
    let got = next(&rx, "today's message");
    assert_eq!(
        got.body["text"], "from today",
        "the old message fired a hook"
    );
}
