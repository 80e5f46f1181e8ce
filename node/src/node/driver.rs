//! The driver: the thin IO loop around the [`Engine`]. It owns the libp2p swarm, the client's
//! channels, the voice threads and the timers; it turns what happens into [`Input`]s and
//! carries out the engine's [`Output`]s. It decides nothing about Hark itself.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hark_proto::Topic;
use libp2p::core::transport::ListenerId;
use libp2p::gossipsub::{self, IdentTopic, PublishError};
use libp2p::multiaddr::Protocol;
use libp2p::pnet::PreSharedKey;
use libp2p::request_response::{self, Message as RrMessage, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, ListenError, SwarmEvent};
use libp2p::{mdns, Multiaddr, PeerId, Swarm};
use tokio::sync::mpsc;

use super::events::EventSink;
use super::READY_SETTLE;
use crate::api::{Command, Event};
use crate::control::{Answered, ClientId, Filter, Origin, Request, PRIMARY};
use crate::engine::{Engine, Input, Now, Output, TimerQueue};
use crate::netkey::explain_failure;
use crate::store::Store;
use crate::swarm::{self, Behaviour, BehaviourEvent};
use crate::sync::{SyncRequest, SyncResponse};
use crate::voice::receiver::ReceiverInput;
use crate::voice::sender::{self, Outgoing};
use crate::voice::{AudioSink, AudioSource};

mod blind;
mod synced;
mod talks;

pub use synced::Synced;

/// The same connection failure is logged at most this often.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(30);
/// A `lagged` notice that found no room is retried this often.
const LAG_RETRY: Duration = Duration::from_millis(50);

/// Requests from an embedding client that cannot travel as JSON (devices, not files).
pub enum Control {
    /// Talk in a room from this source until it says the spurt is over.
    Talk {
        room: String,
        source: Box<dyn AudioSource>,
    },
    /// Play received voice here.
    SetSink(Box<dyn AudioSink>),
    /// Stop (or resume) playing one peer's voice.
    Mute { peer: PeerId, muted: bool },
    /// The embedding client keys its microphone on `ptt` requests (`hark`): pass them on.
    AcceptPtt,
    /// Make sure messages sent by this run reach a peer: sync with room peers until a session
    /// confirms each (`delivered`). A one-shot `hark-node` asks for this before it exits.
    ConfirmDelivery,
    /// Answer once none of the client's talk-spurts (`voice` commands) is under way:
    /// `hark-node --json` at the end of its input lets them play to the end.
    TalksEnded {
        client: ClientId,
        reply: tokio::sync::oneshot::Sender<()>,
    },
}

/// A client attached to the node (the control socket, `hark-node --json`'s stdin).
struct Client {
    sink: EventSink<Answered>,
    filter: Filter,
}

/// What a driver is made of.
pub struct Parts {
    pub swarm: Swarm<Behaviour>,
    pub engine: Engine<Store>,
    pub events: mpsc::Sender<Event>,
    pub listeners: HashSet<ListenerId>,
    pub network_key: Option<PreSharedKey>,
    pub name: String,
    pub voice_frame_ms: u8,
    pub voice_bitrate: i32,
    pub voice_out: Option<PathBuf>,
    /// The store's fsync thread: each ticket once it is durable (`store/wal_sync.rs`).
    pub synced: mpsc::UnboundedReceiver<Synced>,
}

pub struct Driver {
    swarm: Swarm<Behaviour>,
    engine: Engine<Store>,
    timers: TimerQueue,
    /// The embedding client (`hark`'s UI, `hark-node`'s own output).
    events: EventSink,
    /// Attached clients, each with its own queue and filter.
    clients: HashMap<ClientId, Client>,
    /// The origin of the command being handled: its events answer that client only.
    answering: Option<Origin>,
    /// `ready`, for clients that attach later.
    ready_event: Option<Event>,
    /// Whether the embedding client acts on `ptt`.
    ptt_handler: bool,
    /// Voice events from the playout task.
    voice_events: mpsc::Receiver<Event>,
    /// Events raised before `ready`, which must come first.
    before_ready: Vec<(Event, Option<Origin>)>,
    listeners_pending: HashSet<ListenerId>,
    listen_addrs: Vec<Multiaddr>,
    ready: bool,
    /// When `ready` is due, once every listener has reported an address.
    ready_at: Option<tokio::time::Instant>,
    name: String,
    /// Our peer id as events write it: our own messages are shared differently.
    me: String,
    network_key: Option<PreSharedKey>,
    failure_logged: HashMap<String, Instant>,
    /// Our sync requests in flight: which session each answers.
    requests: HashMap<OutboundRequestId, (PeerId, Topic)>,
    /// Peers' sync requests waiting for the engine's answer.
    replies: HashMap<u64, ResponseChannel<SyncResponse>>,
    next_reply: u64,
    /// How talk-spurts encode (bitrate, and the loss the playout task hears).
    voice_talk: sender::TalkSettings,
    /// Talk-spurt threads send their frames here.
    voice_out_tx: mpsc::Sender<Outgoing>,
    voice_out_rx: mpsc::Receiver<Outgoing>,
    /// The playout task.
    playout: mpsc::Sender<ReceiverInput>,
    /// Voice frames dropped because the playout task was behind.
    playout_overloaded: u64,
    /// Counters for [`Stats`] (read-only: they change nothing the node does).
    counts: super::Stats,
    /// The kind of the message command being handled (`sent` counts it).
    sending_kind: Option<&'static str>,
    /// `/hark/blind/1` requests in flight (`driver/blind.rs`).
    blind: blind::BlindIo,
    /// Sends waiting for the store's fsync (`driver/synced.rs`).
    awaiting_sync: synced::AwaitingSync,
    /// Talk-spurts under way (`driver/talks.rs`).
    talks: talks::Talks,
}

impl Driver {
    pub fn new(parts: Parts) -> Self {
        let (voice_out_tx, voice_out_rx) = mpsc::channel(256);
        let (voice_events_tx, voice_events) = mpsc::channel(1_024);
        let voice_talk = sender::TalkSettings {
            frame_ms: parts.voice_frame_ms,
            bitrate: parts.voice_bitrate,
            loss: crate::voice::loss::LossMeter::default(),
        };
        let playout = crate::voice::receiver::spawn(
            parts.voice_out,
            voice_events_tx,
            voice_talk.loss.clone(),
        );
        let me = parts.swarm.local_peer_id().to_base58();
        let mut driver = Self {
            me,
            swarm: parts.swarm,
            engine: parts.engine,
            timers: TimerQueue::default(),
            events: EventSink::new(parts.events),
            clients: HashMap::new(),
            answering: None,
            ready_event: None,
            ptt_handler: false,
            voice_events,
            before_ready: Vec::new(),
            listeners_pending: parts.listeners,
            listen_addrs: Vec::new(),
            ready: false,
            ready_at: None,
            name: parts.name,
            network_key: parts.network_key,
            failure_logged: HashMap::new(),
            requests: HashMap::new(),
            replies: HashMap::new(),
            next_reply: 0,
            voice_talk,
            voice_out_tx,
            voice_out_rx,
            playout,
            playout_overloaded: 0,
            counts: super::Stats::default(),
            sending_kind: None,
            blind: blind::BlindIo::default(),
            awaiting_sync: synced::AwaitingSync::new(parts.synced),
            talks: talks::Talks::default(),
        };
        let topics: Vec<Topic> = driver
            .engine
            .rooms()
            .flat_map(|room| [room.chat_topic.clone(), room.voice_topic.clone()])
            .collect();
        for topic in topics {
            driver.subscribe(&topic);
        }
        driver
    }

    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Request>,
        mut control: mpsc::Receiver<Control>,
    ) {
        // A `quit` (or every client gone) stops the node once the sends and requests before
        // it are done; nothing asked after it is read.
        let mut quitting = false;
        loop {
            if quitting && self.awaiting_sync.is_idle() {
                self.handle(Input::Stop);
                break;
            }
            let next_timer = self.timers.next_at().map(tokio::time::Instant::from_std);
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                // While a send waits for its fsync, its client's next requests wait too
                // (`driver/synced.rs`); nobody else's, and the network does not wait.
                request = commands.recv(), if !quitting && !self.awaiting_sync.is_full() => {
                    match request {
                        Some(Request::Command { command: Command::Quit, .. }) | None => {
                            quitting = true;
                        }
                        Some(request) => self.take_request(request),
                    }
                }
                synced = self.awaiting_sync.next(), if !self.awaiting_sync.is_empty() => {
                    self.on_synced(synced);
                }
                Some(event) = self.voice_events.recv() => self.emit(event),
                Some(out) = self.voice_out_rx.recv() => self.on_voice_out(out),
                Some(request) = control.recv() => self.on_control(request).await,
                _ = tokio::time::sleep_until(next_timer.unwrap_or_else(tokio::time::Instant::now)),
                    if next_timer.is_some() => self.fire_timers(),
                _ = tokio::time::sleep_until(self.ready_at.unwrap_or_else(tokio::time::Instant::now)),
                    if self.ready_at.is_some() && !self.ready => self.send_ready(),
                _ = tokio::time::sleep(LAG_RETRY), if self.lagging() => {
                    self.events.flush_lag();
                    for client in self.clients.values_mut() {
                        client.sink.flush_lag();
                    }
                }
            }
        }
        tracing::info!(
            drops = ?self.engine.drops(),
            playout_overloaded = self.playout_overloaded,
            "node stopped"
        );
    }

    fn lagging(&self) -> bool {
        self.events.lagging() || self.clients.values().any(|c| c.sink.lagging())
    }

    /// A client's request: commands go to the engine, their events back to the asker.
    fn on_request(&mut self, request: Request) {
        match request {
            Request::Command { origin, command } => {
                self.answering = origin;
                self.sending_kind = match &command {
                    Command::Send { .. } => Some("text"),
                    Command::Me { .. } => Some("me"),
                    Command::Alert { .. } => Some("alert"),
                    _ => None,
                };
                self.handle(Input::Command(command));
                self.sending_kind = None;
                self.answering = None;
            }
            Request::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
            Request::SendAs { origin, send } => {
                self.answering = origin;
                self.sending_kind = Some(send.kind.as_str());
                self.handle(Input::SendAs(send));
                self.sending_kind = None;
                self.answering = None;
            }
            Request::VoiceFrame {
                room,
                from,
                name,
                frame,
            } => {
                let local = ReceiverInput::Frame {
                    room: room.clone(),
                    from,
                    name,
                    frame: frame.clone(),
                };
                if self.playout.try_send(local).is_err() {
                    self.playout_overloaded += 1;
                }
                self.handle(Input::VoiceOut(Outgoing::Frame { room, frame }));
            }
            Request::Subscribe { origin, filter } => {
                let event = Event::Subscribed {
                    rooms: filter.rooms.as_ref().map(sorted),
                    kinds: filter.kinds.as_ref().map(sorted),
                };
                if let Some(client) = self.clients.get_mut(&origin.client) {
                    client.filter = filter;
                }
                self.answer(origin, event);
            }
            Request::Ptt {
                origin,
                room,
                start,
            } => {
                let event = match self.engine.find_room(&room) {
                    None => Event::error("not_joined", format!("not in a room named {room:?}")),
                    Some(_) if !self.ptt_handler => Event::error(
                        "no_microphone",
                        "this node has no microphone: ptt keys a running hark",
                    ),
                    Some(found) => {
                        let event = Event::Ptt {
                            room: found.name.to_string(),
                            action: if start { "start" } else { "stop" }.to_owned(),
                        };
                        self.events.send(event.clone());
                        event
                    }
                };
                self.answer(origin, event);
            }
            Request::Attach {
                client,
                sink,
                filter,
                ..
            } => {
                let mut sink = EventSink::new(sink);
                if let Some(ready) = &self.ready_event {
                    sink.send(Answered::broadcast(ready.clone()));
                }
                self.clients.insert(client, Client { sink, filter });
            }
            Request::Detach { client } => {
                self.clients.remove(&client);
            }
        }
    }

    /// A snapshot of the counters, for the HTTP API.
    fn stats(&self) -> super::Stats {
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let scores: Vec<f64> = self
            .swarm
            .connected_peers()
            .filter_map(|peer| gossipsub.peer_score(peer))
            .collect();
        let footprint = self.engine.footprint();
        super::Stats {
            ready: self.ready,
            peers: self.swarm.connected_peers().count(),
            rooms: self
                .engine
                .rooms()
                .map(|room| (room.name.to_string(), room.private))
                .collect(),
            drops: self
                .engine
                .drops()
                .iter()
                .map(|(reason, n)| (reason.as_str().replace(' ', "_"), *n))
                .collect(),
            sync_sessions: footprint.sessions,
            waiting_bytes: footprint.waiting_bytes,
            unstored_messages: footprint.unstored_messages,
            score_min: scores.iter().copied().reduce(f64::min),
            score_max: scores.iter().copied().reduce(f64::max),
            playout_overloaded: self.playout_overloaded,
            clients: self.clients.len(),
            ..self.counts.clone()
        }
    }

    /// Count what an event tells (for [`Self::stats`]).
    fn count(&mut self, event: &Event) {
        let counts = &mut self.counts;
        match event {
            Event::Message { kind, .. } => {
                *counts.messages_in.entry(kind.clone()).or_default() += 1;
            }
            Event::Sent { .. } => {
                if let Some(kind) = self.sending_kind {
                    *counts.messages_out.entry(kind.to_owned()).or_default() += 1;
                }
            }
            Event::Synced { received, .. } => {
                counts.syncs_completed += 1;
                counts.sync_received += *received as u64;
            }
            Event::VoiceEnd {
                lost,
                recovered,
                concealed,
                ..
            } => {
                counts.voice_spurts += 1;
                counts.voice_frames_lost += u64::from(*lost);
                counts.voice_frames_recovered += u64::from(*recovered);
                counts.voice_frames_concealed += u64::from(*concealed);
            }
            _ => {}
        }
    }

    fn answer(&mut self, origin: Origin, event: Event) {
        self.answering = Some(origin);
        self.emit(event);
        self.answering = None;
    }

    /// Hand an event to the clients: an answer to the client that asked, anything else to the
    /// embedding client and to every attached client that follows it.
    fn deliver(&mut self, event: Event, origin: Option<Origin>) {
        match origin {
            Some(origin) if origin.client != PRIMARY => {
                if let Some(client) = self.clients.get_mut(&origin.client) {
                    client.sink.send(Answered {
                        event,
                        origin: Some(origin),
                    });
                }
            }
            Some(_) => self.events.send(event),
            None => self.share(event, None),
        }
    }

    /// An event for the embedding client and every attached client that follows it, except
    /// `except` (the client whose command made it).
    fn share(&mut self, event: Event, except: Option<ClientId>) {
        self.clients.retain(|_, client| !client.sink.closed());
        for (id, client) in self.clients.iter_mut() {
            if Some(*id) != except && client.filter.passes(&event) {
                client.sink.send(Answered::broadcast(event.clone()));
            }
        }
        if except != Some(PRIMARY) {
            self.events.send(event);
        }
    }

    /// Give the engine one input and carry out what it asks, including the inputs that doing
    /// so produces (a dial that cannot start).
    fn handle(&mut self, input: Input) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            for output in self.engine.handle(input, Now::system()) {
                if let Some(next) = self.carry_out(output) {
                    inputs.push_back(next);
                }
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(timer) = self.timers.pop_due(now) {
            self.handle(Input::Timer(timer));
        }
    }

    fn carry_out(&mut self, output: Output) -> Option<Input> {
        match output {
            Output::Publish { topic, data } => self.publish(&topic, data),
            Output::Verdict {
                id,
                from,
                acceptance,
            } => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &from, acceptance);
            }
            Output::SyncRequest {
                peer,
                topic,
                request,
            } => {
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                self.requests.insert(id, (peer, topic));
            }
            Output::SyncResponse { reply, response } => {
                let sent = self.replies.remove(&reply).map(|channel| {
                    self.swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, response)
                });
                if !matches!(sent, Some(Ok(()))) {
                    tracing::debug!("sync response not sent: connection gone");
                }
            }
            Output::Dial { peer, addr } => return self.dial(peer, addr),
            Output::Subscribe(topic) => self.subscribe(&topic),
            Output::Unsubscribe(topic) => {
                let topic = IdentTopic::new(topic.as_str());
                self.swarm.behaviour_mut().gossipsub.unsubscribe(&topic);
            }
            Output::Event(event) => self.emit(event),
            Output::AwaitSync { ticket } => self.await_sync(ticket),
            Output::Timer { at, timer } => self.timers.set(at, timer),
            Output::Play {
                room,
                from,
                name,
                frame,
            } => {
                let input = ReceiverInput::Frame {
                    room,
                    from,
                    name,
                    frame,
                };
                // A full playout queue means the receiver is far behind: drop, never block.
                if self.playout.try_send(input).is_err() {
                    self.playout_overloaded += 1;
                }
            }
            Output::BlindRequest {
                peer,
                token,
                request,
            } => self.send_blind_request(peer, token, request),
            Output::BlindResponse { reply, response } => {
                self.send_blind_response(reply, response);
            }
            Output::TalkWav { room, wav } => {
                // Its end answers the `voice` command that started it.
                let talk = self.talks.start(self.answering.clone());
                sender::spawn_wav(
                    room,
                    wav,
                    self.voice_talk.clone(),
                    self.voice_out_tx.clone(),
                    talk,
                );
            }
        }
        None
    }

    fn emit(&mut self, event: Event) {
        let event = match event {
            // Only gossipsub knows its scores.
            Event::Peers { mut peers } => {
                let gossipsub = &self.swarm.behaviour().gossipsub;
                for peer in &mut peers {
                    if let Ok(id) = peer.peer_id.parse::<PeerId>() {
                        peer.score = gossipsub.peer_score(&id).unwrap_or(0.0);
                    }
                }
                Event::Peers { peers }
            }
            event => event,
        };
        self.count(&event);
        // A message is news for every client, even when a command made it: a web user's
        // (engine/send_as.rs) goes to all; one of ours goes to every client but the one that
        // sent it, which has its `sent` (a bot on the control socket, and `hark` shows it).
        let origin = match event {
            Event::Message { .. } => {
                // A command without an origin is the embedding client's (NodeHandle::send).
                let asker = self
                    .answering
                    .as_ref()
                    .map_or(PRIMARY, |origin| origin.client);
                let own = matches!(&event, Event::Message { from, .. } if *from == self.me);
                if own && self.ready {
                    self.share(event, Some(asker));
                    return;
                }
                None
            }
            // A kick and the move to a new key are news for every client too (a `hark` whose
            // node was told to kick by `ctl`); the asker gets them as its answer.
            Event::Kicked { .. } | Event::Epoch { .. } if self.ready => {
                if let Some(origin) = self.answering.clone() {
                    self.share(event.clone(), Some(origin.client));
                    Some(origin)
                } else {
                    None
                }
            }
            _ => self.answering.clone(),
        };
        if self.ready {
            self.deliver(event, origin);
        } else {
            self.before_ready.push((event, origin));
        }
    }

    fn publish(&mut self, topic: &Topic, data: Vec<u8>) {
        let gossip_topic = IdentTopic::new(topic.as_str());
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(gossip_topic, data)
        {
            Ok(_) | Err(PublishError::NoPeersSubscribedToTopic) | Err(PublishError::Duplicate) => {}
            Err(e) => {
                tracing::warn!(%topic, "cannot publish: {e}");
                let chat = self.engine.rooms().any(|room| room.chat_topic == *topic);
                if chat {
                    self.emit(Event::error("publish_failed", format!("cannot send: {e}")));
                }
            }
        }
    }

    fn subscribe(&mut self, topic: &Topic) {
        let topic = IdentTopic::new(topic.as_str());
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        if let Err(e) = gossipsub.subscribe(&topic) {
            tracing::warn!("cannot subscribe: {e}");
        }
        if let Err(e) = gossipsub.set_topic_params(topic, swarm::topic_score_params()) {
            tracing::warn!("cannot set topic score parameters: {e}");
        }
    }

    fn dial(&mut self, peer: PeerId, addr: Multiaddr) -> Option<Input> {
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![addr])
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match self.swarm.dial(opts) {
            Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => None,
            Err(e) => {
                tracing::debug!(%peer, "dial not started: {e}");
                Some(Input::DialFailed { peer })
            }
        }
    }

    async fn on_control(&mut self, control: Control) {
        match control {
            Control::Talk { room, source } => match self.engine.find_room(&room) {
                Some(room) => {
                    let room = room.name.to_string();
                    let talk = self.talks.start(None);
                    sender::spawn(
                        room,
                        source,
                        self.voice_talk.clone(),
                        self.voice_out_tx.clone(),
                        talk,
                    );
                }
                None => self.emit(Event::error(
                    "not_joined",
                    format!("not in a room named {room:?}"),
                )),
            },
            Control::SetSink(sink) => {
                let _ = self.playout.send(ReceiverInput::SetSink(sink)).await;
            }
            Control::Mute { peer, muted } => {
                let _ = self.playout.send(ReceiverInput::Mute { peer, muted }).await;
            }
            Control::AcceptPtt => self.ptt_handler = true,
            Control::ConfirmDelivery => self.handle(Input::ConfirmDelivery),
            Control::TalksEnded { client, reply } => self.talks.when_none(client, reply),
        }
    }

    // ----- ready -----

    /// Every listener has an address: `ready` goes out after a short quiet spell, so that a
    /// wildcard listener's other interface addresses (reported one by one) are in it too.
    fn maybe_ready(&mut self) {
        if self.ready || !self.listeners_pending.is_empty() {
            return;
        }
        self.ready_at = Some(tokio::time::Instant::now() + READY_SETTLE);
    }

    fn send_ready(&mut self) {
        self.ready = true;
        let peer = self.engine.peer_id();
        let listen = self
            .listen_addrs
            .iter()
            .map(|a| a.clone().with(Protocol::P2p(peer)).to_string())
            .collect();
        tracing::info!(peer_id = %peer, "ready");
        let ready = Event::Ready {
            peer_id: peer.to_string(),
            name: self.name.clone(),
            listen,
        };
        self.ready_event = Some(ready.clone());
        self.deliver(ready, None);
        for (event, origin) in std::mem::take(&mut self.before_ready) {
            self.deliver(event, origin);
        }
        // Static peers are dialled only now, so their events follow `ready`.
        self.handle(Input::Start);
    }

    // ----- swarm events -----

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
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
            } => self.handle(Input::Connected {
                peer: peer_id,
                addr: endpoint.get_remote_address().clone(),
                first: num_established.get() == 1,
            }),
            SwarmEvent::ConnectionClosed {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                if num_established == 0 {
                    self.requests.retain(|_, (peer, _)| *peer != peer_id);
                }
                self.handle(Input::Disconnected {
                    peer: peer_id,
                    addr: endpoint.get_remote_address().clone(),
                    remaining: num_established,
                });
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                self.log_dial_error(peer_id, &error);
                if let Some(peer) = peer_id {
                    self.handle(Input::DialFailed { peer });
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => self.log_listen_error(&send_back_addr, &error),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Blind(event)) => self.on_blind_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => self.on_identify(event),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                self.handle(Input::Discovered(found));
            }
            _ => {}
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        let input = match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => Input::Gossip {
                id: message_id,
                from: propagation_source,
                source: message.source,
                topic: message.topic.into_string(),
                data: message.data,
            },
            gossipsub::Event::Subscribed { peer_id, topic } => Input::Subscribed {
                peer: peer_id,
                topic: topic.into_string(),
            },
            gossipsub::Event::Unsubscribed { peer_id, topic } => Input::Unsubscribed {
                peer: peer_id,
                topic: topic.into_string(),
            },
            _ => return,
        };
        self.handle(input);
    }

    fn on_sync_event(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                RrMessage::Request {
                    request, channel, ..
                } => {
                    let reply = self.next_reply;
                    self.next_reply += 1;
                    self.replies.insert(reply, channel);
                    self.handle(Input::SyncRequest {
                        peer,
                        reply,
                        request,
                    });
                    // The engine answers at once, or holds its answer back while our own
                    // sends wait for their fsync (it then comes as a later output); a request
                    // it could not answer is not kept.
                    if !self.engine.holds_reply(reply) {
                        self.replies.remove(&reply);
                    }
                }
                RrMessage::Response {
                    request_id,
                    response,
                } => {
                    if let Some((peer, topic)) = self.requests.remove(&request_id) {
                        self.handle(Input::SyncResponse {
                            peer,
                            topic,
                            response,
                        });
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, "sync request failed: {error}");
                if let Some((peer, topic)) = self.requests.remove(&request_id) {
                    self.handle(Input::SyncFailed { peer, topic });
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, "sync request not answered: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    // ----- connection failures, in plain words -----

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
}

fn sorted(set: &HashSet<String>) -> Vec<String> {
    let mut list: Vec<String> = set.iter().cloned().collect();
    list.sort();
    list
}
