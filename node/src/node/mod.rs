//! The event loop: moves bytes between the swarm, the pure state ([`RoomBook`], [`Redialer`],
//! [`SeenIds`], room histories and sync sessions) and the client's command and event channels.
//! Room history and `/hark/sync/1` live in [`history`].

mod history;
mod voice;

pub use voice::Control;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use hark_proto::envelope::check_nick;
use hark_proto::{seal, Body, Envelope, HlcClock, MessageId, MessageKind, RoomKey, RoomName};
use libp2p::core::transport::ListenerId;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, PublishError};
use libp2p::multiaddr::Protocol;
use libp2p::pnet::PreSharedKey;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, ListenError, SwarmEvent};
use libp2p::{mdns, Multiaddr, PeerId, Swarm};
use rand::rngs::OsRng;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::api::{Command, Event, PeerInfo};
use crate::config::NodeConfig;
use crate::dialer::Redialer;
use crate::history::RoomHistory;
use crate::netkey::explain_failure;
use crate::rooms::{parse_invite, parse_join_target, JoinError, Room, RoomBook};
use crate::store::{Store, StoreError};
use crate::swarm::{self, Behaviour, BehaviourEvent};
use crate::sync::Sessions;
use crate::validate::{self, Drop, SeenIds};

/// How many recent envelope ids are remembered to drop replays (≈ 2 MB).
const SEEN_IDS: usize = 65_536;
/// At most one typing notice per room this often.
const TYPING_INTERVAL: Duration = Duration::from_secs(2);
/// Presence is re-announced this often, and soon after a peer joins one of our rooms.
const PRESENCE_INTERVAL: Duration = Duration::from_secs(60);
const PRESENCE_SOON: Duration = Duration::from_millis(500);
/// mDNS: only the peer with the smaller id dials, so a pair ends up with one connection;
/// the other dials after this grace period if still unconnected.
const MDNS_DIAL_GRACE: Duration = Duration::from_secs(2);
/// The same connection failure is logged at most this often.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(30);
/// How long after the last new listen address `ready` waits for more.
const READY_SETTLE: Duration = Duration::from_millis(15);
/// Names remembered for authors we hear (many may be behind relays).
const MAX_NAMES: usize = 4_096;
const TICK: Duration = Duration::from_millis(100);
const EVENT_QUEUE: usize = 4_096;
const COMMAND_QUEUE: usize = 1_024;

#[derive(Debug, Error)]
pub enum StartError {
    #[error("invalid name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the network: {0}")]
    Swarm(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("peer address {0} must end in /p2p/PEER_ID")]
    PeerWithoutId(Multiaddr),
    #[error("voice: {0}")]
    Voice(String),
    #[error("cannot join {target:?}: {source}")]
    Join { target: String, source: JoinError },
}

/// The client's end of a running node.
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
    control: mpsc::Sender<Control>,
    task: JoinHandle<()>,
    peer_id: PeerId,
}

impl NodeHandle {
    /// Queue a command. Fails only when the node has stopped.
    pub async fn send(&self, command: Command) -> Result<(), NodeStopped> {
        self.commands.send(command).await.map_err(|_| NodeStopped)
    }

    /// Talk in `room` from `source` (a microphone) until the source ends the spurt.
    pub async fn talk(
        &self,
        room: &str,
        source: Box<dyn crate::voice::AudioSource>,
    ) -> Result<(), NodeStopped> {
        self.control(Control::Talk {
            room: room.to_owned(),
            source,
        })
        .await
    }

    /// Play received voice through `sink` (a speaker).
    pub async fn set_audio_sink(
        &self,
        sink: Box<dyn crate::voice::AudioSink>,
    ) -> Result<(), NodeStopped> {
        self.control(Control::SetSink(sink)).await
    }

    /// Stop or resume playing one peer's voice.
    pub async fn mute(&self, peer: PeerId, muted: bool) -> Result<(), NodeStopped> {
        self.control(Control::Mute { peer, muted }).await
    }

    async fn control(&self, control: Control) -> Result<(), NodeStopped> {
        self.control.send(control).await.map_err(|_| NodeStopped)
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Wait for the node to stop (after [`Command::Quit`]).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

#[derive(Debug, Error)]
#[error("the node has stopped")]
pub struct NodeStopped;

pub struct Node;

impl Node {
    /// Open the store, build the swarm, start listening and spawn the event loop.
    /// The first event on the returned channel is [`Event::Ready`].
    pub async fn start(
        config: NodeConfig,
    ) -> Result<(NodeHandle, mpsc::Receiver<Event>), StartError> {
        check_nick(&config.name).map_err(|reason| StartError::BadName {
            name: config.name.clone(),
            reason,
        })?;
        let store = Store::open(&config.data_dir)?;
        let identity = store.identity()?;
        let peer_id = identity.public().to_peer_id();

        let mut static_peers = Vec::new();
        for addr in &config.peers {
            match addr.iter().last() {
                Some(Protocol::P2p(peer)) => static_peers.push((peer, addr.clone())),
                _ => return Err(StartError::PeerWithoutId(addr.clone())),
            }
        }

        let mut rooms = RoomBook::default();
        let lobby = Room::public(RoomName::parse("lobby").expect("lobby is a valid room name"));
        rooms.insert(lobby).map_err(|source| StartError::Join {
            target: "lobby".into(),
            source,
        })?;
        for stored in store.rooms()? {
            if let Err(e) = rooms.insert(stored.into()) {
                tracing::warn!("skipping a stored room: {e}");
            }
        }
        for target in &config.join {
            let room = parse_join_target(target).map_err(|source| StartError::Join {
                target: target.clone(),
                source,
            })?;
            rooms
                .insert(room.clone())
                .map_err(|source| StartError::Join {
                    target: target.clone(),
                    source,
                })?;
            store.save_room(&room.stored(), now_ms())?;
        }

        let mut clock = HlcClock::default();
        if let Some(newest) = store.newest_hlc()? {
            // Never stamp a new message below one we already hold, even if the wall clock
            // stepped back while the node was down.
            clock.observe(newest, offset_now_ms(config.clock_offset_ms));
        }

        let mut swarm = swarm::build(identity.clone(), config.network_key, config.mdns)
            .map_err(StartError::Swarm)?;
        let listen = if config.listen.is_empty() {
            default_listen(config.network_key.is_some())
        } else {
            config.listen.clone()
        };
        let mut listeners = HashSet::new();
        for addr in listen {
            let id = swarm
                .listen_on(addr.clone())
                .map_err(|e| StartError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
            listeners.insert(id);
        }
        for room in rooms.iter() {
            subscribe(&mut swarm, room);
        }

        voice::check_frame_ms(config.voice_frame_ms).map_err(|e| StartError::Voice(e.detail))?;
        let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (control_tx, control_rx) = mpsc::channel(16);
        let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
        let (voice_out_tx, voice_out_rx) = mpsc::channel(256);
        let receiver = crate::voice::receiver::spawn(config.voice_out.clone(), event_tx.clone());
        let now = Instant::now();
        let mut runtime = Runtime {
            swarm,
            store,
            // A crash may have left some unindexed: look once.
            search_backlog: true,
            rooms,
            seen: SeenIds::new(SEEN_IDS),
            redial: Redialer::default(),
            network_key: config.network_key,
            name: config.name,
            relay: config.relay,
            clock,
            clock_offset_ms: config.clock_offset_ms,
            histories: HashMap::new(),
            sessions: Sessions::default(),
            deps_due: HashMap::new(),
            last_spread: HashMap::new(),
            spread_due: HashMap::new(),
            anti_entropy_due: now + crate::sync::ANTI_ENTROPY_INTERVAL,
            voice_frame_ms: config.voice_frame_ms,
            voice_drop_percent: config.voice_drop_percent,
            voice_out_tx,
            receiver,
            local_peer: peer_id,
            identity,
            events: event_tx,
            pending_events: Vec::new(),
            listeners_pending: listeners,
            listen_addrs: Vec::new(),
            ready: false,
            ready_at: None,
            connected: HashMap::new(),
            names: HashMap::new(),
            last_typing: HashMap::new(),
            presence_due: HashMap::new(),
            mdns_fallback: HashMap::new(),
            failure_logged: HashMap::new(),
            drop_warned: HashSet::new(),
            drops: HashMap::new(),
        };
        for (peer, addr) in static_peers {
            runtime.redial.add(peer, addr, now);
        }
        let names: Vec<RoomName> = runtime.rooms.iter().map(|r| r.name.clone()).collect();
        for name in names {
            runtime.presence_due.insert(name, now + PRESENCE_INTERVAL);
        }
        let task = tokio::spawn(runtime.run(command_rx, control_rx, voice_out_rx));
        Ok((
            NodeHandle {
                commands: command_tx,
                control: control_tx,
                task,
                peer_id,
            },
            event_rx,
        ))
    }
}

fn default_listen(has_network_key: bool) -> Vec<Multiaddr> {
    let mut addrs = vec!["/ip4/0.0.0.0/tcp/0".parse().expect("valid literal address")];
    if !has_network_key {
        addrs.push(
            "/ip4/0.0.0.0/udp/0/quic-v1"
                .parse()
                .expect("valid literal address"),
        );
    }
    addrs
}

/// Subscribe to a room's chat and voice topics.
fn subscribe(swarm: &mut Swarm<Behaviour>, room: &Room) {
    for topic in [&room.chat_topic, &room.voice_topic] {
        let topic = IdentTopic::new(topic.as_str());
        let gossipsub = &mut swarm.behaviour_mut().gossipsub;
        if let Err(e) = gossipsub.subscribe(&topic) {
            tracing::warn!(room = %room.name, "cannot subscribe: {e}");
        }
        if let Err(e) = gossipsub.set_topic_params(topic, swarm::topic_score_params()) {
            tracing::warn!(room = %room.name, "cannot set topic score parameters: {e}");
        }
    }
}

/// A command that could not be carried out; the client gets it as an `error` event.
struct CommandError {
    code: &'static str,
    detail: String,
}

fn fail(code: &'static str, detail: impl Into<String>) -> CommandError {
    CommandError {
        code,
        detail: detail.into(),
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The wall clock as this node sees it: shifted by the test hook's offset.
fn offset_now_ms(offset_ms: i64) -> u64 {
    now_ms().saturating_add_signed(offset_ms)
}

struct Runtime {
    swarm: Swarm<Behaviour>,
    store: Store,
    /// Stored messages may still wait to be indexed for search (done on idle ticks).
    search_backlog: bool,
    rooms: RoomBook,
    seen: SeenIds,
    redial: Redialer,
    network_key: Option<PreSharedKey>,
    name: String,
    /// `hark-node --relay`: keeps every room's history loaded to answer sync at once.
    relay: bool,
    clock: HlcClock,
    clock_offset_ms: i64,
    /// Loaded room histories, by chat topic; a room's is loaded on first use.
    histories: HashMap<String, RoomHistory>,
    sessions: Sessions,
    anti_entropy_due: Instant,
    voice_frame_ms: u8,
    voice_drop_percent: u8,
    /// Talk-spurt threads send their frames here.
    voice_out_tx: mpsc::Sender<crate::voice::sender::Outgoing>,
    /// The playout task.
    receiver: mpsc::Sender<crate::voice::receiver::ReceiverInput>,
    /// Rooms with changes waiting for dependencies: when to check again, and whom to ask.
    deps_due: HashMap<String, (Instant, PeerId)>,
    /// When each room last passed synced news on, and rooms waiting to do so again.
    last_spread: HashMap<String, Instant>,
    spread_due: HashMap<String, Instant>,
    local_peer: PeerId,
    /// Signs our messages' records.
    identity: libp2p::identity::Keypair,
    events: mpsc::Sender<Event>,
    /// Events raised before `ready`, which must come first.
    pending_events: Vec<Event>,
    listeners_pending: HashSet<ListenerId>,
    listen_addrs: Vec<Multiaddr>,
    ready: bool,
    /// When `ready` is due, once every listener has reported an address.
    ready_at: Option<tokio::time::Instant>,
    connected: HashMap<PeerId, Vec<Multiaddr>>,
    /// The last name each peer used; bounded by pruning disconnected peers.
    names: HashMap<PeerId, String>,
    last_typing: HashMap<RoomName, Instant>,
    presence_due: HashMap<RoomName, Instant>,
    mdns_fallback: HashMap<PeerId, (Multiaddr, Instant)>,
    failure_logged: HashMap<String, Instant>,
    drop_warned: HashSet<(PeerId, Drop)>,
    drops: HashMap<Drop, u64>,
}

impl Runtime {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut control: mpsc::Receiver<Control>,
        mut voice_out: mpsc::Receiver<crate::voice::sender::Outgoing>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event).await,
                command = commands.recv() => match command {
                    Some(Command::Quit) | None => break,
                    Some(command) => self.on_command(command).await,
                },
                Some(out) = voice_out.recv() => self.on_voice_out(out).await,
                Some(request) = control.recv() => self.on_control(request).await,
                _ = tick.tick() => self.on_tick(Instant::now()),
                _ = tokio::time::sleep_until(self.ready_at.unwrap_or_else(tokio::time::Instant::now)),
                    if self.ready_at.is_some() && !self.ready => self.send_ready().await,
            }
        }
        tracing::info!(drops = ?self.drops, "node stopped");
    }

    async fn emit(&mut self, event: Event) {
        if !self.ready {
            self.pending_events.push(event);
            return;
        }
        // A client that stopped reading is gone; the node keeps serving the mesh regardless.
        let _ = self.events.send(event).await;
    }

    /// Every listener has an address: `ready` goes out after a short quiet spell, so that a
    /// wildcard listener's other interface addresses (reported one by one) are in it too.
    fn maybe_ready(&mut self) {
        if self.ready || !self.listeners_pending.is_empty() {
            return;
        }
        self.ready_at = Some(tokio::time::Instant::now() + READY_SETTLE);
    }

    async fn send_ready(&mut self) {
        self.ready = true;
        let peer = self.local_peer;
        let listen = self
            .listen_addrs
            .iter()
            .map(|a| a.clone().with(Protocol::P2p(peer)).to_string())
            .collect();
        tracing::info!(peer_id = %peer, "ready");
        let _ = self
            .events
            .send(Event::Ready {
                peer_id: peer.to_string(),
                name: self.name.clone(),
                listen,
            })
            .await;
        for event in std::mem::take(&mut self.pending_events) {
            let _ = self.events.send(event).await;
        }
        if self.relay {
            self.preload_histories();
        }
        // Dial static peers only now, so their events follow `ready`.
        self.on_tick(Instant::now());
    }

    // ----- commands -----

    async fn on_command(&mut self, command: Command) {
        let result = match command {
            Command::Send { room, text } => self.send_message(&room, MessageKind::Text, text).await,
            Command::Me { room, text } => self.send_message(&room, MessageKind::Me, text).await,
            Command::Alert { room, text } => {
                self.send_message(&room, MessageKind::Alert, text).await
            }
            Command::History { room, limit } => self.history_command(&room, limit).await,
            Command::Search { room, text, limit } => self.search(&room, text, limit).await,
            Command::Nick { name } => self.set_nick(name).await,
            Command::Invite { room } => self.invite(&room).await,
            Command::Voice { room, wav } => self.voice_command(&room, wav),
            Command::Typing { room } => self.send_typing(&room),
            Command::Join { room, invite } => match (room, invite) {
                (Some(room), None) => self.join(parse_join_target(&room)).await,
                (None, Some(invite)) => self.join(parse_invite(&invite)).await,
                (None, None) => Err(fail("bad_command", "join needs \"room\" or \"invite\"")),
                (Some(_), Some(_)) => Err(fail(
                    "bad_command",
                    "join takes \"room\" or \"invite\", not both",
                )),
            },
            Command::Create { room } => self.create(&room).await,
            Command::Leave { room } => self.leave(&room).await,
            Command::Peers => {
                let peers = self.peer_list();
                self.emit(Event::Peers { peers }).await;
                Ok(())
            }
            Command::Quit => Ok(()),
        };
        if let Err(CommandError { code, detail }) = result {
            self.emit(Event::error(code, detail)).await;
        }
    }

    fn room(&self, typed: &str) -> Result<Room, CommandError> {
        self.rooms
            .find(typed)
            .cloned()
            .ok_or_else(|| fail("not_joined", format!("not in a room named {typed:?}")))
    }

    fn send_typing(&mut self, room: &str) -> Result<(), CommandError> {
        let room = self.room(room)?;
        let now = Instant::now();
        if self
            .last_typing
            .get(&room.name)
            .is_some_and(|at| now.duration_since(*at) < TYPING_INTERVAL)
        {
            return Ok(());
        }
        self.last_typing.insert(room.name.clone(), now);
        self.publish(&room, MessageId::random(&mut OsRng), Body::Typing)
    }

    /// Seal and publish `body` in `room`. With no room peer reachable nothing is sent: typing
    /// and presence are ephemeral, and history reaches peers by sync when they appear.
    fn publish(&mut self, room: &Room, id: MessageId, body: Body) -> Result<(), CommandError> {
        let envelope = Envelope {
            author: self.local_peer.to_bytes(),
            name: self.name.clone(),
            id,
            sent_at_ms: self.now_ms(),
            body,
        };
        let plain = envelope
            .encode()
            .map_err(|e| fail("too_long", e.to_string()))?;
        let sealed = seal::seal(&room.key, &room.chat_topic, &plain, &mut OsRng);
        let topic = IdentTopic::new(room.chat_topic.as_str());
        match self.swarm.behaviour_mut().gossipsub.publish(topic, sealed) {
            Ok(_) | Err(PublishError::NoPeersSubscribedToTopic) => Ok(()),
            Err(e) => Err(fail(
                "publish_failed",
                format!("cannot send in {}: {e}", room.name),
            )),
        }
    }

    fn now_ms(&self) -> u64 {
        offset_now_ms(self.clock_offset_ms)
    }

    async fn join(&mut self, target: Result<Room, JoinError>) -> Result<(), CommandError> {
        let room = target.map_err(|e| match e {
            JoinError::Invite(e) => fail("bad_invite", e.to_string()),
            e => fail("bad_room", e.to_string()),
        })?;
        self.add_room(room.clone())?;
        self.emit(Event::Joined {
            room: room.name.to_string(),
        })
        .await;
        Ok(())
    }

    async fn create(&mut self, name: &str) -> Result<(), CommandError> {
        let name = RoomName::parse(name).map_err(|e| fail("bad_room", e.to_string()))?;
        if self.rooms.get(&name).is_some() {
            return Err(fail(
                "room_exists",
                format!("already in a room named {name}"),
            ));
        }
        let room = Room::new(name.clone(), RoomKey::random(&mut OsRng), true);
        self.add_room(room)?;
        let invite = self.rooms.invite(&name).unwrap_or_default();
        self.emit(Event::Created {
            room: name.to_string(),
            invite,
        })
        .await;
        self.emit(Event::Joined {
            room: name.to_string(),
        })
        .await;
        Ok(())
    }

    fn add_room(&mut self, room: Room) -> Result<(), CommandError> {
        let added = self
            .rooms
            .insert(room.clone())
            .map_err(|e| fail("room_exists", e.to_string()))?;
        if added {
            if let Err(e) = self.store.save_room(&room.stored(), now_ms()) {
                self.rooms.remove(&room.name);
                return Err(fail("store_failed", e.to_string()));
            }
            subscribe(&mut self.swarm, &room);
            self.sync_new_room(&room);
            self.presence_due
                .insert(room.name.clone(), Instant::now() + PRESENCE_SOON);
        }
        Ok(())
    }

    async fn leave(&mut self, typed: &str) -> Result<(), CommandError> {
        let room = self.room(typed)?;
        self.store
            .forget_room(&room.name)
            .map_err(|e| fail("store_failed", e.to_string()))?;
        self.rooms.remove(&room.name);
        for topic in [&room.chat_topic, &room.voice_topic] {
            let topic = IdentTopic::new(topic.as_str());
            self.swarm.behaviour_mut().gossipsub.unsubscribe(&topic);
        }
        self.histories.remove(room.chat_topic.as_str());
        self.sessions.forget_room(room.chat_topic.as_str());
        self.deps_due.remove(room.chat_topic.as_str());
        self.spread_due.remove(room.chat_topic.as_str());
        self.last_spread.remove(room.chat_topic.as_str());
        self.presence_due.remove(&room.name);
        self.emit(Event::Left {
            room: room.name.to_string(),
        })
        .await;
        Ok(())
    }

    async fn set_nick(&mut self, name: String) -> Result<(), CommandError> {
        check_nick(&name).map_err(|why| fail("bad_name", format!("{name:?}: {why}")))?;
        self.name = name.clone();
        // Tell our rooms at once, so people lists show the new name.
        let rooms: Vec<Room> = self.rooms.iter().cloned().collect();
        for room in rooms {
            let _ = self.publish(&room, MessageId::random(&mut OsRng), Body::Presence);
        }
        self.emit(Event::Nick { name }).await;
        Ok(())
    }

    async fn invite(&mut self, typed: &str) -> Result<(), CommandError> {
        let room = self.room(typed)?;
        let Some(invite) = self.rooms.invite(&room.name) else {
            return Err(fail(
                "public_room",
                format!("{} is public: others join it by name", room.name),
            ));
        };
        self.emit(Event::Invite {
            room: room.name.to_string(),
            invite,
        })
        .await;
        Ok(())
    }

    fn peer_list(&self) -> Vec<PeerInfo> {
        let mut peers: Vec<PeerInfo> = self
            .connected
            .iter()
            .map(|(peer, addrs)| PeerInfo {
                peer_id: peer.to_string(),
                name: self.names.get(peer).cloned().unwrap_or_default(),
                addrs: addrs.iter().map(ToString::to_string).collect(),
                score: self
                    .swarm
                    .behaviour()
                    .gossipsub
                    .peer_score(peer)
                    .unwrap_or(0.0),
            })
            .collect();
        peers.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        peers
    }

    // ----- timers -----

    fn on_tick(&mut self, now: Instant) {
        if !self.ready {
            return;
        }
        if self.search_backlog {
            match self.store.index_for_search(crate::store::SEARCH_BATCH) {
                Ok(indexed) => self.search_backlog = indexed == crate::store::SEARCH_BATCH,
                Err(e) => {
                    // A search indexes what is left before it answers; nothing is lost.
                    tracing::warn!("cannot index messages for search: {e}");
                    self.search_backlog = false;
                }
            }
        }
        for (peer, addr) in self.redial.due(now) {
            self.dial(peer, addr);
        }
        let fallback: Vec<(PeerId, Multiaddr)> = self
            .mdns_fallback
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(peer, (addr, _))| (*peer, addr.clone()))
            .collect();
        for (peer, addr) in fallback {
            self.mdns_fallback.remove(&peer);
            if !self.connected.contains_key(&peer) {
                self.dial(peer, addr);
            }
        }
        let due: Vec<RoomName> = self
            .presence_due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            self.presence_due
                .insert(name.clone(), now + PRESENCE_INTERVAL);
            if let Some(room) = self.rooms.get(&name).cloned() {
                let _ = self.publish(&room, MessageId::random(&mut OsRng), Body::Presence);
            }
        }
        self.sessions.expire(now);
        self.check_waiting(now);
        self.spread_waiting(now);
        if now >= self.anti_entropy_due {
            self.anti_entropy_due = now + crate::sync::ANTI_ENTROPY_INTERVAL;
            self.anti_entropy();
        }
    }

    fn dial(&mut self, peer: PeerId, addr: Multiaddr) {
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![addr])
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            if !matches!(e, DialError::DialPeerConditionFalse(_)) {
                tracing::debug!(%peer, "dial not started: {e}");
                self.redial.on_dial_failed(&peer, Instant::now());
            }
        }
    }

    // ----- swarm events -----

    async fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                tracing::info!(%address, "listening");
                self.listen_addrs.push(address);
                self.listeners_pending.remove(&listener_id);
                if let Some(at) = self.ready_at.as_mut() {
                    *at = tokio::time::Instant::now() + READY_SETTLE;
                }
                self.maybe_ready();
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                addresses,
                reason,
            } => {
                tracing::warn!(?addresses, ?reason, "listener closed");
                self.listeners_pending.remove(&listener_id);
                self.maybe_ready();
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                self.redial.on_connected(&peer_id);
                self.mdns_fallback.remove(&peer_id);
                let addrs = self.connected.entry(peer_id).or_default();
                addrs.push(endpoint.get_remote_address().clone());
                if num_established.get() == 1 {
                    tracing::info!(%peer_id, "peer connected");
                    self.emit(Event::PeerConnected {
                        peer_id: peer_id.to_string(),
                    })
                    .await;
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                if num_established == 0 {
                    self.connected.remove(&peer_id);
                    self.names.remove(&peer_id);
                    self.sessions.forget_peer(&peer_id);
                    for history in self.histories.values_mut() {
                        history.forget_peer(&peer_id);
                    }
                    self.redial.on_disconnected(&peer_id, Instant::now());
                    tracing::info!(%peer_id, "peer disconnected");
                    self.emit(Event::PeerDisconnected {
                        peer_id: peer_id.to_string(),
                    })
                    .await;
                } else if let Some(addrs) = self.connected.get_mut(&peer_id) {
                    let closed = endpoint.get_remote_address();
                    if let Some(pos) = addrs.iter().position(|a| a == closed) {
                        addrs.remove(pos);
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                if let Some(peer) = peer_id {
                    self.redial.on_dial_failed(&peer, Instant::now());
                }
                self.log_dial_error(peer_id, &error);
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                self.log_listen_error(&send_back_addr, &error);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossip(event).await,
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync_event(event).await,
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                let now = Instant::now();
                for (peer, addr) in found {
                    if peer == self.local_peer || self.connected.contains_key(&peer) {
                        continue;
                    }
                    if self.local_peer < peer {
                        self.dial(peer, addr);
                    } else {
                        self.mdns_fallback
                            .entry(peer)
                            .or_insert((addr, now + MDNS_DIAL_GRACE));
                    }
                }
            }
            _ => {}
        }
    }

    fn should_log_failure(&mut self, key: String) -> bool {
        let now = Instant::now();
        if self
            .failure_logged
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < FAILURE_LOG_INTERVAL)
        {
            return false;
        }
        if self.failure_logged.len() > 1_024 {
            self.failure_logged.clear();
        }
        self.failure_logged.insert(key, now);
        true
    }

    fn log_dial_error(&mut self, peer: Option<PeerId>, error: &DialError) {
        match error {
            DialError::Transport(attempts) => {
                for (addr, error) in attempts {
                    if self.should_log_failure(format!("out {addr}")) {
                        let why = explain_failure(error, self.network_key.as_ref());
                        tracing::warn!("cannot connect to {addr}: {why}");
                    }
                }
            }
            DialError::WrongPeerId { obtained, .. } => {
                tracing::warn!(
                    "dialled {peer:?} but reached {obtained}: check the /p2p/ part of --peer"
                );
            }
            other => tracing::debug!(?peer, "dial failed: {other}"),
        }
    }

    fn log_listen_error(&mut self, from: &Multiaddr, error: &ListenError) {
        if !self.should_log_failure(format!("in {from}")) {
            return;
        }
        match error {
            ListenError::Transport(error) => {
                let why = explain_failure(error, self.network_key.as_ref());
                tracing::warn!("connection from {from} failed: {why}");
            }
            other => tracing::debug!("incoming connection from {from} failed: {other}"),
        }
    }

    async fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let Some(room) = self.rooms.by_topic(message.topic.as_str()).cloned() else {
                    match self.rooms.by_voice_topic(message.topic.as_str()).cloned() {
                        Some(room) => self.on_voice_gossip(
                            &room,
                            message.source,
                            &message.data,
                            &message_id,
                            &propagation_source,
                        ),
                        None => {
                            self.report(&message_id, &propagation_source, MessageAcceptance::Ignore)
                        }
                    }
                    return;
                };
                let source = message.source.map(|p| p.to_bytes());
                let checked =
                    validate::check(&room, source.as_deref(), &message.data, &mut self.seen);
                let delivered = match checked {
                    Ok(envelope) => self.deliver(&room, envelope, propagation_source).await,
                    Err(drop) => Err(drop),
                };
                match delivered {
                    Ok(()) => {
                        self.report(&message_id, &propagation_source, MessageAcceptance::Accept);
                    }
                    Err(drop) => {
                        *self.drops.entry(drop).or_default() += 1;
                        let verdict = if drop.penalise() {
                            MessageAcceptance::Reject
                        } else {
                            MessageAcceptance::Ignore
                        };
                        self.report(&message_id, &propagation_source, verdict);
                        if self.drop_warned.len() > 1_024 {
                            self.drop_warned.clear();
                        }
                        if self.drop_warned.insert((propagation_source, drop)) {
                            tracing::warn!(peer = %propagation_source, room = %room.name, reason = drop.as_str(), "dropped a message (further drops of this kind from this peer are counted quietly)");
                        }
                    }
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                let Some(room) = self.rooms.by_topic(topic.as_str()).cloned() else {
                    return;
                };
                tracing::debug!(%peer_id, room = %room.name, "peer joined room");
                // One session per pair: the peer with the smaller id starts it (it is
                // two-way, so both sides catch up). Messages written while alone go out here.
                if self.local_peer < peer_id {
                    self.start_sync(peer_id, &room);
                }
                let soon = Instant::now() + PRESENCE_SOON;
                let due = self.presence_due.entry(room.name.clone()).or_insert(soon);
                *due = (*due).min(soon);
            }
            _ => {}
        }
    }

    fn report(&mut self, id: &gossipsub::MessageId, from: &PeerId, acceptance: MessageAcceptance) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, from, acceptance);
    }

    /// Act on a checked envelope. A history change that does not apply is the sender's fault
    /// and comes back as a drop reason (gossipsub then penalises the sender).
    async fn deliver(
        &mut self,
        room: &Room,
        envelope: Envelope,
        propagation_source: PeerId,
    ) -> Result<(), Drop> {
        let Ok(author) = PeerId::from_bytes(&envelope.author) else {
            return Err(Drop::Malformed);
        };
        // Names of everyone heard (also through relays), for voice and `peers`; bounded.
        if self.names.len() >= MAX_NAMES && !self.names.contains_key(&author) {
            self.names.clear();
        }
        self.names.insert(author, envelope.name.clone());
        let (room_name, from, name) = (room.name.to_string(), author.to_string(), envelope.name);
        let event = match envelope.body {
            Body::Change { shard, change } => {
                return self
                    .on_gossip_change(room, shard, &change, &envelope.author, propagation_source)
                    .await;
            }
            Body::Typing => Event::Typing {
                room: room_name,
                from,
                name,
            },
            Body::Presence => Event::Presence {
                room: room_name,
                from,
                name,
            },
        };
        self.emit(event).await;
        Ok(())
    }
}
