//! The libp2p side: transports and the network behaviour.
//!
//! Transports: TCP + Noise + Yamux, wrapped in pnet when a network key is set; QUIC beside it
//! only without a key (QUIC cannot carry pnet, and a QUIC listener would admit peers without the
//! key). Behaviours: gossipsub (rooms), mDNS (discovery, optional), identify, ping, and
//! request-response for history sync (`/hark/sync/1`) and blind relays (`/hark/blind/1`: served
//! by `--relay` nodes only, so identify lists it for them alone; every node can ask).

use std::time::Duration;

use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::gossipsub::{
    self, MessageAuthenticity, PeerScoreParams, PeerScoreThresholds, TopicScoreParams,
    ValidationMode,
};
use libp2p::identity::Keypair;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    identify, mdns, noise, ping, tcp, yamux, StreamProtocol, Swarm, SwarmBuilder, Transport,
};

use hark_proto::limits::MAX_SEALED_BYTES;
use hark_proto::sync::MAX_SYNC_BYTES;

use hark_proto::blind::{BlindRequest, BlindResponse, MAX_FRAME_BYTES as MAX_BLIND_FRAME_BYTES};

use crate::sync::{SyncRequest, SyncResponse, PROTOCOL as SYNC_PROTOCOL};

/// Identify's protocol name for Hark nodes.
pub const IDENTIFY_PROTOCOL: &str = "/hark/id/1";

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub gossipsub: gossipsub::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
    pub blind: request_response::cbor::Behaviour<BlindRequest, BlindResponse>,
}

/// Largest gossip frame: a full sealed envelope plus room for gossipsub's own fields
/// (source, sequence number, signature, topic).
pub const MAX_TRANSMIT_BYTES: usize = MAX_SEALED_BYTES + 1024;

/// Gossipsub settings, chosen from measurements in docs/performance.md.
pub fn gossipsub_config() -> Result<gossipsub::Config, String> {
    gossipsub::ConfigBuilder::default()
        // Mesh 6 (5–12), gossipsub's default, kept on purpose: a mesh of 4 (3–8) halved p99
        // latency at N = 50 but left nodes with three connections, all to busy peers, cut off
        // from the mesh for minutes in 6 of 8 runs at N = 200 (mesh 5: 1 of 4; mesh 6: 0 of 5).
        // Measurements and the reasoning are in docs/performance.md.
        .mesh_n(6)
        .mesh_n_low(5)
        .mesh_n_high(12)
        // Strict: every message is signed and carries source and sequence number, so the
        // envelope author can be checked against a signature. `StrictOnce` (our patched
        // gossipsub, third_party/libp2p-gossipsub/HARK.md) checks that signature once per
        // message, after duplicates are dropped, not once for every copy a mesh delivers.
        .validation_mode(ValidationMode::StrictOnce)
        // Nothing is forwarded before the node has opened and checked it.
        .validate_messages()
        .max_transmit_size(MAX_TRANSMIT_BYTES)
        // The default 1 s: 700 ms measured no better and costs more wakeups.
        .heartbeat_interval(Duration::from_secs(1))
        // The first heartbeat after 1 s, not gossipsub's 5 s: choking waits for it, since
        // only heartbeats send the IHAVE that fills a gap in the links that push.
        .heartbeat_initial_delay(Duration::from_secs(1))
        // Publish to every known room peer, not just the mesh: lowest latency for chat rates.
        .flood_publish(true)
        // A mesh link that brings only messages we already have is choked (our fork, HARK.md):
        // each message then reaches a node about once instead of once per mesh peer; choked
        // links trade ids at each heartbeat and a gap is filled by IWANT. One pushing link
        // per room (a tree): only a link that has lately brought us copies counts as one,
        // so a link whose far end does not push to us (as starved six of 200 nodes when
        // every unchoked link counted) makes the heartbeat unchoke another (performance.md,
        // "twelfth pass").
        .choke_duplicates(1)
        // A choked link carries one IHAVE per shared room at each heartbeat that has new ids
        // for it; gossipsub's default ignores a peer's IHAVEs past 10 a heartbeat, which
        // would leave the rooms after the tenth with no way to fill a gap over that link.
        .max_ihave_messages_heartbeat(100)
        .duplicate_cache_time(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())
}

/// Peer scoring: invalid messages cost a lot, so a peer that sends garbage is graylisted
/// after a few; mesh-delivery penalties are off because chat rooms are quiet most of the time;
/// IP colocation is off because many nodes may share one address (NAT, loopback tests).
pub fn score_params() -> (PeerScoreParams, PeerScoreThresholds) {
    let params = PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        ..PeerScoreParams::default()
    };
    (params, PeerScoreThresholds::default())
}

pub fn topic_score_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.5,
        ..TopicScoreParams::default()
    }
}

fn behaviour(
    key: &Keypair,
    with_mdns: bool,
    blind_relay: bool,
) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let mut gossipsub = gossipsub::Behaviour::new(
        MessageAuthenticity::Signed(key.clone()),
        gossipsub_config()?,
    )?;
    let (params, thresholds) = score_params();
    gossipsub.with_peer_score(params, thresholds)?;
    let mdns = if with_mdns {
        Some(mdns::tokio::Behaviour::new(
            mdns::Config::default(),
            key.public().to_peer_id(),
        )?)
    } else {
        None
    };
    let identify = identify::Behaviour::new(
        identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
            .with_agent_version(format!("hark/{}", env!("CARGO_PKG_VERSION"))),
    );
    // CBOR framing adds a few bytes per byte string; the sealed body is bounded by the limit.
    let frame_limit = (MAX_SYNC_BYTES + 4096) as u64;
    let sync = request_response::Behaviour::with_codec(
        request_response::cbor::codec::Codec::default()
            .set_request_size_maximum(frame_limit)
            .set_response_size_maximum(frame_limit),
        [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(Duration::from_secs(60)),
    );
    let blind_limit = MAX_BLIND_FRAME_BYTES as u64;
    let blind_support = if blind_relay {
        ProtocolSupport::Full
    } else {
        ProtocolSupport::Outbound
    };
    let blind = request_response::Behaviour::with_codec(
        request_response::cbor::codec::Codec::default()
            .set_request_size_maximum(blind_limit)
            .set_response_size_maximum(blind_limit),
        [(
            StreamProtocol::new(hark_proto::blind::PROTOCOL),
            blind_support,
        )],
        request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
    );
    Ok(Behaviour {
        gossipsub,
        mdns: mdns.into(),
        identify,
        ping: ping::Behaviour::default(),
        sync,
        blind,
    })
}

/// Which transports a swarm runs.
pub enum Transports {
    /// TCP (+ QUIC without a network key; TCP wrapped in pnet with one).
    Network(Option<PreSharedKey>),
    /// libp2p's in-process memory transport (+ Noise + Yamux): harnesses that run many
    /// nodes in one process.
    Memory,
}

/// Build the swarm for `key` with the given transports, with or without mDNS; it asks blind
/// relays but serves no one as one.
pub fn build(
    key: Keypair,
    transports: Transports,
    with_mdns: bool,
) -> Result<Swarm<Behaviour>, String> {
    build_with(key, transports, with_mdns, false)
}

/// [`build`], serving `/hark/blind/1` when `blind_relay` (`--relay`).
pub fn build_with(
    key: Keypair,
    transports: Transports,
    with_mdns: bool,
    blind_relay: bool,
) -> Result<Swarm<Behaviour>, String> {
    let swarm_config =
        |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(60));
    let network_key = match transports {
        Transports::Network(network_key) => network_key,
        Transports::Memory => {
            return Ok(SwarmBuilder::with_existing_identity(key)
                .with_tokio()
                .with_other_transport(
                    |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                        Ok(MemoryTransport::default()
                            .upgrade(Version::V1Lazy)
                            .authenticate(noise::Config::new(key)?)
                            .multiplex(yamux::Config::default()))
                    },
                )
                .map_err(|e| format!("transport: {e}"))?
                .with_behaviour(|key| behaviour(key, with_mdns, blind_relay))
                .map_err(|e| format!("behaviour: {e}"))?
                .with_swarm_config(swarm_config)
                .build());
        }
    };
    let swarm = match network_key {
        Some(psk) => SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_other_transport(
                |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                    Ok(
                        tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                            .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
                            .upgrade(Version::V1Lazy)
                            .authenticate(noise::Config::new(key)?)
                            .multiplex(yamux::Config::default()),
                    )
                },
            )
            .map_err(|e| format!("transport: {e}"))?
            .with_behaviour(|key| behaviour(key, with_mdns, blind_relay))
            .map_err(|e| format!("behaviour: {e}"))?
            .with_swarm_config(swarm_config)
            .build(),
        None => SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| format!("transport: {e}"))?
            .with_quic()
            .with_behaviour(|key| behaviour(key, with_mdns, blind_relay))
            .map_err(|e| format!("behaviour: {e}"))?
            .with_swarm_config(swarm_config)
            .build(),
    };
    Ok(swarm)
}
