//! The node: [`Node::start`] opens the store, builds the swarm and the [`Engine`], and spawns
//! the [`driver`] that runs them; [`NodeHandle`] is the client's end.

mod driver;
mod events;
mod stats;

use std::collections::HashSet;
use std::time::Duration;

use hark_proto::envelope::check_own_nick;
use hark_proto::RoomName;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use rand::rngs::StdRng;
use rand::SeedableRng;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::api::{Command, Event};
use crate::config::NodeConfig;
use crate::control::{Answered, ClientId, Filter, Request};
use crate::engine::{Engine, EngineConfig, Now};
use crate::rooms::{parse_join_target, JoinError, Room, RoomBook};
use crate::store::{Store, StoreError};
use crate::swarm;
use crate::voice::{AudioSink, AudioSource};

pub use driver::Control;
pub use stats::Stats;

/// Events waiting for the client, at most (a 100k-message catch-up fits). Past this the client
/// misses events and is told so with `lagged`; the node never waits for it.
pub const EVENT_QUEUE: usize = 131_072;
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
    link: ClientLink,
    control: mpsc::Sender<Control>,
    task: JoinHandle<()>,
    peer_id: PeerId,
}

/// A way in for further clients (the control socket, `hark-node --json`'s stdin): attach one
/// with its own queue of events, and send requests that carry their origin.
#[derive(Clone)]
pub struct ClientLink {
    requests: mpsc::Sender<Request>,
    next_client: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// An attached client's end: its id (for the origin of its requests) and its events.
pub struct Attached {
    pub client: ClientId,
    pub events: mpsc::Receiver<Answered>,
}

impl ClientLink {
    /// Attach a new client that follows events per `filter`; `ready` is its first event.
    /// Its answers come in the order it asked.
    pub async fn attach(&self, filter: Filter) -> Result<Attached, NodeStopped> {
        self.attach_as(filter, true).await
    }

    /// Attach a client whose requests each wait for their own answer, matched by `id` (the
    /// HTTP API, many users at once): none of them waits for another's `sent`.
    pub async fn attach_unordered(&self, filter: Filter) -> Result<Attached, NodeStopped> {
        self.attach_as(filter, false).await
    }

    async fn attach_as(&self, filter: Filter, ordered: bool) -> Result<Attached, NodeStopped> {
        let client = self
            .next_client
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (sink, events) = mpsc::channel(EVENT_QUEUE);
        self.request(Request::Attach {
            client,
            sink,
            filter,
            ordered,
        })
        .await?;
        Ok(Attached { client, events })
    }

    pub async fn request(&self, request: Request) -> Result<(), NodeStopped> {
        self.requests.send(request).await.map_err(|_| NodeStopped)
    }

    /// A client going away (best effort: the node also notices a dropped queue).
    pub fn detach(&self, client: ClientId) {
        let _ = self.requests.try_send(Request::Detach { client });
    }

    /// A snapshot of the node's counters.
    pub async fn stats(&self) -> Result<Stats, NodeStopped> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.request(Request::Stats { reply }).await?;
        answer.await.map_err(|_| NodeStopped)
    }

    /// Resolves when the node has stopped.
    pub async fn stopped(&self) {
        self.requests.closed().await;
    }

    /// A link with no node behind it, for tests of a client's side: the requests it sends.
    #[cfg(test)]
    pub(crate) fn unattached() -> (Self, mpsc::Receiver<Request>) {
        let (requests, sent) = mpsc::channel(COMMAND_QUEUE);
        let link = Self {
            requests,
            next_client: Default::default(),
        };
        (link, sent)
    }
}

impl NodeHandle {
    /// Queue a command. Fails only when the node has stopped.
    pub async fn send(&self, command: Command) -> Result<(), NodeStopped> {
        self.link
            .request(Request::Command {
                origin: None,
                command,
            })
            .await
    }

    /// The way in for further clients.
    pub fn link(&self) -> ClientLink {
        self.link.clone()
    }

    /// This client keys a microphone on `ptt` requests from other clients (it gets them as
    /// [`Event::Ptt`]); without this, `ptt` is answered with an error.
    pub async fn accept_ptt(&self) -> Result<(), NodeStopped> {
        self.control(Control::AcceptPtt).await
    }

    /// Sync with room peers until each message this run sent is confirmed held by one
    /// ([`Event::Delivered`]).
    pub async fn confirm_delivery(&self) -> Result<(), NodeStopped> {
        self.control(Control::ConfirmDelivery).await
    }

    /// Wait until none of `client`'s talk-spurts is under way (each `voice` command's WAV
    /// has played to the end).
    pub async fn talks_ended(&self, client: ClientId) -> Result<(), NodeStopped> {
        let (reply, ended) = tokio::sync::oneshot::channel();
        self.control(Control::TalksEnded { client, reply }).await?;
        ended.await.map_err(|_| NodeStopped)
    }

    /// Talk in `room` from `source` (a microphone) until the source ends the spurt.
    pub async fn talk(&self, room: &str, source: Box<dyn AudioSource>) -> Result<(), NodeStopped> {
        self.control(Control::Talk {
            room: room.to_owned(),
            source,
        })
        .await
    }

    /// Play received voice through `sink` (a speaker).
    pub async fn set_audio_sink(&self, sink: Box<dyn AudioSink>) -> Result<(), NodeStopped> {
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
    /// Open the store, build the swarm and the engine, start listening and spawn the driver.
    /// The first event on the returned channel is [`Event::Ready`].
    pub async fn start(
        config: NodeConfig,
    ) -> Result<(NodeHandle, mpsc::Receiver<Event>), StartError> {
        check_own_nick(&config.name).map_err(|reason| StartError::BadName {
            name: config.name.clone(),
            reason,
        })?;
        if !crate::engine::frame_ms_supported(config.voice_frame_ms) {
            return Err(StartError::Voice("voice frames are 10 or 20 ms".into()));
        }
        let mut store = Store::open(&config.data_dir)?;
        let (synced_tx, synced) = mpsc::unbounded_channel();
        let slow_disk = Duration::from_millis(config.fsync_delay_ms);
        store.sync_off_thread(Box::new(move |ticket, result| {
            // (The test hook: a slow disk holds up the fsync thread, never the event loop.)
            if !slow_disk.is_zero() {
                std::thread::sleep(slow_disk);
            }
            // The driver gone means the node is stopping: nobody waits for the answer.
            let _ = synced_tx.send((ticket, result));
        }))?;
        let identity = store.identity()?;
        let peer_id = identity.public().to_peer_id();

        let mut static_peers = Vec::new();
        for addr in &config.peers {
            match addr.iter().last() {
                Some(Protocol::P2p(peer)) => static_peers.push((peer, addr.clone())),
                _ => return Err(StartError::PeerWithoutId(addr.clone())),
            }
        }
        let (rooms, joined_invites) = room_book(&config, &mut store)?;
        let newest_hlc = store.newest_hlc()?;

        let transport = if config.memory_transport {
            swarm::Transports::Memory
        } else {
            swarm::Transports::Network(config.network_key)
        };
        let mut swarm = swarm::build_with(identity.clone(), transport, config.mdns, config.relay)
            .map_err(StartError::Swarm)?;
        let listen = if config.listen.is_empty() {
            default_listen(config.network_key.is_some(), config.memory_transport)
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

        // Peers met (every node), and what a `--relay` keeps for rooms it cannot open.
        let blind = crate::store::blind::BlindDb::open(
            &config.data_dir,
            crate::store::blind::Bounds::default(),
        )?;
        let mut engine = Engine::new(
            EngineConfig {
                identity,
                name: config.name.clone(),
                relay: config.relay,
                rooms,
                static_peers,
                clock_offset_ms: config.clock_offset_ms,
                voice_frame_ms: config.voice_frame_ms,
                voice_drop_percent: config.voice_drop_percent,
                newest_hlc,
                joined_invites,
            },
            store,
            // A CSPRNG seeded from the OS: message ids, nonces and room keys come from it.
            StdRng::from_entropy(),
            Now::system(),
        );
        if config.relay {
            let b = blind.bounds();
            tracing::info!(
                per_sender_topic = b.per_sender_topic,
                per_sender = b.per_sender,
                per_topic = b.per_topic,
                total = b.total,
                max_age_days = b.max_age_ms / 86_400_000,
                "blind relay: keeping the sealed messages of rooms this node is not in (blind.db)"
            );
        }
        engine.set_blind_store(Box::new(blind));
        let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (control_tx, control_rx) = mpsc::channel(16);
        let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
        let driver = driver::Driver::new(driver::Parts {
            swarm,
            engine,
            events: event_tx,
            listeners,
            network_key: config.network_key,
            name: config.name,
            voice_frame_ms: config.voice_frame_ms,
            voice_bitrate: config.voice_bitrate,
            voice_out: config.voice_out,
            synced,
        });
        let task = tokio::spawn(driver.run(command_rx, control_rx));
        let link = ClientLink {
            requests: command_tx,
            // 0 is the embedding client.
            next_client: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1)),
        };
        if let Err(e) = crate::control::socket::serve(&config.data_dir, link.clone()) {
            tracing::warn!("no control socket: {e}");
        }
        crate::hooks::start(config.hooks, &config.data_dir, link.clone());
        Ok((
            NodeHandle {
                link,
                control: control_tx,
                task,
                peer_id,
            },
            event_rx,
        ))
    }
}

/// `lobby`, the stored rooms, and the rooms to join from the command line (stored too); with
/// the invites of the private ones among those, for the engine to join their membership.
fn room_book(
    config: &NodeConfig,
    store: &mut Store,
) -> Result<(RoomBook, Vec<(RoomName, String)>), StartError> {
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
    let mut invites = Vec::new();
    for target in &config.join {
        let join_error = |source| StartError::Join {
            target: target.clone(),
            source,
        };
        let room = parse_join_target(target).map_err(join_error)?;
        rooms.insert(room.clone()).map_err(join_error)?;
        store.save_room(&room.stored(), crate::clock::wall_ms())?;
        if room.private {
            invites.push((room.name.clone(), target.clone()));
        }
    }
    Ok((rooms, invites))
}

/// How long to wait for more listen addresses before `ready` (see docs/architecture.md).
pub(crate) const READY_SETTLE: Duration = Duration::from_millis(15);

fn default_listen(has_network_key: bool, memory: bool) -> Vec<Multiaddr> {
    if memory {
        // Port 0: the memory transport picks a free one.
        return vec!["/memory/0".parse().expect("valid literal address")];
    }
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
