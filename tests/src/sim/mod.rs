//! A deterministic simulator: many Hark engines in one process, a virtual clock, and a modelled
//! network ([`network`]). One seed gives one run: the same inputs reach the same engines at
//! the same virtual instants, and the run's trace hash (over every message shown, every `sent`
//! and every sync request, with their instants) is the same every time.
//!
//! What is real: the whole engine (validation, Automerge history, sync sessions, timers,
//! anti-entropy, spreading, dependency waits), sealing and signatures, and the store's
//! contract (an in-memory [`MemoryStore`] that a crashed node finds again on restart).
//! What is modelled: gossipsub (a room broadcast with several lossy paths per member, see
//! [`network`]), connections (a fixed random graph of neighbours), and time.
//!
//! The sim is single-threaded on purpose: determinism comes first; `hark-bench sim` reports
//! the wall time it took.

pub mod bench;
pub mod network;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

use hark_node::api::{Command, Event};
use hark_node::engine::{Engine, EngineConfig, Footprint, Input, MemoryStore, Now, Output};
use hark_node::rooms::{Room, RoomBook};
use hark_proto::{RoomName, Topic};
use libp2p::gossipsub::MessageId as GossipId;
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

pub use network::LinkModel;

/// The virtual wall clock starts here (2026-12-01 00:00 UTC), so every run stamps the same.
const EPOCH_MS: u64 = 1_796_083_200_000;
/// `Sim::progress` prints a line this often (simulated time).
const PROGRESS_EVERY: Duration = Duration::from_secs(60);
/// A message counts as delivered live when gossip brought it within this long.
pub const LIVE_WINDOW: Duration = Duration::from_secs(5);

/// One simulated run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub nodes: usize,
    pub seed: u64,
    /// Nodes that write, each one message every `interval`.
    pub writers: usize,
    pub interval: Duration,
    /// Writers write from the start for this long...
    pub write_for: Duration,
    /// ...and the run goes on this long after, for anti-entropy to finish.
    pub settle: Duration,
    /// Connections per node (about; a ring keeps the graph connected).
    pub degree: usize,
    pub link: LinkModel,
    /// Share of nodes that crash once while writers write, and how long they stay down.
    pub restart_share: f64,
    pub down_for: (Duration, Duration),
    /// Split the nodes in two halves at the first instant and heal at the second.
    pub partition: Option<(Duration, Duration)>,
    /// Sample every engine's footprint this often (soak runs).
    pub sample_every: Option<Duration>,
}

impl SimConfig {
    /// The big scenario: 10 writers at 1 msg/s for 10 minutes, 1 % loss, 5 % of
    /// nodes restarting.
    pub fn crowd(nodes: usize, seed: u64) -> Self {
        Self {
            nodes,
            seed,
            writers: 10.min(nodes),
            interval: Duration::from_secs(1),
            write_for: Duration::from_secs(600),
            settle: Duration::from_secs(120),
            degree: 8,
            link: LinkModel::default(),
            restart_share: 0.05,
            down_for: (Duration::from_secs(5), Duration::from_secs(30)),
            partition: None,
            sample_every: None,
        }
    }
}

/// A quiet room for `hours`: two writers, one message every five minutes each, no loss
/// beyond the default, footprints sampled every hour.
pub fn soak(nodes: usize, hours: u64) -> SimConfig {
    SimConfig {
        writers: 2,
        interval: Duration::from_secs(300),
        write_for: Duration::from_secs(hours * 3600),
        settle: Duration::from_secs(120),
        restart_share: 0.0,
        sample_every: Some(Duration::from_secs(3600)),
        ..SimConfig::crowd(nodes, 5)
    }
}

/// What a run measured. Field names are the `hark-bench sim` JSON contract (SPEC §8).
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    pub nodes: usize,
    pub seed: u64,
    pub messages: usize,
    /// Share of (message, member) pairs delivered by gossip within [`LIVE_WINDOW`], among the
    /// members that were up and on the author's side of any partition for that whole window.
    pub delivered_live: f64,
    /// Share of (message, node) pairs held by the end of the run.
    pub delivered_final: f64,
    /// Every node holds every message, in the same order.
    pub converged: bool,
    pub trace_hash: String,
    pub simulated_s: f64,
    pub wall_s: f64,
    pub restarts: usize,
    pub sync_requests: u64,
    pub sync_bytes: u64,
    pub gossip_bytes: u64,
    pub rejected: u64,
    /// `message` events for a message the node had already shown or sent (must be 0), or
    /// stored before a crash.
    pub duplicates: u64,
    /// Messages a node had shown but not yet stored when it crashed (shown again after).
    pub lost_in_crashes: u64,
    /// After a partition heals: until every node holds every message, and sync bytes spent.
    pub heal_convergence_ms: Option<f64>,
    pub heal_sync_bytes: Option<u64>,
    /// Footprint samples: (simulated seconds, largest per-node footprint, most timers pending
    /// on one node).
    pub footprints: Vec<(f64, Footprint, usize)>,
}

struct SimNode {
    peer: PeerId,
    identity: Keypair,
    engine: Option<Engine<MemoryStore>>,
    /// The disk while the node is down.
    disk: Option<MemoryStore>,
    incarnation: u32,
    neighbours: Vec<usize>,
    side: u8,
    /// When it went down, and every (down, up) interval so far.
    down_since: Option<Duration>,
    outages: Vec<(Duration, Duration)>,
    /// Messages it holds (bit per message index), and how many.
    holds: Vec<bool>,
    held: usize,
    /// Messages it got by gossip within the live window.
    live: Vec<u32>,
    timers_pending: usize,
}

enum What {
    Input(Input),
    Timer(hark_node::engine::Timer),
    Write,
    Crash(Duration),
    Restart,
    Split,
    Heal,
    Sample,
}

struct Scheduled {
    at: Duration,
    seq: u64,
    node: usize,
    incarnation: u32,
    what: What,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct MessageInfo {
    author: usize,
    sent_at: Duration,
}

pub struct Sim {
    config: SimConfig,
    rng: StdRng,
    base: Instant,
    now: Duration,
    nodes: Vec<SimNode>,
    by_peer: HashMap<PeerId, usize>,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    lobby: Room,
    partitioned: bool,
    messages: Vec<MessageInfo>,
    message_index: HashMap<String, u32>,
    /// Sync replies owed: tag → (requester, its incarnation, room).
    replies: HashMap<u64, (usize, u32, Topic)>,
    next_tag: u64,
    gossip_seq: u64,
    trace: blake3::Hasher,
    report: SimReport,
    healed_at: Option<Duration>,
    heal_sync_bytes_start: u64,
    /// Print progress on stderr (benchmarks).
    pub progress: bool,
}

impl Sim {
    pub fn new(config: SimConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let lobby = Room::public(RoomName::parse("lobby").expect("a valid room name"));
        let n = config.nodes;
        let mut nodes: Vec<SimNode> = (0..n)
            .map(|i| {
                let mut secret: [u8; 32] = rng.gen();
                secret[0] ^= i as u8;
                let identity = Keypair::ed25519_from_bytes(secret).expect("32 bytes make a key");
                SimNode {
                    peer: identity.public().to_peer_id(),
                    identity,
                    engine: None,
                    disk: Some(MemoryStore::default()),
                    incarnation: 0,
                    neighbours: Vec::new(),
                    side: u8::from(i >= n / 2),
                    down_since: None,
                    outages: Vec::new(),
                    holds: Vec::new(),
                    held: 0,
                    live: Vec::new(),
                    timers_pending: 0,
                }
            })
            .collect();
        // A ring keeps everyone reachable; random chords make it a small world.
        let mut edges = std::collections::BTreeSet::new();
        if n > 1 {
            for i in 0..n {
                let j = (i + 1) % n;
                if i != j {
                    edges.insert((i.min(j), i.max(j)));
                }
            }
            let extra = config.degree.saturating_sub(2) / 2;
            for i in 0..n {
                for _ in 0..extra {
                    let j = rng.gen_range(0..n);
                    if i != j {
                        edges.insert((i.min(j), i.max(j)));
                    }
                }
            }
        }
        for (i, j) in edges {
            nodes[i].neighbours.push(j);
            nodes[j].neighbours.push(i);
        }
        let by_peer = nodes.iter().enumerate().map(|(i, n)| (n.peer, i)).collect();
        let report = SimReport {
            nodes: n,
            seed: config.seed,
            ..SimReport::default()
        };
        Self {
            config,
            rng,
            base: Instant::now(),
            now: Duration::ZERO,
            nodes,
            by_peer,
            queue: BinaryHeap::new(),
            seq: 0,
            lobby,
            partitioned: false,
            messages: Vec::new(),
            message_index: HashMap::new(),
            replies: HashMap::new(),
            next_tag: 0,
            gossip_seq: 0,
            trace: blake3::Hasher::new(),
            report,
            healed_at: None,
            heal_sync_bytes_start: 0,
            progress: false,
        }
    }

    /// Run to the end and report.
    pub fn run(mut self) -> SimReport {
        let started = Instant::now();
        let n = self.config.nodes;
        for i in 0..n {
            self.boot(i);
        }
        let writers = self.config.writers.min(n);
        for w in 0..writers {
            let node = w * n / writers.max(1);
            let first = Duration::from_millis(self.rng.gen_range(0..1_000));
            self.schedule(first, node, What::Write);
        }
        self.plan_restarts(writers);
        if let Some((split, heal)) = self.config.partition {
            self.schedule(split, 0, What::Split);
            self.schedule(heal, 0, What::Heal);
        }
        if let Some(every) = self.config.sample_every {
            self.schedule(every, 0, What::Sample);
        }
        let end = self.config.write_for + self.config.settle;
        let mut next_progress = PROGRESS_EVERY;
        while let Some(Reverse(next)) = self.queue.pop() {
            if next.at > end {
                break;
            }
            self.now = next.at;
            if self.progress && self.now >= next_progress {
                next_progress += PROGRESS_EVERY;
                eprintln!(
                    "  {:>6.0} s simulated in {:>6.1} s: {} messages, {} events pending",
                    self.now.as_secs_f64(),
                    started.elapsed().as_secs_f64(),
                    self.messages.len(),
                    self.queue.len()
                );
            }
            self.step(next);
        }
        self.now = end;
        self.finish(started)
    }

    fn schedule(&mut self, after: Duration, node: usize, what: What) {
        let incarnation = self.nodes[node].incarnation;
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at: self.now + after,
            seq: self.seq,
            node,
            incarnation,
            what,
        }));
    }

    fn now_of(&self) -> Now {
        Now {
            at: self.base + self.now,
            wall_ms: EPOCH_MS + self.now.as_millis() as u64,
        }
    }

    fn plan_restarts(&mut self, writers: usize) {
        let n = self.config.nodes;
        let count = (n as f64 * self.config.restart_share).round() as usize;
        let writer_nodes: Vec<usize> = (0..writers).map(|w| w * n / writers.max(1)).collect();
        let mut candidates: Vec<usize> = (0..n).filter(|i| !writer_nodes.contains(i)).collect();
        candidates.shuffle(&mut self.rng);
        let window = self.config.write_for.as_millis() as u64;
        for &node in candidates.iter().take(count) {
            let (lo, hi) = self.config.down_for;
            let down = Duration::from_millis(
                self.rng
                    .gen_range(lo.as_millis() as u64..=hi.as_millis().max(lo.as_millis()) as u64),
            );
            let latest = window.saturating_sub(down.as_millis() as u64).max(1);
            let at = Duration::from_millis(self.rng.gen_range(0..latest));
            self.schedule(at, node, What::Crash(down));
            self.report.restarts += 1;
        }
    }

    fn step(&mut self, next: Scheduled) {
        let node = next.node;
        match next.what {
            What::Input(input) => {
                if self.is_current(node, next.incarnation) {
                    self.deliver(node, input);
                }
            }
            What::Timer(timer) => {
                if self.is_current(node, next.incarnation) {
                    self.nodes[node].timers_pending -= 1;
                    self.deliver(node, Input::Timer(timer));
                }
            }
            What::Write => {
                if self.now < self.config.write_for {
                    let jitter = Duration::from_millis(self.rng.gen_range(0..50));
                    self.schedule(self.config.interval + jitter, node, What::Write);
                    if self.nodes[node].engine.is_some() {
                        let k = self.messages.len();
                        let text = format!("message {k} from node {node}");
                        self.deliver(
                            node,
                            Input::Command(Command::Send {
                                room: "lobby".into(),
                                text,
                            }),
                        );
                    }
                }
            }
            What::Crash(down_for) => {
                self.crash(node);
                self.schedule(down_for, node, What::Restart);
            }
            What::Restart => self.boot(node),
            What::Split => self.split(),
            What::Heal => self.heal(),
            What::Sample => self.sample(),
        }
    }

    fn is_current(&self, node: usize, incarnation: u32) -> bool {
        let n = &self.nodes[node];
        n.engine.is_some() && n.incarnation == incarnation
    }

    fn link_up(&self, a: usize, b: usize) -> bool {
        self.nodes[a].engine.is_some()
            && self.nodes[b].engine.is_some()
            && (!self.partitioned || self.nodes[a].side == self.nodes[b].side)
    }

    /// Start (or restart) a node on its disk and connect it to its reachable neighbours.
    fn boot(&mut self, node: usize) {
        let disk = self.nodes[node].disk.take().unwrap_or_default();
        let mut rooms = RoomBook::default();
        let _ = rooms.insert(self.lobby.clone());
        for stored in disk.rooms() {
            let _ = rooms.insert(stored.into());
        }
        let newest_hlc = disk
            .all_messages(&self.lobby.chat_topic)
            .last()
            .map(|m| m.hlc);
        let seed = self.rng.gen();
        let now = self.now_of();
        let engine = Engine::new(
            EngineConfig {
                identity: self.nodes[node].identity.clone(),
                name: format!("n{node}"),
                relay: false,
                rooms,
                static_peers: Vec::new(),
                clock_offset_ms: 0,
                voice_frame_ms: 20,
                voice_drop_percent: 0,
                newest_hlc,
                joined_invites: Vec::new(),
            },
            disk,
            StdRng::seed_from_u64(seed),
            now,
        );
        let n = &mut self.nodes[node];
        n.engine = Some(engine);
        n.incarnation += 1;
        if let Some(since) = n.down_since.take() {
            n.outages.push((since, self.now));
        }
        self.deliver(node, Input::Start);
        let neighbours = self.nodes[node].neighbours.clone();
        for other in neighbours {
            if self.link_up(node, other) {
                self.connect(node, other);
            }
        }
    }

    fn crash(&mut self, node: usize) {
        let Some(engine) = self.nodes[node].engine.take() else {
            return;
        };
        let disk = engine.into_store();
        // What the node showed but had not stored yet (gossip held for the room's next store
        // transaction, node/src/engine/held.rs) is lost with it, and shown again once sync
        // brings it back: that is not a duplicate. What it had stored must never come again.
        let stored: HashSet<u32> = disk
            .all_messages(&self.lobby.chat_topic)
            .iter()
            .filter_map(|m| self.message_index.get(&m.id.to_hex()).copied())
            .collect();
        let n = &mut self.nodes[node];
        for (index, holds) in n.holds.iter_mut().enumerate() {
            if *holds && !stored.contains(&(index as u32)) {
                *holds = false;
                n.held -= 1;
                self.report.lost_in_crashes += 1;
            }
        }
        n.disk = Some(disk);
        n.incarnation += 1;
        n.down_since = Some(self.now);
        n.timers_pending = 0;
        let neighbours = n.neighbours.clone();
        for other in neighbours {
            if self.nodes[other].engine.is_some() {
                self.disconnect_one(other, node);
            }
        }
    }

    fn connect(&mut self, a: usize, b: usize) {
        for (x, y) in [(a, b), (b, a)] {
            let peer = self.nodes[y].peer;
            self.deliver(
                x,
                Input::Connected {
                    peer,
                    addr: memory_addr(y),
                    first: true,
                },
            );
        }
        for (x, y) in [(a, b), (b, a)] {
            let peer = self.nodes[y].peer;
            let topics = [
                self.lobby.chat_topic.clone(),
                self.lobby.voice_topic.clone(),
            ];
            for topic in topics {
                let topic = topic.as_str().to_owned();
                self.deliver(x, Input::Subscribed { peer, topic });
            }
        }
    }

    fn disconnect_one(&mut self, at: usize, gone: usize) {
        let peer = self.nodes[gone].peer;
        self.deliver(
            at,
            Input::Disconnected {
                peer,
                addr: memory_addr(gone),
                remaining: 0,
            },
        );
    }

    fn split(&mut self) {
        self.partitioned = true;
        for a in 0..self.nodes.len() {
            let cross: Vec<usize> = self.nodes[a]
                .neighbours
                .iter()
                .copied()
                .filter(|&b| self.nodes[b].side != self.nodes[a].side)
                .collect();
            for b in cross {
                if self.nodes[a].engine.is_some() && self.nodes[b].engine.is_some() {
                    self.disconnect_one(a, b);
                }
            }
        }
    }

    fn heal(&mut self) {
        self.partitioned = false;
        self.healed_at = Some(self.now);
        self.heal_sync_bytes_start = self.report.sync_bytes;
        for a in 0..self.nodes.len() {
            let cross: Vec<usize> = self.nodes[a]
                .neighbours
                .iter()
                .copied()
                .filter(|&b| b > a && self.nodes[b].side != self.nodes[a].side)
                .collect();
            for b in cross {
                if self.link_up(a, b) {
                    self.connect(a, b);
                }
            }
        }
        self.check_healed();
    }

    fn check_healed(&mut self) {
        let Some(healed) = self.healed_at else {
            return;
        };
        if self.report.heal_convergence_ms.is_some() {
            return;
        }
        let total = self.messages.len();
        if self.nodes.iter().all(|n| n.held == total) {
            self.report.heal_convergence_ms = Some((self.now - healed).as_secs_f64() * 1e3);
            self.report.heal_sync_bytes = Some(self.report.sync_bytes - self.heal_sync_bytes_start);
        }
    }

    fn sample(&mut self) {
        let mut largest = Footprint::default();
        let mut timers = 0;
        for n in &self.nodes {
            if let Some(engine) = &n.engine {
                let f = engine.footprint();
                largest.rooms = largest.rooms.max(f.rooms);
                largest.peers = largest.peers.max(f.peers);
                largest.names = largest.names.max(f.names);
                largest.seen_ids = largest.seen_ids.max(f.seen_ids);
                largest.sessions = largest.sessions.max(f.sessions);
                largest.sync_states = largest.sync_states.max(f.sync_states);
                largest.waiting_bytes = largest.waiting_bytes.max(f.waiting_bytes);
                largest.mdns_waiting = largest.mdns_waiting.max(f.mdns_waiting);
                timers = timers.max(n.timers_pending);
            }
        }
        self.report
            .footprints
            .push((self.now.as_secs_f64(), largest, timers));
        if let Some(every) = self.config.sample_every {
            self.schedule(every, 0, What::Sample);
        }
    }

    /// Hand one input to a node's engine and carry out what it asks.
    fn deliver(&mut self, node: usize, input: Input) {
        let by_gossip = matches!(input, Input::Gossip { .. });
        let now = self.now_of();
        let Some(engine) = self.nodes[node].engine.as_mut() else {
            return;
        };
        let outputs = engine.handle(input, now);
        for output in outputs {
            self.carry_out(node, output, by_gossip);
        }
    }

    fn carry_out(&mut self, node: usize, output: Output, by_gossip: bool) {
        match output {
            Output::Publish { topic, data } => self.broadcast(node, topic, data),
            Output::Verdict { acceptance, .. } => {
                if matches!(acceptance, libp2p::gossipsub::MessageAcceptance::Reject) {
                    self.report.rejected += 1;
                }
            }
            Output::SyncRequest {
                peer,
                topic,
                request,
            } => {
                self.report.sync_requests += 1;
                self.report.sync_bytes += request.sealed.len() as u64;
                self.trace_line(node, b"sync", request.room.as_bytes());
                let to = self.by_peer.get(&peer).copied();
                match to {
                    Some(to) if self.link_up(node, to) => {
                        let tag = self.next_tag;
                        self.next_tag += 1;
                        let incarnation = self.nodes[node].incarnation;
                        self.replies.insert(tag, (node, incarnation, topic));
                        let after = self.config.link.hop(&mut self.rng);
                        let from = self.nodes[node].peer;
                        self.schedule(
                            after,
                            to,
                            What::Input(Input::SyncRequest {
                                peer: from,
                                reply: tag,
                                request,
                            }),
                        );
                    }
                    _ => self.schedule(
                        Duration::from_secs(1),
                        node,
                        What::Input(Input::SyncFailed { peer, topic }),
                    ),
                }
            }
            Output::SyncResponse { reply, response } => {
                let Some((requester, incarnation, topic)) = self.replies.remove(&reply) else {
                    return;
                };
                self.report.sync_bytes += response.sealed.len() as u64;
                if self.nodes[requester].incarnation != incarnation {
                    return;
                }
                let peer = self.nodes[node].peer;
                let what = if self.link_up(node, requester) {
                    Input::SyncResponse {
                        peer,
                        topic,
                        response,
                    }
                } else {
                    Input::SyncFailed { peer, topic }
                };
                let after = self.config.link.hop(&mut self.rng);
                self.schedule(after, requester, What::Input(what));
            }
            Output::Timer { at, timer } => {
                let after = at.saturating_duration_since(self.base + self.now);
                self.nodes[node].timers_pending += 1;
                self.schedule(after, node, What::Timer(timer));
            }
            Output::Event(event) => self.on_event(node, event, by_gossip),
            // The topology is the simulator's; voice is not simulated.
            Output::Dial { .. }
            | Output::Subscribe(_)
            | Output::Unsubscribe(_)
            | Output::Play { .. }
            | Output::TalkWav { .. }
            // Blind relays are not simulated.
            | Output::BlindRequest { .. }
            | Output::BlindResponse { .. }
            // A simulated store is durable at once: nothing waits for an fsync.
            | Output::AwaitSync { .. } => {}
        }
    }

    fn broadcast(&mut self, from: usize, topic: Topic, data: Vec<u8>) {
        self.gossip_seq += 1;
        let id = GossipId::new(&self.gossip_seq.to_be_bytes());
        let source = self.nodes[from].peer;
        for to in 0..self.nodes.len() {
            if to == from || !self.link_up(from, to) {
                continue;
            }
            let Some(after) = self.config.link.gossip(&mut self.rng) else {
                continue;
            };
            self.report.gossip_bytes += data.len() as u64;
            self.schedule(
                after,
                to,
                What::Input(Input::Gossip {
                    id: id.clone(),
                    from: source,
                    source: Some(source),
                    topic: topic.as_str().to_owned(),
                    data: data.clone(),
                }),
            );
        }
    }

    fn on_event(&mut self, node: usize, event: Event, by_gossip: bool) {
        match event {
            Event::Sent { id, .. } => {
                let index = self.messages.len() as u32;
                self.messages.push(MessageInfo {
                    author: node,
                    sent_at: self.now,
                });
                self.trace_line(node, b"sent", id.as_bytes());
                self.message_index.insert(id, index);
                self.hold(node, index);
            }
            Event::Message { id, .. } => {
                let index = self.message_index.get(&id).copied();
                // The author's own message, which the engine raises for the node's other
                // clients: the simulated client is the one that sent it.
                if index.is_some_and(|i| self.messages[i as usize].author == node) {
                    return;
                }
                self.trace_line(node, b"message", id.as_bytes());
                let Some(index) = index else {
                    return;
                };
                let sent_at = self.messages[index as usize].sent_at;
                if by_gossip && self.now - sent_at <= LIVE_WINDOW {
                    self.nodes[node].live.push(index);
                }
                if self.nodes[node].holds.get(index as usize) == Some(&true) {
                    self.report.duplicates += 1;
                }
                self.hold(node, index);
                self.check_healed();
            }
            _ => {}
        }
    }

    fn hold(&mut self, node: usize, index: u32) {
        let n = &mut self.nodes[node];
        let i = index as usize;
        if n.holds.len() <= i {
            n.holds.resize(i + 1, false);
        }
        if !n.holds[i] {
            n.holds[i] = true;
            n.held += 1;
        }
    }

    fn trace_line(&mut self, node: usize, what: &[u8], bytes: &[u8]) {
        self.trace
            .update(&(self.now.as_micros() as u64).to_le_bytes());
        self.trace.update(&(node as u64).to_le_bytes());
        self.trace.update(what);
        self.trace.update(bytes);
    }

    fn finish(mut self, started: Instant) -> SimReport {
        let total = self.messages.len();
        let n = self.nodes.len();
        // Live delivery, among the members that could have had it live.
        let mut expected = 0u64;
        let mut live = 0u64;
        let mut live_sets: Vec<std::collections::HashSet<u32>> = self
            .nodes
            .iter()
            .map(|n| n.live.iter().copied().collect())
            .collect();
        for (index, message) in self.messages.iter().enumerate() {
            let window = (message.sent_at, message.sent_at + LIVE_WINDOW);
            for (i, node) in self.nodes.iter().enumerate() {
                if i == message.author || !up_throughout(node, window, self.now) {
                    continue;
                }
                if let Some((split, heal)) = self.config.partition {
                    let crosses = node.side != self.nodes[message.author].side;
                    if crosses && window.1 > split && window.0 < heal {
                        continue;
                    }
                }
                expected += 1;
                if live_sets[i].remove(&(index as u32)) {
                    live += 1;
                }
            }
        }
        let held: usize = self.nodes.iter().map(|n| n.held).sum();
        let topic = self.lobby.chat_topic.clone();
        let mut orders = std::collections::HashSet::new();
        for node in &mut self.nodes {
            let store = match (&node.engine, &node.disk) {
                (Some(engine), _) => engine.store().clone(),
                (None, Some(disk)) => disk.clone(),
                (None, None) => MemoryStore::default(),
            };
            let mut order = blake3::Hasher::new();
            for m in store.all_messages(&topic) {
                order.update(&m.id.0);
            }
            orders.insert(*order.finalize().as_bytes());
        }
        self.report.messages = total;
        self.report.delivered_live = if expected == 0 {
            1.0
        } else {
            live as f64 / expected as f64
        };
        self.report.delivered_final = if total == 0 {
            1.0
        } else {
            held as f64 / (total * n) as f64
        };
        self.report.converged = held == total * n && orders.len() == 1;
        self.report.trace_hash = self.trace.finalize().to_hex()[..16].to_owned();
        self.report.simulated_s = self.now.as_secs_f64();
        self.report.wall_s = started.elapsed().as_secs_f64();
        drop(live_sets.drain(..));
        self.report
    }
}

fn up_throughout(node: &SimNode, (from, to): (Duration, Duration), end: Duration) -> bool {
    let down_now = node.down_since.is_some_and(|since| since < to);
    let was_down = node
        .outages
        .iter()
        .any(|&(down, up)| down < to && up > from);
    !down_now && !was_down && to <= end.max(to)
}

fn memory_addr(node: usize) -> Multiaddr {
    format!("/memory/{}", node + 1)
        .parse()
        .expect("a valid memory address")
}
