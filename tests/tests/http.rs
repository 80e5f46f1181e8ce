//! The HTTP API (`--http`, docs/protocol.md "HTTP"), on loopback, as a script would use it:
//! a message posted over HTTP reaches a peer node, history pages with `before`, `/v1/events`
//! streams a peer's message as Server-Sent Events, `/metrics` parses as Prometheus text with a
//! counter that moves, a wrong token is a 401 JSON error, and a non-loopback address without a
//! token is refused at start.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hark_node::Event;
use hark_tests::process::{hark_node_bin, DELIVERY};
use hark_tests::NodeProcess;
use serde_json::{json, Value};

/// One request (HTTP/1.1, `Connection: close`): the status and the body.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the HTTP API");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn json_of(status_body: (u16, String), want: u16) -> Value {
    let (status, body) = status_body;
    assert_eq!(status, want, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

/// A Server-Sent Events stream: the `data:` lines of `event: message` events, de-chunked.
struct Events {
    lines: BufReader<TcpStream>,
}

impl Events {
    fn open(addr: &str, path: &str) -> Self {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut lines = BufReader::new(stream);
        let mut status = String::new();
        lines.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "{status}");
        loop {
            let mut header = String::new();
            lines.read_line(&mut header).unwrap();
            if header.trim().is_empty() {
                break;
            }
        }
        Self { lines }
    }

    /// The next chunk of the body (`Transfer-Encoding: chunked`), or `None` on a timeout.
    fn chunk(&mut self) -> Option<String> {
        let mut size = String::new();
        self.lines.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        let mut data = vec![0; size + 2];
        self.lines.read_exact(&mut data).ok()?;
        data.truncate(size);
        Some(String::from_utf8(data).expect("UTF-8 events"))
    }

    /// Wait for an event whose JSON satisfies `pred`.
    fn expect(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DELIVERY;
        let mut text = String::new();
        while Instant::now() < deadline {
            if let Some(chunk) = self.chunk() {
                text.push_str(&chunk);
            }
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                for line in event.lines() {
                    if let Some(data) = line.strip_prefix("data: ") {
                        let value: Value = serde_json::from_str(data).unwrap();
                        if pred(&value) {
                            return value;
                        }
                    }
                }
            }
        }
        panic!("no {what} on /v1/events within {DELIVERY:?}");
    }
}

fn scrape(addr: &str) -> prometheus_parse::Scrape {
    let (status, body) = request(addr, "GET", "/metrics", None, None);
    assert_eq!(status, 200, "{body}");
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text format");
    assert!(!scrape.samples.is_empty());
    for sample in &scrape.samples {
        assert!(sample.metric.starts_with("hark_"), "{}", sample.metric);
    }
    scrape
}

fn sample(scrape: &prometheus_parse::Scrape, metric: &str, label: (&str, &str)) -> f64 {
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && s.labels.get(label.0) == Some(label.1))
        .unwrap_or_else(|| panic!("no {metric}{{{}={:?}}}", label.0, label.1));
    match found.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{metric}: {other:?}"),
    }
}

#[test]
fn post_page_follow_and_metrics() {
    let a = NodeProcess::start("alice", &["--http", "127.0.0.1:0"]);
    let addr = a.http_addr();
    let mut b = NodeProcess::start("bob", &["--peer", &a.addr()]);

    let health = json_of(request(&addr, "GET", "/healthz", None, None), 200);
    assert_eq!(health["ready"], true, "{health}");
    assert_eq!(health["store_writable"], true, "{health}");
    let rooms = json_of(request(&addr, "GET", "/v1/rooms", None, None), 200);
    assert!(
        rooms["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["room"] == "lobby"),
        "{rooms}"
    );
    let before = scrape(&addr);
    let sent_before = sample(&before, "hark_messages_sent_total", ("kind", "alert"));

    // POST a message: 201 with its id once stored; it arrives at the peer node.
    let posted = json_of(
        request(
            &addr,
            "POST",
            "/v1/rooms/lobby/messages",
            None,
            Some(r#"{"text":"fire in hall 2","kind":"alert"}"#),
        ),
        201,
    );
    let id = posted["id"].as_str().expect("an id").to_owned();
    b.expect("the posted alert", DELIVERY, |e| {
        matches!(e, Event::Message { id: got, kind, text, .. }
            if *got == id && kind == "alert" && text == "fire in hall 2")
    });
    let after = scrape(&addr);
    assert_eq!(
        sample(&after, "hark_messages_sent_total", ("kind", "alert")),
        sent_before + 1.0
    );

    // Peers: bob is there.
    let peers = json_of(request(&addr, "GET", "/v1/peers", None, None), 200);
    assert!(
        peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["peer_id"] == b.peer_id.as_str()),
        "{peers}"
    );

    // History pages with before.
    let mut ids = vec![id];
    for n in 0..4 {
        let body = json!({"text": format!("page {n}")}).to_string();
        let posted = json_of(
            request(&addr, "POST", "/v1/rooms/lobby/messages", None, Some(&body)),
            201,
        );
        ids.push(posted["id"].as_str().unwrap().to_owned());
    }
    let page = |query: &str| -> Vec<String> {
        let page = json_of(
            request(
                &addr,
                "GET",
                &format!("/v1/rooms/lobby/messages?{query}"),
                None,
                None,
            ),
            200,
        );
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(page("limit=2"), ids[3..5]);
    assert_eq!(page(&format!("limit=2&before={}", ids[3])), ids[1..3]);
    assert_eq!(page(&format!("limit=2&before={}", ids[1])), ids[0..1]);
    assert!(page(&format!("limit=2&before={}", ids[0])).is_empty());
    let error = json_of(
        request(
            &addr,
            "GET",
            "/v1/rooms/lobby/messages?before=zz",
            None,
            None,
        ),
        400,
    );
    assert_eq!(error["code"], "bad_command", "{error}");
    let error = json_of(
        request(
            &addr,
            "POST",
            "/v1/rooms/nowhere/messages",
            None,
            Some(r#"{"text":"x"}"#),
        ),
        404,
    );
    assert_eq!(error["code"], "not_joined", "{error}");
    let error = json_of(
        request(&addr, "POST", "/v1/rooms/lobby/messages", None, Some("{")),
        400,
    );
    assert_eq!(error["code"], "bad_command", "{error}");
    let big = format!(r#"{{"text":"{}"}}"#, "a".repeat(70 * 1024));
    let error = json_of(
        request(&addr, "POST", "/v1/rooms/lobby/messages", None, Some(&big)),
        413,
    );
    assert_eq!(error["code"], "too_long", "{error}");

    // Events: bob's message arrives on alice's stream.
    let mut events = Events::open(&addr, "/v1/events?room=lobby");
    events.expect("ready", |v| v["event"] == "ready");
    b.send(json!({"cmd": "send", "room": "lobby", "text": "hello over sse"}));
    let message = events.expect("bob's message", |v| {
        v["event"] == "message" && v["text"] == "hello over sse"
    });
    assert_eq!(message["from"], b.peer_id.as_str());
    let received = sample(
        &scrape(&addr),
        "hark_messages_received_total",
        ("kind", "text"),
    );
    assert!(received >= 1.0, "{received}");
}

#[test]
fn wrong_token_is_a_401_json_error() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let node = NodeProcess::start(
        "alice",
        &[
            "--http",
            "127.0.0.1:0",
            "--http-token",
            token.to_str().unwrap(),
        ],
    );
    let addr = node.http_addr();
    for given in [None, Some("wrong"), Some("s3cret-token2")] {
        let error = json_of(request(&addr, "GET", "/v1/rooms", given, None), 401);
        assert_eq!(error["code"], "unauthorized", "{error}");
        assert!(error["detail"].is_string(), "{error}");
    }
    json_of(
        request(&addr, "GET", "/v1/rooms", Some("s3cret-token"), None),
        200,
    );
    let (status, _) = request(&addr, "GET", "/metrics", Some("wrong"), None);
    assert_eq!(status, 401);
    // The scheme's case does not matter (RFC 9110).
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    write!(
        stream,
        "GET /v1/rooms HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: bearer s3cret-token\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // A kind no event has would stream nothing, silently: refused.
    let error = json_of(
        request(
            &addr,
            "GET",
            "/v1/events?kind=mesage",
            Some("s3cret-token"),
            None,
        ),
        400,
    );
    assert_eq!(error["code"], "bad_command", "{error}");
}

#[test]
fn non_loopback_without_a_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(hark_node_bin())
        .args(["--no-mdns", "--http", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("no-config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hark-node");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hark-node did not refuse a non-loopback --http without a token");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--http-token"), "{stderr}");
}

/// The HTTP API serves many users at once: one's message waiting for a slow disk's fsync
/// holds up nobody else's requests (each HTTP request waits for its own answer only).
#[test]
fn a_post_waiting_for_a_slow_disk_holds_up_no_other_request() {
    // Each fsync of alice's own messages takes 5 s longer than the disk (the API answers
    // within 10 s).
    let a = NodeProcess::start_with_env(
        "alice",
        &[("HARK_TEST_FSYNC_DELAY_MS", "5000")],
        &["--http", "127.0.0.1:0"],
    );
    let addr = a.http_addr();
    let post = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let posted = request(
                &addr,
                "POST",
                "/v1/rooms/lobby/messages",
                None,
                Some(r#"{"text":"on a slow disk"}"#),
            );
            (posted, Instant::now())
        })
    };
    // The message is committed (history shows it) while its fsync runs: other requests are
    // answered then, well before the POST is.
    let deadline = Instant::now() + DELIVERY;
    let shown_at = loop {
        assert!(
            Instant::now() < deadline,
            "history never showed the message"
        );
        let page = json_of(
            request(&addr, "GET", "/v1/rooms/lobby/messages", None, None),
            200,
        );
        if page.to_string().contains("on a slow disk") {
            break Instant::now();
        }
    };
    json_of(request(&addr, "GET", "/v1/peers", None, None), 200);
    let ((status, body), posted_at) = post.join().expect("the POST thread");
    assert_eq!(status, 201, "{body}");
    assert!(
        posted_at > shown_at + Duration::from_secs(1),
        "the history was answered only {:?} before the POST, which waited 5 s for its fsync",
        posted_at.saturating_duration_since(shown_at)
    );
}
