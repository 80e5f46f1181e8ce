//! Hark's fork: `ValidationMode::StrictOnce` verifies a message's signature once, after
//! duplicates are dropped, and still rejects and penalises every forgery.

use libp2p_identity::Keypair;
use prost::Message as _;

use super::DefaultBehaviourTestBuilder;
use crate::{
    Event, TopicScoreParams,
    behaviour::Behaviour,
    config::{ConfigBuilder, ValidationMode},
    peer_score::{PeerScoreParams, PeerScoreThresholds},
    protocol::SIGNING_PREFIX,
    rpc_proto::proto,
    topic::TopicHash,
    types::RawMessage,
};
use libp2p_swarm::ToSwarm;

/// A message signed by `author` as gossipsub signs it.
fn signed(author: &Keypair, seq: u64, topic: &TopicHash, data: &[u8]) -> RawMessage {
    let mut raw = RawMessage {
        source: Some(author.public().to_peer_id()),
        data: data.to_vec(),
        sequence_number: Some(seq),
        topic: topic.clone(),
        signature: None,
        key: None,
        validated: false,
    };
    let unsigned: proto::Message = raw.clone().into();
    let mut bytes = SIGNING_PREFIX.to_vec();
    bytes.extend_from_slice(&unsigned.encode_to_vec());
    raw.signature = Some(author.sign(&bytes).expect("ed25519 signs"));
    raw
}

fn delivered<D, F>(gs: &mut Behaviour<D, F>) -> Vec<Vec<u8>>
where
    D: crate::transform::DataTransform,
    F: crate::subscription_filter::TopicSubscriptionFilter,
{
    let mut out = Vec::new();
    gs.events.retain(|e| match e {
        ToSwarm::GenerateEvent(Event::Message { message, .. }) => {
            out.push(message.data.clone());
            false
        }
        _ => true,
    });
    out
}

#[test]
fn each_message_is_verified_once_and_forgeries_are_rejected_and_penalised() {
    let config = ConfigBuilder::default()
        .validation_mode(ValidationMode::StrictOnce)
        .validate_messages()
        .build()
        .unwrap();
    let mut params = PeerScoreParams::default();
    let topic_hash = crate::IdentTopic::new("room").hash();
    params.topics.insert(
        topic_hash.clone(),
        TopicScoreParams {
            time_in_mesh_weight: 0.0,
            first_message_deliveries_weight: 0.0,
            mesh_message_deliveries_weight: 0.0,
            mesh_failure_penalty_weight: 0.0,
            invalid_message_deliveries_weight: -1.0,
            invalid_message_deliveries_decay: 0.9,
            topic_weight: 1.0,
            ..Default::default()
        },
    );
    let (mut gs, peers, _, topics) = DefaultBehaviourTestBuilder::default()
        .peer_no(4)
        .topics(vec!["room".into()])
        .to_subscribe(true)
        .gs_config(config)
        .scoring(Some((params, PeerScoreThresholds::default())))
        .create_network();
    assert_eq!(topics[0], topic_hash);
    let author = Keypair::generate_ed25519();
    let honest = signed(&author, 1, &topics[0], b"hello");

    // Three copies from three peers: one verification, one delivery.
    for peer in &peers[..3] {
        gs.handle_received_message(honest.clone(), peer);
    }
    assert_eq!(gs.signatures_checked(), 1);
    assert_eq!(delivered(&mut gs), vec![b"hello".to_vec()]);

    // Under the honest message's id, other data with its signature: verified, rejected, and
    // the peer that sent it pays for it.
    let mut forged = honest.clone();
    forged.data = b"forged".to_vec();
    gs.handle_received_message(forged.clone(), &peers[3]);
    assert_eq!(gs.signatures_checked(), 2);
    assert!(delivered(&mut gs).is_empty());
    let score = gs.as_peer_score_mut().score_report(&peers[3]).score;
    assert!(score < 0.0, "the forger is penalised: {score}");
    // Every time it tries again.
    gs.handle_received_message(forged, &peers[3]);
    assert_eq!(gs.signatures_checked(), 3);
    assert!(gs.as_peer_score_mut().score_report(&peers[3]).score < score);

    // A forgery that comes first does not shadow the honest message after it.
    let next = signed(&author, 2, &topics[0], b"second");
    let mut first_forged = next.clone();
    first_forged.signature = Some(vec![7u8; 64]);
    gs.handle_received_message(first_forged, &peers[3]);
    assert!(delivered(&mut gs).is_empty());
    gs.handle_received_message(next.clone(), &peers[0]);
    assert_eq!(delivered(&mut gs), vec![b"second".to_vec()]);
    gs.handle_received_message(next, &peers[1]);
    assert!(delivered(&mut gs).is_empty(), "a duplicate");
    assert_eq!(gs.signatures_checked(), 5);

    // A wrong key: a signature by someone else than the named source.
    let mallory = Keypair::generate_ed25519();
    let mut wrong_key = signed(&mallory, 3, &topics[0], b"as the author");
    wrong_key.source = Some(author.public().to_peer_id());
    gs.handle_received_message(wrong_key, &peers[2]);
    assert!(delivered(&mut gs).is_empty());
    assert!(gs.as_peer_score_mut().score_report(&peers[2]).score < 0.0);

    // The same, with mallory's key carried in the message: a carried key must be the
    // source's own, whatever key of the source's is already known.
    let mut carried = signed(&mallory, 4, &topics[0], b"carried");
    carried.source = Some(author.public().to_peer_id());
    carried.key = Some(mallory.public().encode_protobuf());
    gs.handle_received_message(carried, &peers[1]);
    assert!(delivered(&mut gs).is_empty());
    assert!(gs.as_peer_score_mut().score_report(&peers[1]).score < 0.0);
    // Keys are kept for sources that signed something valid, not for made-up ones.
    assert!(gs.source_keys.contains_key(&author.public().to_peer_id()));
    let stranger = Keypair::generate_ed25519();
    let mut unsigned_by_stranger = signed(&stranger, 1, &topics[0], b"nobody");
    unsigned_by_stranger.signature = Some(vec![9u8; 64]);
    gs.handle_received_message(unsigned_by_stranger, &peers[3]);
    assert!(delivered(&mut gs).is_empty());
    assert!(!gs.source_keys.contains_key(&stranger.public().to_peer_id()));
    // A carried key that is the source's own is used.
    let mut own = signed(&mallory, 5, &topics[0], b"own key");
    own.key = Some(mallory.public().encode_protobuf());
    gs.handle_received_message(own, &peers[0]);
    assert_eq!(delivered(&mut gs), vec![b"own key".to_vec()]);
}
