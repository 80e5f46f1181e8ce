//! Many real Hark nodes in one process: `hark-bench scale` and `tests/tests/scale.rs`.
//!
//! Each node is the real thing, [`hark_node::Node::start`] (swarm, gossipsub, validation, sync,
//! SQLite store), over libp2p's in-process memory transport (Noise + Yamux on top, as on TCP),
//! with its own data dir. All nodes share one multi-threaded tokio runtime.
//!
//! - Topology: the product connects a LAN by mDNS (a full mesh) or by static `--peer`s. A full
//!   mesh of 1000 is out of reach, so node *i* is given `degree` static peers chosen at random
//!   (seeded) among the nodes started before it — a sparse random graph in which gossipsub
//!   builds its mesh. Nodes start in waves (the first `degree + 1` one by one, then up to
//!   [`WAVE`] at a time) because a peer address includes the peer id, known only at `ready`.
//! - Readiness by events, each with a deadline: every node's `ready`; every static link
//!   reported as `peer_connected` at both ends; then a warm-up in which the senders repeat
//!   probe messages until one round of probes reaches every node (or, after a deadline, at
//!   least `warmup_coverage` of them).
//! - Measured phase: `senders` nodes, spread over the start order, send `messages` in turn at
//!   `rate` per second in all. Each text carries its send time (µs since the harness's epoch);
//!   latency runs from just before `NodeHandle::send` to the moment the receiving node's event
//!   task reads the `message` event. Delivery ratio = distinct messages received / (messages ×
//!   (N − 1)), counted after a drain (until all arrived, or `drain` passed).
//! - CPU: `getrusage(RUSAGE_SELF)` of the whole process over the measured phase (first send to
//!   end of drain), divided by the messages delivered; an idle spell before it gives what the
//!   nodes cost when nobody talks (heartbeats, ticks, presence), reported on its own and
//!   subtracted for `cpu_ms_per_msg_net`.
//! - Memory: `VmRSS` after the run minus `VmRSS` before the first node started, per node; the
//!   peak (`VmHWM`) likewise.
//! - Scheduling lag: a task sleeps 10 ms in a loop during the measured phase and records how
//!   late it wakes: when the two cores are saturated this grows, and so does every latency.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hark_node::{Command, Event, Node, NodeConfig, NodeHandle};
use libp2p::Multiaddr;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::SeedableRng;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Nodes started at once after the first few.
pub const WAVE: usize = 32;
/// The room every node is in (each node joins it at start).
pub const ROOM: &str = "lobby";

/// What one scale run does.
#[derive(Clone, Debug)]
pub struct ScaleOptions {
    pub nodes: usize,
    /// Static peers per node (random earlier nodes).
    pub degree: usize,
    pub seed: u64,
    /// How many nodes send (spread over the start order).
    pub senders: usize,
    /// Messages per second, all senders together.
    pub rate: f64,
    /// Length of the measured phase.
    pub seconds: f64,
    /// Idle spell measured before it (no messages), seconds.
    pub idle_seconds: f64,
    /// After the last send, wait at most this long for stragglers.
    pub drain: Duration,
    /// Warm-up: enough once a probe round reaches every node; after `warmup_deadline`, once
    /// one reaches this share of the nodes (else the run fails).
    pub warmup_coverage: f64,
    pub warmup_deadline: Duration,
    /// Where the data dirs go (default: /dev/shm when present, else the temp dir).
    pub data_root: Option<PathBuf>,
}

impl ScaleOptions {
    /// Defaults for `n` nodes: 8 static peers each, 4 senders, 2 msg/s for 20 s.
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            degree: 8,
            seed: 1,
            senders: 4,
            rate: 2.0,
            seconds: 20.0,
            idle_seconds: 5.0,
            drain: Duration::from_secs(15),
            // Below 100 % the run goes on and reports the coverage reached (1000 nodes on two
            // cores never get there: see docs/performance.md, "Scale").
            warmup_coverage: 0.5,
            warmup_deadline: Duration::from_secs(60 + nodes as u64 / 5),
            data_root: None,
        }
    }

    /// The same options as command-line arguments of `hark-bench scale-one`.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "scale-one".to_owned(),
            "--nodes".to_owned(),
            self.nodes.to_string(),
            "--degree".to_owned(),
            self.degree.to_string(),
            "--seed".to_owned(),
            self.seed.to_string(),
            "--senders".to_owned(),
            self.senders.to_string(),
            "--rate".to_owned(),
            self.rate.to_string(),
            "--seconds".to_owned(),
            self.seconds.to_string(),
        ];
        if let Some(root) = &self.data_root {
            args.push("--data-root".to_owned());
            args.push(root.display().to_string());
        }
        args
    }
}

/// The harness's clock: message texts carry microseconds since this instant.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn micros_now() -> u64 {
    epoch().elapsed().as_micros() as u64
}

/// What the harness learned from one node's events.
#[derive(Default, Debug)]
pub struct NodeLog {
    /// Peers connected now (`peer_connected` minus `peer_disconnected`).
    pub connected: usize,
    /// Warm-up probes received (their numbers).
    pub probes: HashSet<u64>,
    /// Measured messages received: sequence number → latency in ms.
    pub received: HashMap<u64, f64>,
    pub duplicates: usize,
    /// `message` events of every kind (probes, measured, others).
    pub messages: u64,
    pub presence: u64,
    /// `sent` events: our own messages stored and published.
    pub sent: u64,
    /// The first few `error` events.
    pub errors: Vec<String>,
    /// The event channel closed (the node stopped).
    pub stopped: bool,
}

/// One node of the cluster.
pub struct InProcessNode {
    pub handle: NodeHandle,
    pub peer_id: String,
    /// Its `/memory/N/p2p/ID` address.
    pub addr: Multiaddr,
    /// Its static peers (indexes into the cluster).
    pub peers: Vec<usize>,
    pub log: Arc<Mutex<NodeLog>>,
    recorder: JoinHandle<()>,
}

/// N nodes started by [`start_cluster`]; [`Cluster::shutdown`] stops them and removes the
/// data dirs (dropping the cluster also removes the dirs, without waiting for the nodes).
pub struct Cluster {
    pub nodes: Vec<InProcessNode>,
    dir: tempfile::TempDir,
}

fn default_data_root() -> PathBuf {
    // tmpfs: the store fsyncs every message (synchronous = FULL); hundreds of nodes on one
    // disk would measure the disk's flush queue, not the nodes. On a real network each node
    // has its own disk.
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() && tempfile::tempdir_in(&shm).is_ok() {
        shm
    } else {
        std::env::temp_dir()
    }
}

async fn record(mut events: mpsc::Receiver<Event>, log: Arc<Mutex<NodeLog>>) {
    while let Some(event) = events.recv().await {
        let at = micros_now();
        let mut log = log.lock().expect("node log");
        match event {
            Event::Message { text, .. } => {
                log.messages += 1;
                let mut parts = text.split(' ');
                match parts.next() {
                    Some("probe") => {
                        if let Some(n) = parts.next().and_then(|s| s.parse().ok()) {
                            log.probes.insert(n);
                        }
                    }
                    Some("scale") => {
                        let seq = parts.next().and_then(|s| s.parse::<u64>().ok());
                        let sent = parts.next().and_then(|s| s.parse::<u64>().ok());
                        if let (Some(seq), Some(sent)) = (seq, sent) {
                            let latency = at.saturating_sub(sent) as f64 / 1e3;
                            if log.received.insert(seq, latency).is_some() {
                                log.duplicates += 1;
                            }
                        }
                    }
                    _ => {}
                }
            }
            Event::Presence { .. } => log.presence += 1,
            Event::Sent { .. } => log.sent += 1,
            Event::PeerConnected { .. } => log.connected += 1,
            Event::PeerDisconnected { .. } => log.connected = log.connected.saturating_sub(1),
            Event::Error { code, detail } if log.errors.len() < 5 => {
                log.errors.push(format!("{code}: {detail}"));
            }
            _ => {}
        }
    }
    log.lock().expect("node log").stopped = true;
}

async fn start_one(
    index: usize,
    dir: PathBuf,
    peers: Vec<usize>,
    peer_addrs: Vec<Multiaddr>,
) -> Result<InProcessNode> {
    std::fs::create_dir_all(&dir)?;
    let config = NodeConfig {
        name: format!("n{index}"),
        data_dir: dir,
        listen: Vec::new(),
        peers: peer_addrs,
        // Never mDNS: the memory transport only.
        mdns: false,
        network_key: None,
        join: Vec::new(),
        relay: false,
        clock_offset_ms: 0,
        voice_frame_ms: 20,
        voice_bitrate: hark_node::voice::codec::DEFAULT_BITRATE,
        voice_out: None,
        voice_drop_percent: 0,
        fsync_delay_ms: 0,
        memory_transport: true,
        hooks: Vec::new(),
    };
    let (handle, mut events) = Node::start(config)
        .await
        .with_context(|| format!("starting node n{index}"))?;
    let ready = tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .with_context(|| format!("node n{index}: no `ready` within 30 s"))?;
    let Some(Event::Ready {
        peer_id, listen, ..
    }) = ready
    else {
        bail!("node n{index}: first event was {ready:?}, not `ready`");
    };
    let addr: Multiaddr = listen
        .iter()
        .find(|a| a.starts_with("/memory/"))
        .with_context(|| format!("node n{index}: no /memory address in {listen:?}"))?
        .parse()?;
    let log = Arc::new(Mutex::new(NodeLog::default()));
    let recorder = tokio::spawn(record(events, log.clone()));
    Ok(InProcessNode {
        handle,
        peer_id,
        addr,
        peers,
        log,
        recorder,
    })
}

/// Start `n` nodes over the memory transport, each with `degree` static peers among the
/// nodes started before it (seeded), and wait until every static link is connected at both
/// ends (deadline: `connect_deadline`). Must run inside a multi-threaded tokio runtime.
pub async fn start_cluster(
    n: usize,
    degree: usize,
    seed: u64,
    data_root: Option<PathBuf>,
    connect_deadline: Duration,
) -> Result<Cluster> {
    let root = data_root.unwrap_or_else(default_data_root);
    let dir = tempfile::Builder::new()
        .prefix("hark-scale-")
        .tempdir_in(&root)
        .with_context(|| format!("a temp dir in {}", root.display()))?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut nodes: Vec<InProcessNode> = Vec::with_capacity(n);
    while nodes.len() < n {
        let started = nodes.len();
        // The first few one by one (each links to every earlier one), then waves.
        let wave = if started <= degree { 1 } else { WAVE };
        let mut starts = Vec::new();
        for index in started..(started + wave).min(n) {
            let peers: Vec<usize> = sample(&mut rng, started, degree.min(started)).into_vec();
            let addrs = peers.iter().map(|&j| nodes[j].addr.clone()).collect();
            let node_dir = dir.path().join(format!("n{index}"));
            starts.push(start_one(index, node_dir, peers, addrs));
        }
        let mut wave_nodes = futures::future::try_join_all(starts).await?;
        nodes.append(&mut wave_nodes);
    }
    let cluster = Cluster { nodes, dir };
    // Every static link counts once at each end.
    let links: usize = cluster.nodes.iter().map(|n| n.peers.len()).sum();
    let deadline = Instant::now() + connect_deadline;
    loop {
        let connected: usize = cluster.nodes.iter().map(|n| n.log().connected).sum();
        if connected >= 2 * links {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{n} nodes: {connected} of {} link ends connected after {connect_deadline:?}",
                2 * links
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(cluster)
}

impl InProcessNode {
    pub fn log(&self) -> std::sync::MutexGuard<'_, NodeLog> {
        self.log.lock().expect("node log")
    }

    /// Send a chat line to the room.
    pub async fn say(&self, text: String) -> Result<()> {
        self.handle
            .send(Command::Send {
                room: ROOM.to_owned(),
                text,
            })
            .await
            .context("the node has stopped")
    }
}

impl Cluster {
    /// Share of the other nodes that have received probe `probe` from node `from`.
    pub fn probe_coverage(&self, from: usize, probe: u64) -> f64 {
        let got = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| *i != from && n.log().probes.contains(&probe))
            .count();
        got as f64 / (self.nodes.len() - 1).max(1) as f64
    }

    /// Warm-up: every `round` (2 s + 3 s per 1000 nodes) each sender sends a probe. Done as
    /// soon as any round's probes have all reached every node; after `deadline`, when the best
    /// round reached `min_coverage`. Rounds are judged together, not one at a time, so that a
    /// busy start (every node announcing itself to the room) only delays the end. Returns
    /// (rounds sent, coverage of the best round).
    pub async fn warm_up(
        &self,
        senders: &[usize],
        min_coverage: f64,
        deadline: Duration,
    ) -> Result<(u64, f64)> {
        let start = Instant::now();
        let round_time = Duration::from_millis(2000 + 3 * self.nodes.len() as u64);
        let mut rounds: Vec<Vec<(usize, u64)>> = Vec::new();
        let mut next_round = Instant::now();
        let mut probe = 0u64;
        loop {
            if Instant::now() >= next_round {
                let mut sent = Vec::new();
                for &s in senders {
                    self.nodes[s].say(format!("probe {probe}")).await?;
                    sent.push((s, probe));
                    probe += 1;
                }
                rounds.push(sent);
                next_round = Instant::now() + round_time;
            }
            let best = rounds
                .iter()
                .map(|sent| {
                    sent.iter()
                        .map(|&(s, p)| self.probe_coverage(s, p))
                        .fold(1.0, f64::min)
                })
                .fold(0.0, f64::max);
            if best >= 1.0 || (start.elapsed() > deadline && best >= min_coverage) {
                return Ok((rounds.len() as u64, best));
            }
            if start.elapsed() > deadline {
                let first = rounds.first().cloned().unwrap_or_default();
                let detail: Vec<String> = first
                    .iter()
                    .map(|&(s, p)| {
                        let log = self.nodes[s].log();
                        format!(
                            "n{s}: {:.1} % (connected {}, sent {}, errors {:?})",
                            self.probe_coverage(s, p) * 100.0,
                            log.connected,
                            log.sent,
                            log.errors
                        )
                    })
                    .collect();
                bail!(
                    "warm-up: after {:.0} s the best probe round reached {:.1} % of {} nodes; first round by sender: {}",
                    start.elapsed().as_secs_f64(),
                    best * 100.0,
                    self.nodes.len(),
                    detail.join("; ")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stop every node (`quit`), waiting at most `deadline` in all, then remove the data dirs.
    pub async fn shutdown(self, deadline: Duration) -> usize {
        let mut waits = Vec::new();
        for node in self.nodes {
            let _ = node.handle.send(Command::Quit).await;
            let recorder = node.recorder;
            waits.push(async move {
                node.handle.stopped().await;
                recorder.abort();
            });
        }
        let total = waits.len();
        let stopped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = waits.into_iter().map(|w| {
            let stopped = stopped.clone();
            async move {
                w.await;
                stopped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let _ = tokio::time::timeout(deadline, futures::future::join_all(counted)).await;
        drop(self.dir);
        total - stopped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// User + system CPU seconds of this process so far.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass; an all-zero rusage is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF and a valid pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// A `/proc/self/status` figure in kB (`VmRSS:`, `VmHWM:`, `Threads:` as a plain number).
pub fn self_status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Raise the soft open-files limit to the hard one (each node holds a few SQLite files).
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            let _ = libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
        limit.rlim_cur
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Wakes every 10 ms and records how late (ms), until stopped.
fn spawn_lag_probe(stop: Arc<std::sync::atomic::AtomicBool>) -> JoinHandle<Vec<f64>> {
    tokio::spawn(async move {
        let mut lags = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let t = Instant::now();
            tokio::time::sleep(Duration::from_millis(10)).await;
            lags.push((t.elapsed().as_secs_f64() * 1e3 - 10.0).max(0.0));
        }
        lags
    })
}

/// One scale run in this process (builds its own tokio runtime): start the cluster, warm up,
/// idle, send, drain, measure, shut down. Returns the JSON row of `scale.json`.
pub fn run(opts: &ScaleOptions) -> Result<serde_json::Value> {
    if opts.nodes < 2 {
        bail!("scale: at least 2 nodes");
    }
    let fd_limit = raise_fd_limit();
    epoch();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run_async(opts, fd_limit));
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

async fn run_async(opts: &ScaleOptions, fd_limit: u64) -> Result<serde_json::Value> {
    let n = opts.nodes;
    let rss_base_kb = self_status("VmRSS:");
    let cpu_0 = process_cpu_seconds();
    let t0 = Instant::now();
    let cluster = start_cluster(
        n,
        opts.degree,
        opts.seed,
        opts.data_root.clone(),
        Duration::from_secs(30 + n as u64 / 10),
    )
    .await?;
    let start_s = t0.elapsed().as_secs_f64();
    let cpu_start = process_cpu_seconds() - cpu_0;
    let rss_started_kb = self_status("VmRSS:");
    eprintln!(
        "  {n} nodes ready and linked in {start_s:.1} s (CPU {cpu_start:.1} s, RSS {:.0} MB)",
        rss_started_kb as f64 / 1024.0
    );

    let senders: Vec<usize> = (0..opts.senders.clamp(1, n))
        .map(|i| i * n / opts.senders.clamp(1, n))
        .collect();
    let t1 = Instant::now();
    let cpu_1 = process_cpu_seconds();
    let (rounds, coverage) = match cluster
        .warm_up(&senders, opts.warmup_coverage, opts.warmup_deadline)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            cluster.shutdown(Duration::from_secs(30)).await;
            return Err(e);
        }
    };
    let warmup_s = t1.elapsed().as_secs_f64();
    let cpu_warmup = process_cpu_seconds() - cpu_1;
    eprintln!(
        "  warm-up: {rounds} probe rounds, {:.1} % coverage, {warmup_s:.1} s (CPU {cpu_warmup:.1} s)",
        coverage * 100.0
    );

    // Settle: the start's backlog (every node announcing itself, first syncs) drains; until
    // two 2-second windows cost about the same CPU, at most 60 s.
    let t_settle = Instant::now();
    let mut last_window = f64::INFINITY;
    while t_settle.elapsed() < Duration::from_secs(60) {
        let c = process_cpu_seconds();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let window = process_cpu_seconds() - c;
        if window <= last_window * 1.2 && window >= last_window * 0.8 || window < 0.1 {
            break;
        }
        last_window = window;
    }
    let settle_s = t_settle.elapsed().as_secs_f64();

    // Idle: nobody talks (measured, not waited on).
    let cpu_2 = process_cpu_seconds();
    let t2 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(opts.idle_seconds)).await;
    let idle_s = t2.elapsed().as_secs_f64();
    let idle_cpu_per_s = (process_cpu_seconds() - cpu_2) / idle_s;
    let presence_before: u64 = cluster.nodes.iter().map(|n| n.log().presence).sum();

    // Measured phase.
    let count = (opts.rate * opts.seconds).round().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / opts.rate);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lag_probe = spawn_lag_probe(stop.clone());
    let cpu_3 = process_cpu_seconds();
    let begin = Instant::now();
    let begin_tokio = tokio::time::Instant::now();
    let mut sent_by = vec![0u64; n];
    for seq in 0..count {
        tokio::time::sleep_until(begin_tokio + interval * seq as u32).await;
        let sender = senders[(seq % senders.len() as u64) as usize];
        sent_by[sender] += 1;
        // ≈ 60 characters, like a chat line.
        let text = format!("scale {seq} {} the quick brown fox jumps", micros_now());
        cluster.nodes[sender].say(text).await?;
    }
    let send_s = begin.elapsed().as_secs_f64();
    let expected = count * (n as u64 - 1);
    let drain_end = Instant::now() + opts.drain;
    let delivered = loop {
        let delivered: u64 = cluster
            .nodes
            .iter()
            .map(|n| n.log().received.len() as u64)
            .sum();
        if delivered >= expected || Instant::now() > drain_end {
            break delivered;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let phase_s = begin.elapsed().as_secs_f64();
    let cpu_phase = process_cpu_seconds() - cpu_3;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut lags = lag_probe.await.unwrap_or_default();
    lags.sort_by(|a, b| a.total_cmp(b));

    let rss_kb = self_status("VmRSS:");
    let hwm_kb = self_status("VmHWM:");
    let threads = self_status("Threads:");
    let fds = open_fds();
    let presence_after: u64 = cluster.nodes.iter().map(|n| n.log().presence).sum();

    let mut latencies: Vec<f64> = Vec::with_capacity(delivered as usize);
    let mut duplicates = 0usize;
    let mut incomplete_nodes = 0usize;
    let mut errors: Vec<String> = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let log = node.log();
        latencies.extend(log.received.values().copied());
        duplicates += log.duplicates;
        if (log.received.len() as u64) < count - sent_by[i] {
            incomplete_nodes += 1;
        }
        errors.extend(log.errors.iter().take(2).cloned());
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let late_1s = latencies.iter().filter(|&&l| l > 1000.0).count();
    let links: usize = cluster.nodes.iter().map(|n| n.peers.len()).sum();
    let not_stopped = cluster.shutdown(Duration::from_secs(30)).await;

    let mb = |kb: u64| kb as f64 / 1024.0;
    let delivered_f = delivered.max(1) as f64;
    let row = json!({
        "scenario": "scale",
        "nodes": n,
        "degree": opts.degree,
        "links": links,
        "seed": opts.seed,
        "senders": senders.len(),
        "rate_per_s": opts.rate,
        "messages": count,
        "send_s": send_s,
        "phase_s": phase_s,
        "expected": expected,
        "delivered": delivered,
        "delivered_ratio": delivered as f64 / expected as f64,
        "nodes_missing_some": incomplete_nodes,
        "duplicates": duplicates,
        "p50_ms": percentile(&latencies, 50.0),
        "p90_ms": percentile(&latencies, 90.0),
        "p99_ms": percentile(&latencies, 99.0),
        "max_ms": latencies.last().copied().unwrap_or(f64::NAN),
        "late_over_1s": late_1s,
        "cpu_ms_per_msg": cpu_phase * 1e3 / delivered_f,
        "cpu_ms_per_msg_net": (cpu_phase - idle_cpu_per_s * phase_s).max(0.0) * 1e3 / delivered_f,
        "cpu_s_phase": cpu_phase,
        "cpu_cores_busy_phase": cpu_phase / phase_s,
        "idle_cpu_cores": idle_cpu_per_s,
        "idle_cpu_ms_per_node_s": idle_cpu_per_s * 1e3 / n as f64,
        "presence_events_per_s": (presence_after - presence_before) as f64 / (phase_s + idle_s),
        "sched_lag_ms_p50": percentile(&lags, 50.0),
        "sched_lag_ms_p99": percentile(&lags, 99.0),
        "sched_lag_ms_max": lags.last().copied().unwrap_or(f64::NAN),
    });
    // Two objects: one json! of all fields passes the macro recursion limit.
    let more = json!({
        "start_s": start_s,
        "cpu_s_start": cpu_start,
        "warmup_s": warmup_s,
        "warmup_rounds": rounds,
        "settle_s": settle_s,
        "warmup_coverage": coverage,
        "cpu_s_warmup": cpu_warmup,
        "rss_mb_base": mb(rss_base_kb),
        "rss_mb_started": mb(rss_started_kb),
        "rss_mb": mb(rss_kb),
        "rss_mb_peak": mb(hwm_kb),
        "rss_mb_per_node": mb(rss_kb.saturating_sub(rss_base_kb)) / n as f64,
        "rss_mb_per_node_started": mb(rss_started_kb.saturating_sub(rss_base_kb)) / n as f64,
        "peak_rss_mb_per_node": mb(hwm_kb.saturating_sub(rss_base_kb)) / n as f64,
        "threads": threads,
        "open_fds": fds,
        "fd_limit": fd_limit,
        "nodes_not_stopped": not_stopped,
        "errors": errors.into_iter().take(5).collect::<Vec<_>>(),
        "load_average": std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok())),
    });
    let mut row = row;
    if let (Some(row), serde_json::Value::Object(more)) = (row.as_object_mut(), more) {
        row.extend(more);
    }
    Ok(row)
}

/// Run one scale row in a child process (`hark-bench scale-one …`), so that every size starts
/// from an empty process: memory and CPU figures are its alone. The child prints its row as one
/// JSON line on stdout; its progress goes to stderr.
pub fn run_in_child(exe: &std::path::Path, opts: &ScaleOptions) -> Result<serde_json::Value> {
    let output = std::process::Command::new(exe)
        .args(opts.to_args())
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("starting {}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let row = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(RESULT_PREFIX))
        .map(serde_json::from_str::<serde_json::Value>)
        .transpose()?;
    match row {
        Some(row) if output.status.success() => Ok(row),
        Some(row) => bail!("{}", row["error"].as_str().unwrap_or("failed")),
        None => bail!("the child run died ({}) without a result", output.status),
    }
}

/// How a child marks its result line.
pub const RESULT_PREFIX: &str = "SCALE-RESULT ";

/// The table `hark-bench scale` prints.
pub fn print_table(rows: &[serde_json::Value]) {
    let f = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "\nscale (N real nodes in one process, memory transport, {} static peers each; {} senders, {} msg/s in all)",
        rows.first().map_or(serde_json::Value::Null, |r| r["degree"].clone()),
        rows.first().map_or(serde_json::Value::Null, |r| r["senders"].clone()),
        rows.first().map_or(serde_json::Value::Null, |r| r["rate_per_s"].clone()),
    );
    println!(
        "{:>5} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>8}",
        "N",
        "delivery",
        "p50 ms",
        "p99 ms",
        "max ms",
        "CPU ms/msg",
        "net ms/msg",
        "idle cores",
        "MB/node",
        "peak MB/n",
        "lag p99",
        "start s"
    );
    for r in rows {
        if let Some(error) = r["error"].as_str() {
            println!(
                "{:>5} FAILED: {}",
                r["nodes"],
                error.lines().next().unwrap_or("")
            );
            continue;
        }
        println!(
            "{:>5} {:>8.2}% {:>8.1} {:>8.1} {:>8.1} {:>10.3} {:>10.3} {:>10.2} {:>10.2} {:>9.2} {:>9.1} {:>8.1}",
            r["nodes"],
            f(r, "delivered_ratio") * 100.0,
            f(r, "p50_ms"),
            f(r, "p99_ms"),
            f(r, "max_ms"),
            f(r, "cpu_ms_per_msg"),
            f(r, "cpu_ms_per_msg_net"),
            f(r, "idle_cpu_cores"),
            f(r, "rss_mb_per_node"),
            f(r, "peak_rss_mb_per_node"),
            f(r, "sched_lag_ms_p99"),
            f(r, "start_s"),
        );
    }
}
