//! The engine: everything Hark itself decides, with no IO.
//!
//! [`Engine::handle`] takes one [`Input`] and the time, and returns what to do as
//! [`Output`]s: publish, a gossip verdict, sync requests and responses, dials, subscriptions,
//! client events, timers. The clock comes in as [`Now`]; randomness from a seeded RNG given at
//! construction; durable state through the [`Storage`] port. The same engine runs in the node
//! (driven by `node::driver`, which owns the swarm, SQLite and the client channel) and in the
//! simulator (many engines, a virtual clock, a modelled network).
//!
//! State is one [`RoomState`] per room (by chat [`Topic`]) and one [`PeerState`] per connected
//! peer; leaving a room or losing a peer drops one entry.
//!
//! The rules, by file:
//! - `commands.rs`: the client's commands (send, join, leave, history, …).
//! - `gossip.rs`: a message received on a room's chat topic: verdict, delivery.
//! - `history.rs`: loading, storing and showing history (the [`Storage`] port).
//! - `sync.rs`: `/hark/sync/1` sessions, both sides; anti-entropy, onward spread, dependencies.
//! - `peers.rs`: connections, subscriptions, discovery, redial, presence.
//! - `voice.rs`: voice frames in (checked, to playout) and out (sealed, published).
//! - `identities.rs`: safety numbers, verified marks, names claimed by more than one key.
//! - `delivery.rs`: which peers hold our messages (`delivered`), room members, chasing.
//! - `direct.rs`: direct-message rooms `@PEER` (keys from both identities), opened on use.
//! - `send_as.rs`: a message signed by an identity the node holds for a web user.
//! - `membership.rs`: private rooms' owner, admins, kicks and key epochs.
//! - `blind.rs`: blind relays (`/hark/blind/1`): the relay's side, and a member storing its
//!   sealed messages there and fetching what is held for its rooms and DMs.

mod blind;
mod commands;
mod delivery;
mod direct;
mod gossip;
mod held;
mod history;
mod identities;
mod index_check;
mod membership;
mod peers;
mod room_state;
mod send_as;
pub mod storage;
mod sync;
pub mod timers;
mod unsynced;
mod voice;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hark_proto::blind::{BlindRequest, BlindResponse};
use hark_proto::{HlcClock, Topic, VoiceFrame};
use libp2p::gossipsub::{MessageAcceptance, MessageId as GossipId};
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use rand::rngs::StdRng;
use rand::Rng;

use crate::api::{Command, Event};
use crate::dialer::Redialer;
use crate::rooms::{Room, RoomBook};
use crate::sync::{SyncRequest, SyncResponse};
use crate::validate::{Drop, SeenIds};
use crate::voice::sender::Outgoing;

pub use blind::{BlindPort, BLIND_EVERY};
pub use room_state::{PeerState, RoomState};
pub use send_as::SendAs;
pub use storage::{MemoryStore, Storage};
pub use timers::{Timer, TimerQueue};
pub use voice::frame_ms_supported;

/// How many recent envelope ids are remembered to drop replays (≈ 2 MB).
const SEEN_IDS: usize = 65_536;
/// Names remembered for authors we hear (many may be behind relays).
const MAX_NAMES: usize = 4_096;

/// The time, as the engine sees it: a monotonic instant for timers, and the wall clock for
/// message timestamps (HLC).
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub at: Instant,
    pub wall_ms: u64,
}

impl Now {
    /// The real clocks.
    pub fn system() -> Self {
        Self {
            at: Instant::now(),
            wall_ms: crate::clock::wall_ms(),
        }
    }
}

/// What the engine is told.
#[derive(Debug)]
pub enum Input {
    /// The node is listening and `ready` is out: dial static peers, start the timers.
    Start,
    /// The node is stopping: store what is held in memory.
    Stop,
    Command(Command),
    /// A connection to `peer` is up; `first` when it is the only one.
    Connected {
        peer: PeerId,
        addr: Multiaddr,
        first: bool,
    },
    /// A connection closed; `remaining` are still open.
    Disconnected {
        peer: PeerId,
        addr: Multiaddr,
        remaining: u32,
    },
    /// A dial of `peer` failed.
    DialFailed {
        peer: PeerId,
    },
    /// mDNS found peers.
    Discovered(Vec<(PeerId, Multiaddr)>),
    /// A peer subscribed to / unsubscribed from a gossipsub topic.
    Subscribed {
        peer: PeerId,
        topic: String,
    },
    Unsubscribed {
        peer: PeerId,
        topic: String,
    },
    /// Gossipsub handed over a message for validation: `from` is the peer that forwarded it,
    /// `source` the signed author.
    Gossip {
        id: GossipId,
        from: PeerId,
        source: Option<PeerId>,
        topic: String,
        data: Vec<u8>,
    },
    /// A sync request from `peer`; the answer goes out as [`Output::SyncResponse`] with `reply`.
    SyncRequest {
        peer: PeerId,
        reply: u64,
        request: SyncRequest,
    },
    /// The answer to our sync request to `peer` for the room `topic`.
    SyncResponse {
        peer: PeerId,
        topic: Topic,
        response: SyncResponse,
    },
    /// Our sync request to `peer` for `topic` failed (timeout, connection gone).
    SyncFailed {
        peer: PeerId,
        topic: Topic,
    },
    /// A talk-spurt produced a frame, finished or failed.
    VoiceOut(Outgoing),
    Timer(Timer),
    /// The client must know that its messages reached a peer (a one-shot sender): sync with
    /// room peers until each message this run sent is confirmed by [`Event::Delivered`].
    ConfirmDelivery,
    /// A message from an identity this node speaks for (a web user, `send_as.rs`).
    SendAs(Box<SendAs>),
    /// Identify says `peer` serves `/hark/blind/1` (a blind relay).
    BlindRelay {
        peer: PeerId,
    },
    /// A `/hark/blind/1` request from `peer`; answered by [`Output::BlindResponse`] with `reply`.
    BlindRequest {
        peer: PeerId,
        reply: u64,
        request: BlindRequest,
    },
    /// The answer to our [`Output::BlindRequest`] `token`.
    BlindResponse {
        peer: PeerId,
        token: u64,
        response: BlindResponse,
    },
    /// Our blind request `token` to `peer` failed.
    BlindFailed {
        peer: PeerId,
        token: u64,
    },
    /// The store's fsync asked for with `ticket` ([`Output::AwaitSync`]) is done, or failed.
    Synced {
        ticket: u64,
        result: Result<(), String>,
    },
}

/// What the engine asks for, in the order it should happen.
#[derive(Debug)]
pub enum Output {
    /// Publish sealed bytes on a gossipsub topic (signed by the swarm).
    Publish {
        topic: Topic,
        data: Vec<u8>,
    },
    /// The verdict on a gossip message (gossipsub forwards, drops, or penalises).
    Verdict {
        id: GossipId,
        from: PeerId,
        acceptance: MessageAcceptance,
    },
    /// Send a sync request; its answer comes back as [`Input::SyncResponse`] for `topic`.
    SyncRequest {
        peer: PeerId,
        topic: Topic,
        request: SyncRequest,
    },
    SyncResponse {
        reply: u64,
        response: SyncResponse,
    },
    Dial {
        peer: PeerId,
        addr: Multiaddr,
    },
    Subscribe(Topic),
    Unsubscribe(Topic),
    /// An event for the client.
    Event(Event),
    /// Wake the engine with `timer` at `at`.
    Timer {
        at: Instant,
        timer: Timer,
    },
    /// A checked voice frame for the playout task.
    Play {
        room: String,
        from: PeerId,
        name: String,
        frame: VoiceFrame,
    },
    /// Play a WAV file into a room as one talk-spurt (a `voice` command).
    TalkWav {
        room: String,
        wav: PathBuf,
    },
    /// Send a `/hark/blind/1` request; its answer comes back as [`Input::BlindResponse`].
    BlindRequest {
        peer: PeerId,
        token: u64,
        request: BlindRequest,
    },
    BlindResponse {
        reply: u64,
        response: BlindResponse,
    },
    /// A message of ours waits for the store's fsync `ticket`: hand the engine
    /// [`Input::Synced`] when it is done, with the client context of the command that sent it.
    AwaitSync {
        ticket: u64,
    },
}

/// What an engine is started with.
pub struct EngineConfig {
    pub identity: Keypair,
    pub name: String,
    /// Keeps every room's history loaded to answer sync at once (`--relay`).
    pub relay: bool,
    pub rooms: RoomBook,
    pub static_peers: Vec<(PeerId, Multiaddr)>,
    /// Test hook: shift the wall clock by this much.
    pub clock_offset_ms: i64,
    pub voice_frame_ms: u8,
    /// Test hook: drop this share of received voice frames.
    pub voice_drop_percent: u8,
    /// The clock starts past this (the newest stored message).
    pub newest_hlc: Option<hark_proto::Hlc>,
    /// Private rooms joined from the command line or the config file (already in `rooms`),
    /// with the invite text: at start the node becomes a member as a `join` command would.
    pub joined_invites: Vec<(hark_proto::RoomName, String)>,
}

#[cfg(test)]
impl EngineConfig {
    /// Engine number `seed` of a test: its identity and name (`n{seed}`) come from the seed;
    /// no rooms, no peers, 20 ms voice frames.
    pub(crate) fn for_test(seed: u8) -> Self {
        Self {
            identity: Keypair::ed25519_from_bytes([seed; 32]).expect("32 bytes make a key"),
            name: format!("n{seed}"),
            relay: false,
            rooms: RoomBook::default(),
            static_peers: Vec::new(),
            clock_offset_ms: 0,
            voice_frame_ms: 20,
            voice_drop_percent: 0,
            newest_hlc: None,
            joined_invites: Vec::new(),
        }
    }
}

pub struct Engine<S> {
    me: PeerId,
    identity: Keypair,
    name: String,
    relay: bool,
    store: S,
    rng: StdRng,
    clock: HlcClock,
    clock_offset_ms: i64,
    voice_frame_ms: u8,
    voice_drop_percent: u8,
    /// Name ↔ key ↔ topic of every joined room.
    book: RoomBook,
    rooms: HashMap<Topic, RoomState>,
    peers: HashMap<PeerId, PeerState>,
    /// Names of everyone heard, also through relays (voice, `peers`); bounded.
    names: HashMap<PeerId, String>,
    /// Peer ids as text (base58), by their bytes: every event names its author, and encoding
    /// one costs more than opening the message. Bounded like `names`.
    peer_texts: HashMap<Vec<u8>, String>,
    /// Peers the user marked verified (kept in the store).
    verified: identities::Verified,
    /// Owner, admins and key epochs of private rooms (`membership.rs`).
    members: membership::Members,
    /// DM rooms we listen on for connected peers, until one side uses them.
    listening: direct::Listening,
    seen: SeenIds,
    redial: Redialer,
    /// mDNS peers we leave to dial us first, and when we dial them anyway.
    mdns_waiting: HashMap<PeerId, (Multiaddr, Instant)>,
    started: bool,
    /// [`EngineConfig::joined_invites`], until start.
    joined_invites: Vec<(hark_proto::RoomName, String)>,
    /// Stored messages may still wait to be indexed for search (done while idle).
    search_backlog: bool,
    drops: HashMap<Drop, u64>,
    drop_warned: HashSet<(PeerId, Drop)>,
    /// Messages of ours stored so far this run (a sequence, to compare with sessions' starts).
    stored_seq: u64,
    /// Who holds our messages, and who is in each room (`delivery.rs`).
    delivery: delivery::Delivery,
    /// Blind relays: ours (as a relay) and the ones we use (`blind.rs`).
    blind: blind::Blind,
    /// Our messages committed and waiting for their fsync (`unsynced.rs`).
    unsynced: unsynced::Unsynced,
    /// Outputs of the input being handled.
    out: Vec<Output>,
    now: Now,
    /// This node's own instants, one [`held::SAVE_HELD_EVERY`] apart, at which held messages
    /// are stored (held.rs): a random phase, so that nodes sharing a machine do not all save
    /// at once.
    save_grid: Instant,
}

impl<S: Storage> Engine<S> {
    pub fn new(config: EngineConfig, store: S, mut rng: StdRng, now: Now) -> Self {
        let me = config.identity.public().to_peer_id();
        let mut clock = HlcClock::default();
        if let Some(newest) = config.newest_hlc {
            // Never stamp a new message below one we already hold, even if the wall clock
            // stepped back while the node was down.
            clock.observe(
                newest,
                now.wall_ms.saturating_add_signed(config.clock_offset_ms),
            );
        }
        let mut redial = Redialer::default();
        for (peer, addr) in config.static_peers {
            redial.add(peer, addr, now.at);
        }
        let rooms = config
            .rooms
            .iter()
            .map(|room| (room.chat_topic.clone(), RoomState::new(room.clone())))
            .collect();
        let save_grid = now.at + held::SAVE_HELD_EVERY.mul_f64(rng.gen_range(0.0..1.0));
        let mut engine = Self {
            me,
            identity: config.identity,
            name: config.name,
            relay: config.relay,
            store,
            rng,
            clock,
            clock_offset_ms: config.clock_offset_ms,
            voice_frame_ms: config.voice_frame_ms,
            voice_drop_percent: config.voice_drop_percent,
            book: config.rooms,
            rooms,
            peers: HashMap::new(),
            names: HashMap::new(),
            peer_texts: HashMap::new(),
            verified: identities::Verified::default(),
            members: membership::Members::default(),
            listening: direct::Listening::default(),
            seen: SeenIds::new(SEEN_IDS),
            redial,
            mdns_waiting: HashMap::new(),
            started: false,
            joined_invites: config.joined_invites,
            // A crash may have left some unindexed: look once.
            search_backlog: true,
            drops: HashMap::new(),
            drop_warned: HashSet::new(),
            stored_seq: 0,
            unsynced: unsynced::Unsynced::default(),
            delivery: delivery::Delivery::default(),
            blind: blind::Blind::default(),
            out: Vec::new(),
            now,
            save_grid,
        };
        engine.restore_members();
        engine
    }

    /// Handle one input at `now`; returns what to do, in order.
    pub fn handle(&mut self, input: Input, now: Now) -> Vec<Output> {
        self.now = now;
        self.hear_lost_writes();
        self.wake_direct(&input);
        self.watch_blind(&input);
        match input {
            Input::Start => self.start(),
            Input::Stop => self.save_all_held(),
            Input::Command(command) => self.on_command(command),
            Input::Connected { peer, addr, first } => self.on_connected(peer, addr, first),
            Input::Disconnected {
                peer,
                addr,
                remaining,
            } => self.on_disconnected(peer, addr, remaining),
            Input::DialFailed { peer } => self.on_dial_failed(peer),
            Input::Discovered(found) => self.on_discovered(found),
            Input::Subscribed { peer, topic } => self.on_subscribed(peer, &topic),
            Input::Unsubscribed { peer, topic } => self.on_unsubscribed(peer, &topic),
            Input::Gossip {
                id,
                from,
                source,
                topic,
                data,
            } => self.on_gossip(id, from, source, &topic, &data),
            Input::SyncRequest {
                peer,
                reply,
                request,
            } => {
                let response = self.answer_sync(peer, request);
                self.out.push(Output::SyncResponse { reply, response });
            }
            Input::SyncResponse {
                peer,
                topic,
                response,
            } => self.on_sync_response(peer, &topic, response),
            Input::SyncFailed { peer, topic } => self.on_sync_failed(peer, &topic),
            Input::VoiceOut(out) => self.on_voice_out(out),
            Input::Timer(timer) => self.on_timer(timer),
            Input::ConfirmDelivery => self.confirm_delivery(),
            Input::SendAs(send) => self.on_send_as(send),
            Input::BlindRelay { peer } => self.on_blind_relay(peer),
            Input::BlindRequest {
                peer,
                reply,
                request,
            } => {
                let response = self.answer_blind(peer, request);
                self.out.push(Output::BlindResponse { reply, response });
            }
            Input::BlindResponse {
                peer,
                token,
                response,
            } => self.on_blind_response(peer, token, response),
            Input::BlindFailed { peer, token } => self.on_blind_failed(peer, token),
            Input::Synced { ticket, result } => self.on_synced(ticket, result),
        }
        self.hold_back_sync();
        std::mem::take(&mut self.out)
    }

    pub fn peer_id(&self) -> PeerId {
        self.me
    }

    /// The joined room a user typed (`ops`, `#ops`).
    pub fn find_room(&self, typed: &str) -> Option<&Room> {
        self.book.find(typed)
    }

    pub fn rooms(&self) -> impl Iterator<Item = &Room> {
        self.book.iter()
    }

    /// Gossip messages dropped, by reason.
    pub fn drops(&self) -> &HashMap<Drop, u64> {
        &self.drops
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Give back the store (a simulated crash keeps it for the restart).
    pub fn into_store(self) -> S {
        self.store
    }

    /// How much the engine holds, for soak tests: entries in its bounded tables.
    pub fn footprint(&self) -> Footprint {
        Footprint {
            rooms: self.rooms.len(),
            peers: self.peers.len(),
            names: self.names.len(),
            seen_ids: self.seen.len(),
            sessions: self.rooms.values().map(RoomState::session_count).sum(),
            sync_states: self
                .rooms
                .values()
                .filter_map(|r| r.history.as_ref())
                .map(crate::history::RoomHistory::sync_state_count)
                .sum(),
            waiting_bytes: self
                .rooms
                .values()
                .filter_map(|r| r.history.as_ref())
                .map(crate::history::RoomHistory::waiting_bytes)
                .sum(),
            mdns_waiting: self.mdns_waiting.len(),
            unstored_messages: self.rooms.values().map(|r| r.held.count()).sum(),
        }
    }

    // ----- helpers for the rule files -----

    /// A peer id's text (base58) from its bytes, remembered; empty for bytes that are no id.
    fn peer_text(&mut self, bytes: &[u8]) -> String {
        if let Some(text) = self.peer_texts.get(bytes) {
            return text.clone();
        }
        let text = PeerId::from_bytes(bytes)
            .map(|p| p.to_string())
            .unwrap_or_default();
        if self.peer_texts.len() >= MAX_NAMES {
            self.peer_texts.clear();
        }
        self.peer_texts.insert(bytes.to_vec(), text.clone());
        text
    }

    fn emit(&mut self, event: Event) {
        self.out.push(Output::Event(event));
    }

    fn set_timer(&mut self, after: Duration, timer: Timer) {
        self.out.push(Output::Timer {
            at: self.now.at + after,
            timer,
        });
    }

    /// The wall clock as this node sees it (shifted by the test hook's offset).
    fn wall_ms(&self) -> u64 {
        self.now.wall_ms.saturating_add_signed(self.clock_offset_ms)
    }

    fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Redial => self.redial_due(),
            Timer::MdnsFallback(peer) => self.mdns_fallback(peer),
            Timer::Presence(topic) => self.presence_due(&topic),
            Timer::Dependencies(topic) => self.check_waiting(&topic),
            Timer::Spread(topic) => self.spread_due(&topic),
            Timer::AntiEntropy => self.anti_entropy(),
            Timer::SessionTimeout(topic, peer) => self.session_timeout(&topic, peer),
            Timer::SearchIndex => self.index_for_search(),
            Timer::Deliver => self.chase_due(),
            Timer::Blind => self.blind_due(),
            Timer::SaveHeld(topic) => self.save_held_due(&topic),
        }
    }

    fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        if self.relay {
            self.preload_histories();
        }
        self.set_timer(crate::sync::ANTI_ENTROPY_INTERVAL, Timer::AntiEntropy);
        self.restore_own();
        self.subscribe_retired();
        for (name, invite) in std::mem::take(&mut self.joined_invites) {
            if let Some(room) = self.book.get(&name).cloned() {
                self.members_joined(&room, &invite);
            }
        }
        let topics: Vec<Topic> = self.rooms.keys().cloned().collect();
        for topic in topics {
            let interval = self.presence_interval();
            self.schedule_presence(&topic, interval);
        }
        self.redial_due();
        if self.search_backlog {
            self.set_timer(Duration::ZERO, Timer::SearchIndex);
        }
    }
}

/// Sizes of an engine's bounded tables (soak tests check that they stay flat).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    pub rooms: usize,
    pub peers: usize,
    pub names: usize,
    pub seen_ids: usize,
    pub sessions: usize,
    pub sync_states: usize,
    pub waiting_bytes: usize,
    pub mdns_waiting: usize,
    /// Gossip messages shown but not stored yet (held for their batch, `held.rs`).
    pub unstored_messages: usize,
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

#[cfg(test)]
mod delivery_tests;
#[cfg(test)]
mod refusals_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod unsynced_tests;
#[cfg(test)]
mod waiting_tests;
