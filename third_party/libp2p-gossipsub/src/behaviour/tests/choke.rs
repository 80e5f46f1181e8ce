//! Hark's fork: mesh links that bring only duplicates are choked (`Config::choke_duplicates`),
//! choked links hear ids at each heartbeat, and a gap unchokes the link that filled it.

use std::collections::HashMap;

use libp2p_identity::PeerId;
use libp2p_swarm::{ConnectionId, NetworkBehaviour};

use super::DefaultBehaviourTestBuilder;
use crate::{
    IdentityTransform, MaxCountSubscriptionFilter,
    behaviour::Behaviour,
    choke::DUPLICATES_BEFORE_CHOKE,
    config::ConfigBuilder,
    handler::HandlerEvent,
    queue::Queue,
    subscription_filter::AllowAllSubscriptionFilter,
    topic::TopicHash,
    types::{ControlAction, Extensions, Graft, IHave, Prune, RawMessage, RpcIn, RpcOut},
};

type Gossipsub =
    Behaviour<IdentityTransform, MaxCountSubscriptionFilter<AllowAllSubscriptionFilter>>;

/// Us, subscribed to "room", with `peers` mesh peers, choking down to `keep` pushing links.
fn network(
    peers: usize,
    keep: usize,
) -> (Gossipsub, Vec<PeerId>, HashMap<PeerId, Queue>, TopicHash) {
    network_with(peers, ConfigBuilder::default().choke_duplicates(keep))
}

fn network_with(
    peers: usize,
    config: &mut ConfigBuilder,
) -> (Gossipsub, Vec<PeerId>, HashMap<PeerId, Queue>, TopicHash) {
    let config = config.build().unwrap();
    let (gs, peer_ids, queues, topics) = DefaultBehaviourTestBuilder::default()
        .peer_no(peers)
        .topics(vec!["room".into()])
        .to_subscribe(true)
        .gs_config(config)
        .create_network();
    let mut gs = gs;
    let topic = topics[0].clone();
    for peer in &peer_ids {
        assert!(gs.mesh[&topic].contains(peer), "every peer is in the mesh");
        understands_chokes(&mut gs, peer);
    }
    (gs, peer_ids, queues, topic)
}

/// As a peer running this fork says when it connects.
fn understands_chokes(gs: &mut Gossipsub, peer: &PeerId) {
    control(
        gs,
        *peer,
        ControlAction::Extensions(Some(Extensions {
            partial_messages: None,
            choke: Some(true),
        })),
    );
}

/// A message first published by someone who is not one of our peers.
fn message(seq: u64, topic: &TopicHash) -> RawMessage {
    published_by(PeerId::random(), seq, topic)
}

fn published_by(source: PeerId, seq: u64, topic: &TopicHash) -> RawMessage {
    RawMessage {
        source: Some(source),
        data: seq.to_be_bytes().to_vec(),
        sequence_number: Some(seq),
        topic: topic.clone(),
        signature: None,
        key: None,
        validated: true,
    }
}

/// What we queued for each peer since the last call, emptied.
fn sent(queues: &mut HashMap<PeerId, Queue>) -> HashMap<PeerId, Vec<RpcOut>> {
    let mut out = HashMap::new();
    for (peer, queue) in queues.iter_mut() {
        let mut rpcs = Vec::new();
        while let Some(rpc) = queue.try_pop() {
            rpcs.push(rpc);
        }
        out.insert(*peer, rpcs);
    }
    out
}

fn count(rpcs: &[RpcOut], what: fn(&RpcOut) -> bool) -> usize {
    rpcs.iter().filter(|rpc| what(rpc)).count()
}

fn is_publish(rpc: &RpcOut) -> bool {
    matches!(rpc, RpcOut::Publish { .. })
}
fn is_choke(rpc: &RpcOut) -> bool {
    matches!(rpc, RpcOut::Choke(_))
}
fn is_unchoke(rpc: &RpcOut) -> bool {
    matches!(rpc, RpcOut::Unchoke(_))
}

fn id_of(gs: &Gossipsub, raw: &RawMessage) -> crate::MessageId {
    gs.config.message_id(&crate::Message {
        source: raw.source,
        data: raw.data.clone(),
        sequence_number: raw.sequence_number,
        topic: raw.topic.clone(),
    })
}

fn control(gs: &mut Gossipsub, from: PeerId, action: ControlAction) {
    gs.on_connection_handler_event(
        from,
        ConnectionId::new_unchecked(0),
        HandlerEvent::Message {
            rpc: RpcIn {
                messages: vec![],
                subscriptions: vec![],
                control_msgs: vec![action],
                #[cfg(feature = "partial-messages")]
                partial_message: None,
            },
            invalid_messages: vec![],
        },
    );
}

/// `first` brings messages, `dup` brings the same ones right after: enough for a choke.
fn duplicates(gs: &mut Gossipsub, seq: &mut u64, topic: &TopicHash, first: PeerId, dup: PeerId) {
    for _ in 0..DUPLICATES_BEFORE_CHOKE {
        *seq += 1;
        let m = message(*seq, topic);
        gs.handle_received_message(m.clone(), &first);
        gs.handle_received_message(m, &dup);
    }
}

#[test]
fn a_link_that_brings_only_duplicates_is_choked_and_hears_ids_instead() {
    let (mut gs, peers, mut queues, topic) = network(3, 1);
    let (a, b, c) = (peers[0], peers[1], peers[2]);
    gs.heartbeat();
    sent(&mut queues);

    // Duplicates from b, but fewer than the streak: no choke; a first copy from b starts
    // the count again.
    let mut seq = 0;
    for _ in 1..DUPLICATES_BEFORE_CHOKE {
        seq += 1;
        let m = message(seq, &topic);
        gs.handle_received_message(m.clone(), &a);
        gs.handle_received_message(m, &b);
    }
    seq += 1;
    gs.handle_received_message(message(seq, &topic), &b);
    assert_eq!(count(&sent(&mut queues)[&b], is_choke), 0);

    duplicates(&mut gs, &mut seq, &topic, a, b);
    let out = sent(&mut queues);
    assert_eq!(count(&out[&b], is_choke), 1, "b is told once");
    assert_eq!(count(&out[&a], is_choke) + count(&out[&c], is_choke), 0);
    assert!(gs.chokes.is_choked(&b, &topic));

    // What c brings goes on to a, not to b; b hears its id at the heartbeat.
    seq += 1;
    let next = message(seq, &topic);
    let id = gs.config.message_id(&crate::Message {
        source: next.source,
        data: next.data.clone(),
        sequence_number: next.sequence_number,
        topic: topic.clone(),
    });
    gs.handle_received_message(next, &c);
    let out = sent(&mut queues);
    assert_eq!(count(&out[&a], is_publish), 1);
    assert_eq!(count(&out[&b], is_publish), 0, "no push over a choked link");
    gs.heartbeat();
    let out = sent(&mut queues);
    assert!(
        names(&out[&b], &id),
        "a choked link hears the ids: {:?}",
        out[&b]
    );
    // Once: the id stays in the gossip windows for two more heartbeats, unrepeated.
    for _ in 0..2 {
        gs.heartbeat();
        assert!(
            !names(&sent(&mut queues)[&b], &id),
            "a choked link hears an id once"
        );
    }
}

/// A message as it arrives when the application validates: not yet judged.
fn unjudged(seq: u64, topic: &TopicHash) -> RawMessage {
    RawMessage {
        validated: false,
        ..message(seq, topic)
    }
}

/// Whether `rpcs` hold an IHAVE naming `id`.
fn names(rpcs: &[RpcOut], id: &crate::MessageId) -> bool {
    rpcs.iter().any(
        |rpc| matches!(rpc, RpcOut::IHave(IHave { message_ids, .. }) if message_ids.contains(id)),
    )
}

#[test]
fn a_message_validated_after_a_heartbeat_is_named_to_choked_links_at_the_next() {
    let (mut gs, peers, mut queues, topic) = network_with(
        3,
        ConfigBuilder::default()
            .choke_duplicates(1)
            .validate_messages(),
    );
    let (a, b, c) = (peers[0], peers[1], peers[2]);
    gs.heartbeat();
    sent(&mut queues);
    let mut seq = 0;
    for _ in 0..DUPLICATES_BEFORE_CHOKE {
        seq += 1;
        let m = unjudged(seq, &topic);
        let id = id_of(&gs, &m);
        gs.handle_received_message(m.clone(), &a);
        gs.handle_received_message(m, &b);
        gs.report_message_validation_result(&id, &a, crate::MessageAcceptance::Accept);
    }
    assert!(gs.chokes.is_choked(&b, &topic));
    sent(&mut queues);

    // c brings a message the application has not judged yet when the heartbeat comes.
    seq += 1;
    let late = unjudged(seq, &topic);
    let id = id_of(&gs, &late);
    gs.handle_received_message(late, &c);
    gs.heartbeat();
    assert!(
        !names(&sent(&mut queues)[&b], &id),
        "not named before it is valid"
    );
    gs.report_message_validation_result(&id, &c, crate::MessageAcceptance::Accept);
    gs.heartbeat();
    assert!(
        names(&sent(&mut queues)[&b], &id),
        "named at the first heartbeat after it was accepted"
    );
    gs.heartbeat();
    assert!(!names(&sent(&mut queues)[&b], &id), "and only then");
}

#[test]
fn the_last_pushing_links_are_never_choked_and_a_choke_that_would_cut_us_off_is_refused() {
    let (mut gs, peers, mut queues, topic) = network(4, 1);
    let (a, b, c, d) = (peers[0], peers[1], peers[2], peers[3]);
    gs.heartbeat();
    // d: a peer outside the mesh, whose copies come first; a, b and c all push duplicates.
    gs.mesh.get_mut(&topic).unwrap().remove(&d);
    let mut seq = 0;
    for _ in 0..DUPLICATES_BEFORE_CHOKE {
        seq += 1;
        let m = message(seq, &topic);
        gs.handle_received_message(m.clone(), &d);
        for peer in [b, c, a] {
            gs.handle_received_message(m.clone(), &peer);
        }
    }
    assert!(gs.chokes.is_choked(&b, &topic) && gs.chokes.is_choked(&c, &topic));

    // a is the one link left: its duplicates never choke it.
    assert!(!gs.chokes.is_choked(&a, &topic));
    assert_eq!(count(&sent(&mut queues)[&a], is_choke), 0);
    duplicates(&mut gs, &mut seq, &topic, d, a);
    assert!(!gs.chokes.is_choked(&a, &topic));
    assert_eq!(count(&sent(&mut queues)[&a], is_choke), 0);

    // a asks to choke the link: refused, so that something still pushes to us.
    control(&mut gs, a, ControlAction::Choke(topic.clone()));
    assert!(!gs.chokes.is_choked(&a, &topic));
    assert_eq!(count(&sent(&mut queues)[&a], is_unchoke), 1);

    // b may choke its link: we still have a.
    control(&mut gs, b, ControlAction::Unchoke(topic.clone()));
    assert!(!gs.chokes.is_choked(&b, &topic));
    control(&mut gs, b, ControlAction::Choke(topic.clone()));
    assert!(gs.chokes.is_choked(&b, &topic));
    assert_eq!(count(&sent(&mut queues)[&b], is_unchoke), 0);

    // A choke for a topic we are not in is not remembered.
    let elsewhere = TopicHash::from_raw("elsewhere");
    control(&mut gs, c, ControlAction::Choke(elsewhere.clone()));
    assert!(!gs.chokes.is_choked(&c, &elsewhere));
}

#[test]
fn a_gap_unchokes_the_link_that_filled_it_and_a_mesh_change_unchokes_the_link() {
    let (mut gs, peers, mut queues, topic) = network(3, 1);
    let (a, b, c) = (peers[0], peers[1], peers[2]);
    gs.heartbeat();
    let mut seq = 0;
    duplicates(&mut gs, &mut seq, &topic, a, b);
    duplicates(&mut gs, &mut seq, &topic, a, c);
    sent(&mut queues);

    // The tree missed a message and b, choked, brings it (by IWANT): b pushes again.
    seq += 1;
    gs.handle_received_message(message(seq, &topic), &b);
    assert!(!gs.chokes.is_choked(&b, &topic));
    assert_eq!(count(&sent(&mut queues)[&b], is_unchoke), 1);

    // A message we asked a pushing link for (after its IHAVE) also tells it the pushes
    // missed something: it is told to go on pushing.
    seq += 1;
    let asked = message(seq, &topic);
    let id = id_of(&gs, &asked);
    gs.gossip_promises.add_promise(
        a,
        &[id],
        web_time::Instant::now() + std::time::Duration::from_secs(3),
    );
    gs.handle_received_message(asked, &a);
    assert_eq!(count(&sent(&mut queues)[&a], is_unchoke), 1);

    // A GRAFT, sent or received, starts the link unchoked.
    gs.chokes.set(c, &topic, true);
    control(
        &mut gs,
        c,
        ControlAction::Graft(Graft {
            topic_hash: topic.clone(),
        }),
    );
    assert!(!gs.chokes.is_choked(&c, &topic));
    gs.chokes.set(c, &topic, true);
    gs.send_message(
        c,
        RpcOut::Graft(Graft {
            topic_hash: topic.clone(),
        }),
    );
    assert!(!gs.chokes.is_choked(&c, &topic));

    // c leaves the mesh: the link starts unchoked on both sides.
    gs.chokes.set(c, &topic, true);
    assert!(gs.chokes.is_choked(&c, &topic));
    control(
        &mut gs,
        c,
        ControlAction::Prune(Prune {
            topic_hash: topic.clone(),
            peers: vec![],
            backoff: None,
        }),
    );
    assert!(!gs.chokes.is_choked(&c, &topic));

    // Every link too few pushing: a heartbeat unchokes enough of them.
    control(&mut gs, b, ControlAction::Choke(topic.clone()));
    gs.chokes.set(a, &topic, true);
    assert_eq!(gs.chokes.unchoked(&gs.mesh[&topic], &topic), 0);
    sent(&mut queues);
    gs.heartbeat();
    assert!(gs.chokes.unchoked(&gs.mesh[&topic], &topic) >= 1);
}

#[test]
fn a_sources_own_copies_neither_choke_nor_unchoke_a_link() {
    let (mut gs, peers, mut queues, topic) = network(4, 1);
    let (a, b) = (peers[0], peers[1]);
    gs.heartbeat();
    let mut seq = 0;
    // b publishes: its copies come late, after a's, but publishing says nothing of the link.
    for _ in 0..DUPLICATES_BEFORE_CHOKE {
        seq += 1;
        let m = published_by(b, seq, &topic);
        gs.handle_received_message(m.clone(), &a);
        gs.handle_received_message(m, &b);
    }
    assert!(!gs.chokes.is_choked(&b, &topic));
    // b's link choked; b publishes over it (flood publishing goes to every peer): still
    // choked, and no UNCHOKE.
    duplicates(&mut gs, &mut seq, &topic, a, b);
    assert!(gs.chokes.is_choked(&b, &topic));
    sent(&mut queues);
    seq += 1;
    gs.handle_received_message(published_by(b, seq, &topic), &b);
    assert!(gs.chokes.is_choked(&b, &topic));
    assert_eq!(count(&sent(&mut queues)[&b], is_unchoke), 0);
}

#[test]
fn a_link_the_peer_asked_to_keep_is_not_choked_again_at_once() {
    let (mut gs, peers, mut queues, topic) = network(4, 1);
    let (a, b) = (peers[0], peers[1]);
    gs.heartbeat();
    let mut seq = 0;
    duplicates(&mut gs, &mut seq, &topic, a, b);
    assert!(gs.chokes.is_choked(&b, &topic));
    // b refuses (or filled a gap): UNCHOKE.
    control(&mut gs, b, ControlAction::Unchoke(topic.clone()));
    assert!(!gs.chokes.is_choked(&b, &topic));
    sent(&mut queues);
    duplicates(&mut gs, &mut seq, &topic, a, b);
    duplicates(&mut gs, &mut seq, &topic, a, b);
    assert!(!gs.chokes.is_choked(&b, &topic), "held open");
    assert_eq!(count(&sent(&mut queues)[&b], is_choke), 0);
}

#[test]
fn unchokes_go_only_to_mesh_peers_that_understand_them() {
    let (mut gs, peers, mut queues, topic) = network(3, 1);
    let (a, b) = (peers[0], peers[1]);
    gs.heartbeat();
    gs.connected_peers.get_mut(&b).unwrap().extensions = None;
    gs.mesh.get_mut(&topic).unwrap().remove(&a);
    sent(&mut queues);
    // Messages we asked a and b for: neither is told anything (a is outside the mesh, b
    // would not understand).
    let mut seq = 0;
    for peer in [a, b] {
        seq += 1;
        let m = message(seq, &topic);
        let id = id_of(&gs, &m);
        gs.gossip_promises.add_promise(
            peer,
            &[id],
            web_time::Instant::now() + std::time::Duration::from_secs(3),
        );
        gs.handle_received_message(m, &peer);
    }
    let out = sent(&mut queues);
    assert_eq!(count(&out[&a], is_unchoke) + count(&out[&b], is_unchoke), 0);
    // And a CHOKE from a peer outside the mesh is not remembered.
    control(&mut gs, a, ControlAction::Choke(topic.clone()));
    assert!(!gs.chokes.is_choked(&a, &topic));
}

#[test]
fn a_peer_that_does_not_understand_chokes_is_never_choked_and_always_pushed_to() {
    let (mut gs, peers, mut queues, topic) = network(3, 1);
    let (a, b, c) = (peers[0], peers[1], peers[2]);
    // b runs gossipsub without this fork: it said nothing of chokes when it connected.
    gs.connected_peers.get_mut(&b).unwrap().extensions = None;
    gs.heartbeat();
    sent(&mut queues);
    let mut seq = 0;
    duplicates(&mut gs, &mut seq, &topic, a, b);
    duplicates(&mut gs, &mut seq, &topic, a, b);
    assert!(!gs.chokes.is_choked(&b, &topic));
    let out = sent(&mut queues);
    assert_eq!(count(&out[&b], is_choke), 0);
    seq += 1;
    gs.handle_received_message(message(seq, &topic), &c);
    assert_eq!(count(&sent(&mut queues)[&b], is_publish), 1);
}

#[test]
fn nothing_is_choked_before_the_first_heartbeat_or_without_the_option() {
    let (mut gs, peers, mut queues, topic) = network(3, 1);
    let mut seq = 0;
    duplicates(&mut gs, &mut seq, &topic, peers[0], peers[1]);
    assert!(
        !gs.chokes.is_choked(&peers[1], &topic),
        "no IHAVE would fill a gap yet"
    );
    assert_eq!(count(&sent(&mut queues)[&peers[1]], is_choke), 0);

    let (mut gs, peers, mut queues, topics) = DefaultBehaviourTestBuilder::default()
        .peer_no(3)
        .topics(vec!["room".into()])
        .to_subscribe(true)
        .create_network();
    for peer in &peers {
        understands_chokes(&mut gs, peer);
    }
    gs.heartbeat();
    duplicates(&mut gs, &mut seq, &topics[0], peers[0], peers[1]);
    assert!(
        !gs.chokes.is_choked(&peers[1], &topics[0]),
        "upstream's behaviour"
    );
    assert_eq!(count(&sent(&mut queues)[&peers[1]], is_choke), 0);
}

#[test]
fn a_link_that_brings_nothing_does_not_count_as_one_that_pushes() {
    let (mut gs, peers, mut queues, topic) = network(3, 1);
    let (a, b, c) = (peers[0], peers[1], peers[2]);
    gs.heartbeat();
    // a brings every first copy and b the duplicates: b is choked. c brings nothing at all
    // (its far end pushes nothing to us: it may not have us in its mesh).
    let mut seq = 0;
    duplicates(&mut gs, &mut seq, &topic, a, b);
    assert!(gs.chokes.is_choked(&b, &topic));
    assert!(!gs.chokes.is_choked(&c, &topic), "unchoked, but silent");
    assert_eq!(
        gs.chokes.pushing(&gs.mesh[&topic], &topic),
        1,
        "only a pushes"
    );
    sent(&mut queues);

    // a asks to choke its link: refused, since c, though unchoked, has shown no push.
    control(&mut gs, a, ControlAction::Choke(topic.clone()));
    assert!(!gs.chokes.is_choked(&a, &topic));
    assert_eq!(count(&sent(&mut queues)[&a], is_unchoke), 1);

    // a leaves the mesh: what is left is choked b and silent c, so the heartbeat unchokes b.
    control(
        &mut gs,
        a,
        ControlAction::Prune(Prune {
            topic_hash: topic.clone(),
            peers: vec![],
            backoff: None,
        }),
    );
    assert_eq!(gs.chokes.pushing(&gs.mesh[&topic], &topic), 0);
    sent(&mut queues);
    gs.heartbeat();
    assert!(!gs.chokes.is_choked(&b, &topic));
    assert_eq!(count(&sent(&mut queues)[&b], is_unchoke), 1);

    // Any copy from c, a duplicate included, shows that it pushes again.
    seq += 1;
    let m = message(seq, &topic);
    gs.handle_received_message(m.clone(), &b);
    gs.handle_received_message(m, &c);
    assert_eq!(gs.chokes.pushing(&gs.mesh[&topic], &topic), 2);
}

#[test]
fn only_relayed_first_copies_that_a_link_missed_make_it_silent() {
    let (mut gs, peers, _queues, topic) = network(3, 1);
    let (a, b, c) = (peers[0], peers[1], peers[2]);
    gs.heartbeat();
    assert_eq!(
        gs.chokes.pushing(&gs.mesh[&topic], &topic),
        3,
        "no traffic, no verdict"
    );
    // a publishes its own messages: publishing reaches every peer of the source without any
    // link pushing, so b and c missed nothing.
    let silent_after = u64::from(crate::choke::MISSED_BEFORE_SILENT);
    for seq in 1..=silent_after {
        gs.handle_received_message(published_by(a, seq, &topic), &a);
    }
    assert_eq!(gs.chokes.pushing(&gs.mesh[&topic], &topic), 3);
    // a relays others' messages, and b and c bring no copy of them.
    for seq in 1..=silent_after {
        gs.handle_received_message(message(100 + seq, &topic), &a);
    }
    assert!(gs.chokes.is_pushing(&a, &topic), "a brought them");
    assert!(!gs.chokes.is_pushing(&b, &topic) && !gs.chokes.is_pushing(&c, &topic));
    gs.handle_received_message(message(200, &topic), &b);
    assert!(gs.chokes.is_pushing(&b, &topic), "a first copy from b");
}

#[test]
fn a_push_that_never_went_out_is_named_in_an_ihave_at_the_heartbeat() {
    let (mut gs, peers, mut queues, topic) = network(2, 1);
    let (a, b) = (peers[0], peers[1]);
    gs.heartbeat();
    sent(&mut queues);
    // a brings a message; the push to b waited in b's queue past its deadline.
    let m = message(1, &topic);
    let id = id_of(&gs, &m);
    gs.handle_received_message(m, &a);
    let pushed = sent(&mut queues).remove(&b).unwrap();
    let push = pushed
        .into_iter()
        .find(is_publish)
        .expect("b, an unchoked mesh link, is pushed the message");
    gs.on_connection_handler_event(
        b,
        ConnectionId::new_unchecked(0),
        HandlerEvent::MessageDropped(push),
    );
    // b's link is unchoked, so no IHAVE would name it otherwise: the heartbeat does, once.
    gs.heartbeat();
    let out = sent(&mut queues);
    assert!(names(&out[&b], &id), "b hears the id: {:?}", out[&b]);
    assert!(!names(&out[&a], &id), "a, which brought it, does not");
    gs.heartbeat();
    assert!(!names(&sent(&mut queues)[&b], &id), "named once");
}

#[test]
fn an_ihave_that_never_went_out_is_named_again_at_the_next_heartbeat() {
    let (mut gs, peers, mut queues, topic) = network(3, 1);
    let (a, b) = (peers[0], peers[1]);
    gs.heartbeat();
    let mut seq = 0;
    duplicates(&mut gs, &mut seq, &topic, a, b);
    assert!(gs.chokes.is_choked(&b, &topic));
    seq += 1;
    let m = message(seq, &topic);
    let id = id_of(&gs, &m);
    gs.handle_received_message(m, &a);
    sent(&mut queues);
    gs.heartbeat();
    let ihave = sent(&mut queues)
        .remove(&b)
        .unwrap()
        .into_iter()
        .find(|rpc| names(std::slice::from_ref(rpc), &id))
        .expect("b, choked, hears the id");
    // b's queue was full (or the IHAVE waited past its deadline): it never went out.
    gs.on_connection_handler_event(
        b,
        ConnectionId::new_unchecked(0),
        HandlerEvent::MessageDropped(ihave),
    );
    gs.heartbeat();
    assert!(names(&sent(&mut queues)[&b], &id), "named again");
    gs.heartbeat();
    assert!(!names(&sent(&mut queues)[&b], &id), "and then no more");
}

#[test]
fn a_link_unchoked_before_the_heartbeat_hears_what_it_was_not_pushed() {
    let (mut gs, peers, mut queues, topic) = network(3, 1);
    let (a, b) = (peers[0], peers[1]);
    gs.heartbeat();
    let mut seq = 0;
    duplicates(&mut gs, &mut seq, &topic, a, b);
    assert!(gs.chokes.is_choked(&b, &topic));
    sent(&mut queues);
    // A message comes while b is choked: not pushed to b.
    seq += 1;
    let m = message(seq, &topic);
    let id = id_of(&gs, &m);
    gs.handle_received_message(m, &a);
    assert_eq!(count(&sent(&mut queues)[&b], is_publish), 0);
    // b asks for the link back before the heartbeat would have named the id to it.
    control(&mut gs, b, ControlAction::Unchoke(topic.clone()));
    assert!(!gs.chokes.is_choked(&b, &topic));
    gs.heartbeat();
    assert!(
        names(&sent(&mut queues)[&b], &id),
        "the id is named to the link that missed it"
    );
}
