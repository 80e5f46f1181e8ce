//! A bare gossipsub peer in the test process: it speaks plain libp2p (TCP + Noise + Yamux,
//! signed gossipsub) and knows nothing of Hark rooms, so it sees exactly what an outsider on
//! the wire sees, and can publish whatever a hostile peer would.

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, SwarmBuilder};
use tokio::sync::mpsc;

/// A message the raw peer received.
#[derive(Clone, Debug)]
pub struct RawMessage {
    pub topic: String,
    pub source: Option<PeerId>,
    pub data: Vec<u8>,
}

enum RawCommand {
    Dial(Multiaddr),
    Subscribe(String),
    /// Publish each payload; answer with how many gossipsub accepted for sending.
    Publish(String, Vec<Vec<u8>>, std_mpsc::Sender<usize>),
}

#[derive(Debug)]
enum Note {
    Connected(PeerId),
    Subscribed(PeerId, String),
}

pub struct RawPeer {
    pub peer_id: PeerId,
    pub keypair: Keypair,
    _runtime: tokio::runtime::Runtime,
    commands: mpsc::UnboundedSender<RawCommand>,
    messages: std_mpsc::Receiver<RawMessage>,
    notes: std_mpsc::Receiver<Note>,
    seen_notes: Vec<Note>,
}

impl RawPeer {
    pub fn new() -> Self {
        let keypair = Keypair::generate_ed25519();
        let peer_id = keypair.public().to_peer_id();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let (commands, mut command_rx) = mpsc::unbounded_channel();
        let (message_tx, messages) = std_mpsc::channel();
        let (note_tx, notes) = std_mpsc::channel();
        let key = keypair.clone();
        runtime.spawn(async move {
            let config = gossipsub::ConfigBuilder::default()
                .validation_mode(ValidationMode::Permissive)
                // Large enough to send the oversized frames a hostile peer would try.
                .max_transmit_size(1 << 20)
                .heartbeat_interval(Duration::from_millis(700))
                .build()
                .expect("gossipsub config");
            let mut swarm = SwarmBuilder::with_existing_identity(key)
                .with_tokio()
                .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
                .expect("tcp transport")
                .with_behaviour(|key| {
                    gossipsub::Behaviour::<gossipsub::IdentityTransform>::new(MessageAuthenticity::Signed(key.clone()), config)
                        .expect("gossipsub")
                })
                .expect("behaviour")
                .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
                .build();
            loop {
                tokio::select! {
                    command = command_rx.recv() => match command {
                        None => break,
                        Some(RawCommand::Dial(addr)) => {
                            let _ = swarm.dial(addr);
                        }
                        Some(RawCommand::Subscribe(topic)) => {
                            let _ = swarm.behaviour_mut().subscribe(&IdentTopic::new(topic));
                        }
                        Some(RawCommand::Publish(topic, payloads, done)) => {
                            let topic = IdentTopic::new(topic);
                            let mut sent = 0;
                            for (i, payload) in payloads.into_iter().enumerate() {
                                if swarm.behaviour_mut().publish(topic.clone(), payload).is_ok() {
                                    sent += 1;
                                }
                                // Let the swarm drain its queues now and then.
                                if i % 32 == 31 {
                                    let deadline = tokio::time::Instant::now() + Duration::from_millis(5);
                                    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, swarm.next()).await {
                                        handle(event, &message_tx, &note_tx);
                                    }
                                }
                            }
                            let _ = done.send(sent);
                        }
                    },
                    Some(event) = swarm.next() => handle(event, &message_tx, &note_tx),
                }
            }
        });
        Self {
            peer_id,
            keypair,
            _runtime: runtime,
            commands,
            messages,
            notes,
            seen_notes: Vec::new(),
        }
    }

    pub fn dial(&self, addr: &str) {
        let addr: Multiaddr = addr.parse().expect("valid multiaddr");
        let _ = self.commands.send(RawCommand::Dial(addr));
    }

    pub fn subscribe(&self, topic: &str) {
        let _ = self.commands.send(RawCommand::Subscribe(topic.to_owned()));
    }

    /// Publish payloads on `topic`; returns how many gossipsub took.
    pub fn publish(&self, topic: &str, payloads: Vec<Vec<u8>>) -> usize {
        self.publish_in_background(topic, payloads)
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or(0)
    }

    /// Start publishing; the returned channel yields how many gossipsub took once all are out.
    pub fn publish_in_background(
        &self,
        topic: &str,
        payloads: Vec<Vec<u8>>,
    ) -> std_mpsc::Receiver<usize> {
        let (tx, rx) = std_mpsc::channel();
        let _ = self
            .commands
            .send(RawCommand::Publish(topic.to_owned(), payloads, tx));
        rx
    }

    fn wait_note(&mut self, timeout: Duration, pred: impl Fn(&Note) -> bool) -> bool {
        if self.seen_notes.iter().any(&pred) {
            return true;
        }
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.notes.recv_timeout(left) {
                Ok(note) => {
                    let hit = pred(&note);
                    self.seen_notes.push(note);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    pub fn wait_connected(&mut self, peer: &str, timeout: Duration) -> bool {
        let peer = peer.to_owned();
        self.wait_note(
            timeout,
            |n| matches!(n, Note::Connected(p) if p.to_string() == peer),
        )
    }

    /// Wait until `peer` has told us it is subscribed to `topic`.
    pub fn wait_subscribed(&mut self, peer: &str, topic: &str, timeout: Duration) -> bool {
        let (peer, topic) = (peer.to_owned(), topic.to_owned());
        self.wait_note(
            timeout,
            |n| matches!(n, Note::Subscribed(p, t) if p.to_string() == peer && *t == topic),
        )
    }

    /// The next message received, if one comes within `timeout`.
    pub fn next_message(&self, timeout: Duration) -> Option<RawMessage> {
        self.messages.recv_timeout(timeout).ok()
    }
}

impl Default for RawPeer {
    fn default() -> Self {
        Self::new()
    }
}

fn handle(
    event: SwarmEvent<gossipsub::Event>,
    messages: &std_mpsc::Sender<RawMessage>,
    notes: &std_mpsc::Sender<Note>,
) {
    match event {
        SwarmEvent::ConnectionEstablished { peer_id, .. } => {
            let _ = notes.send(Note::Connected(peer_id));
        }
        SwarmEvent::Behaviour(gossipsub::Event::Subscribed { peer_id, topic }) => {
            let _ = notes.send(Note::Subscribed(peer_id, topic.to_string()));
        }
        SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. }) => {
            let _ = messages.send(RawMessage {
                topic: message.topic.to_string(),
                source: message.source,
                data: message.data,
            });
        }
        _ => {}
    }
}
