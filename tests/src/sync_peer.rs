//! A Hark swarm in the test process (the node's own behaviour, [`hark_node::swarm::build`]) that
//! sends `/hark/sync/1` requests exactly as the test writes them: for playing a room member who
//! sends hostile sync traffic. It never subscribes to a gossip topic, so the node does not count
//! it as a room peer and starts no sync of its own with it; requests it receives anyway are
//! refused.

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hark_node::swarm::BehaviourEvent;
use hark_node::sync::{SyncRequest, SyncResponse};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, Message, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

/// What became of one request: the response, or why none came.
pub type Outcome = Result<SyncResponse, String>;

enum Command {
    Dial(Multiaddr),
    Request(PeerId, SyncRequest, std_mpsc::Sender<Outcome>),
}

pub struct SyncPeer {
    pub peer_id: PeerId,
    pub keypair: Keypair,
    _runtime: tokio::runtime::Runtime,
    commands: mpsc::UnboundedSender<Command>,
    connected: std_mpsc::Receiver<PeerId>,
    seen_connected: Vec<PeerId>,
}

impl SyncPeer {
    pub fn new() -> Self {
        let keypair = Keypair::generate_ed25519();
        let peer_id = keypair.public().to_peer_id();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let (commands, mut command_rx) = mpsc::unbounded_channel::<Command>();
        let (connected_tx, connected) = std_mpsc::channel();
        let key = keypair.clone();
        runtime.spawn(async move {
            let mut swarm =
                hark_node::swarm::build(key, hark_node::swarm::Transports::Network(None), false)
                    .expect("a Hark swarm");
            let mut pending: Vec<(OutboundRequestId, std_mpsc::Sender<Outcome>)> = Vec::new();
            let answer = |pending: &mut Vec<(OutboundRequestId, std_mpsc::Sender<Outcome>)>,
                          id: OutboundRequestId,
                          outcome: Outcome| {
                if let Some(at) = pending.iter().position(|(p, _)| *p == id) {
                    let (_, tx) = pending.swap_remove(at);
                    let _ = tx.send(outcome);
                }
            };
            loop {
                tokio::select! {
                    command = command_rx.recv() => match command {
                        None => break,
                        Some(Command::Dial(addr)) => {
                            let _ = swarm.dial(addr);
                        }
                        Some(Command::Request(peer, request, tx)) => {
                            let id = swarm.behaviour_mut().sync.send_request(&peer, request);
                            pending.push((id, tx));
                        }
                    },
                    Some(event) = swarm.next() => match event {
                        SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                            let _ = connected_tx.send(peer_id);
                        }
                        SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => match event {
                            request_response::Event::Message { message, .. } => match message {
                                Message::Response { request_id, response } => {
                                    answer(&mut pending, request_id, Ok(response));
                                }
                                Message::Request { channel, .. } => {
                                    let _ = swarm.behaviour_mut().sync.send_response(
                                        channel,
                                        SyncResponse::refused("test peer does not serve sync"),
                                    );
                                }
                            },
                            request_response::Event::OutboundFailure { request_id, error, .. } => {
                                answer(&mut pending, request_id, Err(error.to_string()));
                            }
                            _ => {}
                        },
                        _ => {}
                    },
                }
            }
        });
        Self {
            peer_id,
            keypair,
            _runtime: runtime,
            commands,
            connected,
            seen_connected: Vec::new(),
        }
    }

    pub fn dial(&self, addr: &str) {
        let addr: Multiaddr = addr.parse().expect("valid multiaddr");
        let _ = self.commands.send(Command::Dial(addr));
    }

    /// Wait until a connection with `peer` is up.
    pub fn wait_connected(&mut self, peer: &PeerId, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.seen_connected.contains(peer) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            match self.connected.recv_timeout(left) {
                Ok(p) => self.seen_connected.push(p),
                Err(_) => return false,
            }
        }
        true
    }

    /// Send one request and wait for what becomes of it (`Err("timeout")` past `timeout`).
    pub fn request(&self, peer: &PeerId, request: SyncRequest, timeout: Duration) -> Outcome {
        let (tx, rx) = std_mpsc::channel();
        if self
            .commands
            .send(Command::Request(*peer, request, tx))
            .is_err()
        {
            return Err("the sync peer's event loop is gone".into());
        }
        rx.recv_timeout(timeout)
            .unwrap_or_else(|_| Err("timeout".into()))
    }
}

impl Default for SyncPeer {
    fn default() -> Self {
        Self::new()
    }
}
