//! The fan-out benchmark's reference: an IRC server (ngircd, Debian package `ngircd`) on
//! loopback with N clients in one channel, one of them sending at the rate Hark's sender uses.
//! Measured the same way as Hark: from just before the harness writes the message to the
//! sender's socket until a receiving client's reader thread has read the line, and the
//! server's CPU (user + system, `/proc/PID/stat`) over the measured phase.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::pace::unix_nanos;

const CHANNEL: &str = "#bench";

/// ngircd as a child process with a throwaway config; killed on drop.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        // A free port: bind, read it, let go (ngircd binds it a moment later).
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = dir.path().join("ngircd.conf");
        // Loopback only; no DNS, ident or PAM lookups; no limits on connections or joins; and
        // no penalty throttling (one client sends 20 lines a second, which ngircd otherwise
        // slows down to about one a second, as it should for a human).
        std::fs::write(
            &config,
            format!(
                "[Global]\n  Name = bench.hark.invalid\n  Info = hark-bench\n  \
                 AdminInfo1 = hark-bench\n  AdminInfo2 = loopback\n  AdminEMail = none@invalid\n  \
                 Listen = 127.0.0.1\n  Ports = {port}\n  MotdPhrase = \"bench\"\n\
                 [Limits]\n  MaxConnections = 0\n  MaxConnectionsIP = 0\n  MaxJoins = 0\n  \
                 MaxPenaltyTime = 0\n  PingTimeout = 600\n  PongTimeout = 600\n\
                 [Options]\n  DNS = no\n  Ident = no\n  PAM = no\n"
            ),
        )?;
        let log = std::fs::File::create(dir.path().join("ngircd.log"))?;
        let child = Command::new("ngircd")
            .arg("-n")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start ngircd (Debian package ngircd; make bench installs it)")?;
        let server = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("ngircd did not listen on 127.0.0.1:{port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A line a client read, and when.
struct Heard {
    client: usize,
    line: String,
    at: SystemTime,
}

/// A registered client in the channel; its reader thread ends when the socket closes.
struct Client {
    stream: TcpStream,
    reader: Option<JoinHandle<()>>,
}

impl Client {
    fn connect(port: u16, index: usize, heard: Sender<Heard>) -> Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        let mut writer = stream.try_clone()?;
        let nick = format!("c{index}");
        write!(
            writer,
            "NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nJOIN {CHANNEL}\r\n"
        )?;
        let read_half = stream.try_clone()?;
        let reader = std::thread::spawn(move || {
            let mut pong = match read_half.try_clone() {
                Ok(s) => s,
                Err(_) => return,
            };
            let mut lines = BufReader::new(read_half);
            let mut line = String::new();
            loop {
                line.clear();
                match lines.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let at = SystemTime::now();
                let text = line.trim_end().to_owned();
                if let Some(token) = text.strip_prefix("PING ") {
                    let _ = write!(pong, "PONG {token}\r\n");
                    continue;
                }
                if heard
                    .send(Heard {
                        client: index,
                        line: text,
                        at,
                    })
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Self {
            stream,
            reader: Some(reader),
        })
    }

    fn say(&mut self, text: &str) -> Result<()> {
        write!(self.stream, "PRIVMSG {CHANNEL} :{text}\r\n")?;
        Ok(())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The text of a PRIVMSG to the channel, if `line` is one.
fn privmsg_text(line: &str) -> Option<&str> {
    let rest = line.strip_prefix(':')?;
    let (_, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("PRIVMSG ")?;
    let (target, text) = rest.split_once(" :")?;
    (target == CHANNEL).then_some(text)
}

/// Wait until every client in `waiting` has heard a line that `done` accepts.
fn wait_all(
    heard: &Receiver<Heard>,
    mut waiting: HashSet<usize>,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&str) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !waiting.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match heard.recv_timeout(left) {
            Ok(h) if done(&h.line) => {
                waiting.remove(&h.client);
            }
            Ok(_) => {}
            Err(_) => bail!("{} IRC clients never {what}", waiting.len()),
        }
    }
    Ok(())
}

/// User + system CPU seconds of a process (clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Whether ngircd can be run here.
pub fn available() -> bool {
    Path::new("/usr/sbin/ngircd").exists()
        || Command::new("ngircd")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
}

/// `n` clients in one channel of one ngircd; client 0 sends `rate` messages a second for
/// `seconds`. Returns the same fields as Hark's fan-out row (delivery, latency percentiles,
/// CPU per message per node — here the one server).
pub fn fanout(n: usize, rate: u32, seconds: u32) -> Result<serde_json::Value> {
    let server = Server::start()?;
    let (tx, heard) = mpsc::channel();
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        clients.push(Client::connect(server.port, i, tx.clone())?);
    }
    drop(tx);
    // Registered and joined: every client sees its own JOIN echoed.
    wait_all(
        &heard,
        (0..n).collect(),
        Duration::from_secs(60),
        "joined",
        |line| line.contains(" JOIN ") && line.contains(CHANNEL),
    )?;
    // Warm-up: one message that every other client hears.
    let started = Instant::now();
    clients[0].say("warm 0")?;
    wait_all(
        &heard,
        (1..n).collect(),
        Duration::from_secs(30),
        "heard the warm-up",
        |line| privmsg_text(line).is_some_and(|t| t.starts_with("warm ")),
    )?;
    let warmup_s = started.elapsed().as_secs_f64();

    let pid = server.child.id();
    let cpu_before = cpu_seconds(pid);
    let count = (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    crate::pace::at_rate(count, interval, |seq, now| {
        clients[0].say(&format!("bench {seq} {now}"))
    })?;
    let expected = count * (n - 1);
    let mut got: HashSet<(usize, usize)> = HashSet::with_capacity(expected);
    let mut latencies = Vec::with_capacity(expected);
    let mut duplicates = 0usize;
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(h) = heard.recv_timeout(left) else {
            break;
        };
        let Some(text) = privmsg_text(&h.line) else {
            continue;
        };
        let Some((seq, sent)) = crate::pace::parse(text, "bench") else {
            continue;
        };
        if !got.insert((h.client, seq)) {
            duplicates += 1;
            continue;
        }
        latencies.push(unix_nanos(h.at).saturating_sub(sent) as f64 / 1e6);
    }
    let cpu = cpu_seconds(pid) - cpu_before;
    latencies.sort_by(|a, b| a.total_cmp(b));
    drop(clients);
    drop(server);
    Ok(json!({
        "scenario": "fanout-ngircd",
        "nodes": n,
        "rate_per_s": rate,
        "messages": count,
        "warmup_s": warmup_s,
        "delivered": got.len(),
        "expected": expected,
        "delivery_ratio": got.len() as f64 / expected as f64,
        "duplicates": duplicates,
        "latency_ms_p50": percentile(&latencies, 50.0),
        "latency_ms_p99": percentile(&latencies, 99.0),
        "latency_ms_max": latencies.last().copied().unwrap_or(f64::NAN),
        "cpu_s_server": cpu,
        "cpu_ms_per_msg_node": cpu * 1000.0 / count.max(1) as f64,
    }))
}
