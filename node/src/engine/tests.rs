//! The engine's rules, without sockets: engines wired to each other by hand, time passed in.

use std::time::{Duration, Instant};

use hark_proto::{RoomName, Topic};
use libp2p::gossipsub::{MessageAcceptance, MessageId as GossipId};
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::api::{Command, Event};
use crate::rooms::{Room, RoomBook};

pub(super) fn lobby() -> Room {
    Room::public(RoomName::parse("lobby").unwrap())
}

pub(super) struct Clock {
    base: Instant,
    ms: u64,
}

impl Clock {
    /// A clock at 0 ms, now.
    pub(super) fn start() -> Self {
        Clock {
            base: Instant::now(),
            ms: 0,
        }
    }

    pub(super) fn now(&self) -> Now {
        Now {
            at: self.base + Duration::from_millis(self.ms),
            wall_ms: 1_796_083_200_000 + self.ms,
        }
    }
}

pub(super) fn engine(seed: u8, clock: &Clock) -> Engine<MemoryStore> {
    engine_on(seed, clock, MemoryStore::default())
}

/// [`engine`] on a store that already holds something.
pub(super) fn engine_on(seed: u8, clock: &Clock, store: MemoryStore) -> Engine<MemoryStore> {
    let mut rooms = RoomBook::default();
    rooms.insert(lobby()).unwrap();
    let mut engine = Engine::new(
        EngineConfig {
            rooms,
            ..EngineConfig::for_test(seed)
        },
        store,
        StdRng::seed_from_u64(seed as u64),
        clock.now(),
    );
    engine.handle(Input::Start, clock.now());
    engine
}

pub(super) fn send(engine: &mut Engine<MemoryStore>, clock: &Clock, text: &str) -> Vec<Output> {
    engine.handle(
        Input::Command(Command::Send {
            room: "lobby".into(),
            text: text.into(),
        }),
        clock.now(),
    )
}

pub(super) fn events(outputs: &[Output]) -> Vec<&Event> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

pub(super) fn published(outputs: &[Output]) -> Vec<(Topic, Vec<u8>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Publish { topic, data } => Some((topic.clone(), data.clone())),
            _ => None,
        })
        .collect()
}

pub(super) fn gossip(from: PeerId, topic: &Topic, data: Vec<u8>, n: u8) -> Input {
    Input::Gossip {
        id: GossipId::new(&[n]),
        from,
        source: Some(from),
        topic: topic.as_str().to_owned(),
        data,
    }
}

fn verdict(outputs: &[Output]) -> Option<MessageAcceptance> {
    outputs.iter().find_map(|o| match o {
        Output::Verdict { acceptance, .. } => Some(*acceptance),
        _ => None,
    })
}

#[allow(clippy::single_element_loop)]
pub(super) fn connect(
    a: &mut Engine<MemoryStore>,
    b: &mut Engine<MemoryStore>,
    clock: &Clock,
) -> Vec<(bool, Output)> {
    let addr: Multiaddr = "/memory/1".parse().unwrap();
    let topic = lobby().chat_topic.as_str().to_owned();
    let mut out = Vec::new();
    for (x, y, x_is_a) in [(&mut *a, b.peer_id(), true)] {
        out.extend(
            x.handle(
                Input::Connected {
                    peer: y,
                    addr: addr.clone(),
                    first: true,
                },
                clock.now(),
            )
            .into_iter()
            .map(|o| (x_is_a, o)),
        );
        out.extend(
            x.handle(
                Input::Subscribed {
                    peer: y,
                    topic: topic.clone(),
                },
                clock.now(),
            )
            .into_iter()
            .map(|o| (x_is_a, o)),
        );
    }
    let a_peer = a.peer_id();
    out.extend(
        b.handle(
            Input::Connected {
                peer: a_peer,
                addr,
                first: true,
            },
            clock.now(),
        )
        .into_iter()
        .map(|o| (false, o)),
    );
    out.extend(
        b.handle(
            Input::Subscribed {
                peer: a_peer,
                topic,
            },
            clock.now(),
        )
        .into_iter()
        .map(|o| (false, o)),
    );
    out
}

/// Carry sync requests and responses between two engines until none is left; returns every
/// output that was not sync traffic, tagged with whether `a` produced it.
pub(super) fn settle(
    a: &mut Engine<MemoryStore>,
    b: &mut Engine<MemoryStore>,
    clock: &Clock,
    mut pending: Vec<(bool, Output)>,
) -> Vec<(bool, Output)> {
    let mut rest = Vec::new();
    for _ in 0..1_000 {
        let Some((from_a, output)) = pending.pop() else {
            return rest;
        };
        let (me, other) = if from_a {
            (&mut *a, &mut *b)
        } else {
            (&mut *b, &mut *a)
        };
        match output {
            Output::SyncRequest { topic, request, .. } => {
                let answer = other.handle(
                    Input::SyncRequest {
                        peer: me.peer_id(),
                        reply: 0,
                        request,
                    },
                    clock.now(),
                );
                for o in answer {
                    match o {
                        Output::SyncResponse { response, .. } => {
                            let back = me.handle(
                                Input::SyncResponse {
                                    peer: other.peer_id(),
                                    topic: topic.clone(),
                                    response,
                                },
                                clock.now(),
                            );
                            pending.extend(back.into_iter().map(|o| (from_a, o)));
                        }
                        o => pending.push((!from_a, o)),
                    }
                }
            }
            o => rest.push((from_a, o)),
        }
    }
    panic!("sync did not settle");
}

#[test]
fn a_message_is_stored_before_it_is_reported_sent_and_then_published() {
    let clock = Clock::start();
    let mut a = engine(1, &clock);
    let out = send(&mut a, &clock, "hello");
    let sent = out
        .iter()
        .position(|o| matches!(o, Output::Event(Event::Sent { .. })))
        .expect("sent");
    let publish = out
        .iter()
        .position(|o| matches!(o, Output::Publish { .. }))
        .expect("publish");
    assert!(sent < publish, "sent, then published");
    assert_eq!(
        a.store().message_count(&lobby().chat_topic),
        1,
        "stored by then"
    );

    let out = send(&mut a, &clock, "   ");
    assert!(matches!(events(&out)[..], [Event::Error { code, .. }] if code == "bad_command"));
    let out = a.handle(
        Input::Command(Command::Send {
            room: "nowhere".into(),
            text: "x".into(),
        }),
        clock.now(),
    );
    assert!(matches!(events(&out)[..], [Event::Error { code, .. }] if code == "not_joined"));
}

#[test]
fn a_full_disk_refuses_the_send_and_reports_nothing_as_sent() {
    let clock = Clock::start();
    let mut rooms = RoomBook::default();
    rooms.insert(lobby()).unwrap();
    let mut store = MemoryStore::default();
    store.failing = true;
    let mut a = Engine::new(
        EngineConfig {
            name: "a".into(),
            rooms,
            ..EngineConfig::for_test(9)
        },
        store,
        StdRng::seed_from_u64(1),
        clock.now(),
    );
    let out = send(&mut a, &clock, "hello");
    assert!(published(&out).is_empty());
    assert!(matches!(events(&out)[..], [Event::Error { code, .. }] if code == "store_failed"));
}

#[test]
fn gossip_is_shown_once_and_a_replay_or_a_forged_author_is_rejected() {
    let clock = Clock::start();
    let mut a = engine(1, &clock);
    let mut b = engine(2, &clock);
    let mut c = engine(3, &clock);
    let (topic, data) = published(&send(&mut a, &clock, "hello"))[0].clone();

    let out = b.handle(gossip(a.peer_id(), &topic, data.clone(), 1), clock.now());
    assert_eq!(verdict(&out), Some(MessageAcceptance::Accept));
    assert!(matches!(events(&out)[..], [Event::Message { text, .. }] if text == "hello"));

    let out = b.handle(gossip(a.peer_id(), &topic, data.clone(), 2), clock.now());
    assert_eq!(verdict(&out), Some(MessageAcceptance::Reject), "a replay");
    assert!(events(&out).is_empty());

    // c passes a's envelope off as its own: the signed source is not the author.
    let out = c.handle(gossip(b.peer_id(), &topic, data, 3), clock.now());
    assert_eq!(verdict(&out), Some(MessageAcceptance::Reject));
    assert!(events(&out).is_empty());
    assert_eq!(c.drops().values().sum::<u64>(), 1);
}

/// a's "hello" as b took it by gossip: both engines, the room's topic, the sealed message and
/// b's outputs.
struct Hello {
    a: Engine<MemoryStore>,
    b: Engine<MemoryStore>,
    topic: Topic,
    data: Vec<u8>,
    out: Vec<Output>,
}

/// a sends "hello"; b takes it by gossip, accepts and shows it.
fn hello_by_gossip(clock: &Clock) -> Hello {
    let mut a = engine(1, clock);
    let mut b = engine(2, clock);
    let (topic, data) = published(&send(&mut a, clock, "hello"))[0].clone();
    let out = b.handle(gossip(a.peer_id(), &topic, data.clone(), 1), clock.now());
    assert_eq!(verdict(&out), Some(MessageAcceptance::Accept));
    assert!(matches!(events(&out)[..], [Event::Message { text, .. }] if text == "hello"));
    Hello {
        a,
        b,
        topic,
        data,
        out,
    }
}

/// a and b meet and sync: how many messages b shows.
fn shown_on_b_by_sync(
    a: &mut Engine<MemoryStore>,
    b: &mut Engine<MemoryStore>,
    clock: &Clock,
) -> usize {
    let first = connect(a, b, clock);
    settle(a, b, clock, first)
        .iter()
        .filter(|(side, o)| !*side && matches!(o, Output::Event(Event::Message { .. })))
        .count()
}

/// A gossip message is shown at once and stored with the next ones (held.rs): shown once
/// even when a sync meanwhile brings its change again, readable by `history` at once, and
/// in the store once the room's save timer fires.
#[test]
fn a_held_gossip_message_is_shown_once_readable_at_once_and_stored_on_time() {
    let clock = Clock::start();
    let Hello {
        mut a,
        mut b,
        topic,
        out,
        ..
    } = hello_by_gossip(&clock);
    assert!(out.iter().any(|o| matches!(o,
        Output::Timer { timer: Timer::SaveHeld(t), .. } if *t == topic)));
    assert_eq!(b.store().message_count(&topic), 0, "held");
    assert_eq!(b.footprint().unstored_messages, 1);

    assert_eq!(
        shown_on_b_by_sync(&mut a, &mut b, &clock),
        0,
        "a sync does not show it again"
    );

    let out = b.handle(
        Input::Command(Command::History {
            room: "lobby".into(),
            limit: None,
            before: None,
        }),
        clock.now(),
    );
    assert!(
        events(&out).iter().any(|e| matches!(e,
            Event::History { messages, .. } if messages.len() == 1)),
        "{:?}",
        events(&out)
    );
    b.handle(Input::Timer(Timer::SaveHeld(topic.clone())), clock.now());
    assert_eq!(b.store().message_count(&topic), 1);
    assert_eq!(b.footprint().unstored_messages, 0);
}

/// Held messages are stored on each node's own grid (held.rs, `until_next_save`): a node's
/// save timers land on instants one `SAVE_HELD_EVERY` apart whenever its messages came, and
/// two nodes' grids differ, so the nodes that got one message do not all store at once.
#[test]
fn held_messages_are_stored_on_each_nodes_own_grid() {
    let mut clock = Clock::start();
    let mut a = engine(1, &clock);
    let mut b = engine(2, &clock);
    let mut c = engine(3, &clock);
    let save_at = |out: &[Output]| {
        out.iter().find_map(|o| match o {
            Output::Timer {
                at,
                timer: Timer::SaveHeld(_),
            } => Some(*at),
            _ => None,
        })
    };
    let (topic, data) = published(&send(&mut a, &clock, "one"))[0].clone();
    let on_b = save_at(&b.handle(gossip(a.peer_id(), &topic, data.clone(), 1), clock.now()));
    let on_c = save_at(&c.handle(gossip(a.peer_id(), &topic, data, 1), clock.now()));
    let (Some(on_b), Some(on_c)) = (on_b, on_c) else {
        panic!("both hold the message and set a save");
    };
    assert_ne!(on_b, on_c, "two nodes, two phases");
    assert!(on_b <= clock.now().at + held::SAVE_HELD_EVERY);

    clock.ms = 1_300;
    b.handle(Input::Timer(Timer::SaveHeld(topic.clone())), clock.now());
    let (topic, data) = published(&send(&mut a, &clock, "two"))[0].clone();
    let Some(next) = save_at(&b.handle(gossip(a.peer_id(), &topic, data, 2), clock.now())) else {
        panic!("the next message sets a save again");
    };
    let apart = next - on_b;
    assert_eq!(
        apart.as_nanos() % held::SAVE_HELD_EVERY.as_nanos(),
        0,
        "{apart:?} apart: on b's grid"
    );
    assert!(next > clock.now().at && next <= clock.now().at + held::SAVE_HELD_EVERY);
}

/// A member copies another's signed record into a change of its own (a new hash to Automerge)
/// and gossips it: a message already stored is not shown again (held.rs asks the store for
/// records that did not come straight from their author).
#[test]
fn a_record_rewrapped_by_another_member_is_not_shown_again() {
    use automerge::transaction::{CommitOptions, Transactable};
    use automerge::{ActorId, Automerge, ScalarValue, ROOT};
    use hark_proto::{seal, Body, Envelope, MessageId};

    let clock = Clock::start();
    let Hello {
        a,
        mut b,
        topic,
        data,
        ..
    } = hello_by_gossip(&clock);
    b.handle(Input::Timer(Timer::SaveHeld(topic.clone())), clock.now());
    assert_eq!(b.store().message_count(&topic), 1, "stored");

    let room = lobby();
    let Body::Change { shard, change } = crate::validate::open_chat(&room, &data).unwrap().body
    else {
        panic!("a message is a change");
    };
    let record = crate::history::shard::record_in_change(&change).unwrap();
    assert_eq!(record.author, a.peer_id().to_bytes());
    let mut doc = Automerge::new();
    doc.set_actor(ActorId::from(record.author.clone()));
    let mut tx = doc.transaction();
    tx.put(
        ROOT,
        record.id.to_hex(),
        ScalarValue::Bytes(record.encode().unwrap()),
    )
    .unwrap();
    tx.commit_with(CommitOptions::default().with_time(12_345));
    let rewrapped = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
    assert_ne!(rewrapped, change, "a change Automerge has not seen");

    let c = engine(3, &clock);
    let envelope = Envelope {
        author: c.peer_id().to_bytes(),
        name: "c".into(),
        id: MessageId([7; 16]),
        sent_at_ms: 1,
        body: Body::Change {
            shard,
            change: rewrapped,
        },
    };
    let sealed = seal::seal(
        &room.key,
        &room.chat_topic,
        &envelope.encode().unwrap(),
        &mut StdRng::seed_from_u64(7),
    );
    let out = b.handle(gossip(c.peer_id(), &topic, sealed, 9), clock.now());
    assert_ne!(verdict(&out), Some(MessageAcceptance::Reject));
    assert!(
        !events(&out)
            .iter()
            .any(|e| matches!(e, Event::Message { .. })),
        "shown again: {:?}",
        events(&out)
    );
}

/// A held message whose store fails is not shown again when sync brings it back, and is then
/// stored.
#[test]
fn a_held_message_whose_store_failed_is_not_shown_again_when_sync_brings_it() {
    let clock = Clock::start();
    let Hello {
        mut a,
        mut b,
        topic,
        ..
    } = hello_by_gossip(&clock);
    b.store.failing = true;
    b.handle(Input::Timer(Timer::SaveHeld(topic.clone())), clock.now());
    b.store.failing = false;
    assert_eq!(b.store().message_count(&topic), 0, "the store failed");

    assert_eq!(
        shown_on_b_by_sync(&mut a, &mut b, &clock),
        0,
        "shown once, though stored only now"
    );
    assert_eq!(b.store().message_count(&topic), 1);
}

/// A catch-up written behind whose write fails after its messages were shown (store/behind.rs):
/// the room's history is loaded again from the store, and when sync brings the messages once
/// more they are stored, not shown again.
#[test]
fn a_catch_up_whose_write_behind_failed_is_fetched_again_and_not_shown_twice() {
    let clock = Clock::start();
    let mut a = engine(1, &clock);
    let mut b = engine(2, &clock);
    send(&mut a, &clock, "one");
    send(&mut a, &clock, "two");
    let topic = lobby().chat_topic;
    b.store.lose_next_batch = true;
    // The engine hears of the loss with its next input, forgets the room's history (loaded
    // again from the store) and a session brings the messages again.
    assert_eq!(
        shown_on_b_by_sync(&mut a, &mut b, &clock),
        2,
        "each shown once"
    );
    assert!(!b.store.lose_next_batch, "the write behind failed");
    assert_eq!(
        shown_on_b_by_sync(&mut a, &mut b, &clock),
        0,
        "shown once, though stored only later"
    );
    assert_eq!(b.store().message_count(&topic), 2);
}

#[test]
fn peers_that_meet_sync_what_they_wrote_alone_and_both_report_it() {
    let clock = Clock::start();
    let mut a = engine(1, &clock);
    let mut b = engine(2, &clock);
    send(&mut a, &clock, "from a while alone");
    send(&mut b, &clock, "from b while alone");
    let first = connect(&mut a, &mut b, &clock);
    let starts = first
        .iter()
        .filter(|(_, o)| matches!(o, Output::SyncRequest { .. }))
        .count();
    assert_eq!(
        starts, 1,
        "one session per pair: the smaller peer id starts it"
    );
    let rest = settle(&mut a, &mut b, &clock, first);
    for (side, engine) in [(true, &a), (false, &b)] {
        assert_eq!(engine.store().message_count(&lobby().chat_topic), 2);
        let shown: Vec<&Event> = rest
            .iter()
            .filter(|(s, _)| *s == side)
            .filter_map(|(_, o)| match o {
                Output::Event(e @ Event::Message { .. }) => Some(e),
                _ => None,
            })
            .collect();
        assert_eq!(shown.len(), 1, "each side shows the other's message once");
        assert!(rest
            .iter()
            .any(|(s, o)| *s == side
                && matches!(o, Output::Event(Event::Synced { received: 1, .. }))));
    }
    assert_eq!(
        a.footprint().sessions + b.footprint().sessions,
        0,
        "sessions end"
    );
}

#[test]
fn leaving_a_room_drops_its_state_and_its_timers_find_nothing() {
    let mut clock = Clock::start();
    let mut a = engine(1, &clock);
    let out = a.handle(
        Input::Command(Command::Join {
            room: Some("ops".into()),
            invite: None,
        }),
        clock.now(),
    );
    let ops = Room::public(RoomName::parse("ops").unwrap()).chat_topic;
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Subscribe(t) if *t == ops)));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Timer { timer: Timer::Presence(t), .. } if *t == ops)));
    assert_eq!(a.footprint().rooms, 2);
    let out = a.handle(
        Input::Command(Command::Leave { room: "ops".into() }),
        clock.now(),
    );
    assert!(matches!(events(&out)[..], [Event::Left { .. }]));
    assert_eq!(a.footprint().rooms, 1);
    clock.ms += 1_000;
    let out = a.handle(Input::Timer(Timer::Presence(ops)), clock.now());
    assert!(out.is_empty(), "a timer of a room left does nothing");
}

#[test]
fn presence_is_announced_when_due_and_re_armed() {
    let mut clock = Clock::start();
    let mut a = engine(1, &clock);
    let topic = lobby().chat_topic;
    // Too early (a stale timer): nothing.
    let out = a.handle(Input::Timer(Timer::Presence(topic.clone())), clock.now());
    assert!(out.is_empty());
    // The first regular announcement: 60 s ± 25 %.
    clock.ms += 75_000;
    let out = a.handle(Input::Timer(Timer::Presence(topic.clone())), clock.now());
    assert_eq!(published(&out).len(), 1);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Timer { timer: Timer::Presence(t), .. } if *t == topic)));
}

#[test]
fn the_same_seed_gives_the_same_outputs() {
    let clock = Clock::start();
    let run = || {
        let mut a = engine(1, &clock);
        published(&send(&mut a, &clock, "same"))
    };
    assert_eq!(run(), run());
}

fn delivered(outputs: &[(bool, Output)], by_a: bool) -> Vec<(String, Vec<String>)> {
    outputs
        .iter()
        .filter_map(|(from_a, o)| match o {
            Output::Event(Event::Delivered { id, peers, .. }) if *from_a == by_a => {
                Some((id.clone(), peers.clone()))
            }
            _ => None,
        })
        .collect()
}

fn sent_id(outputs: &[Output]) -> String {
    outputs
        .iter()
        .find_map(|o| match o {
            Output::Event(Event::Sent { id, .. }) => Some(id.clone()),
            _ => None,
        })
        .expect("sent")
}

#[test]
fn a_message_written_alone_is_delivered_by_the_sync_on_meeting() {
    let mut clock = Clock::start();
    let mut a = engine(1, &clock);
    let mut b = engine(2, &clock);
    let out = send(&mut a, &clock, "written alone");
    let id = sent_id(&out);
    assert!(
        !events(&out)
            .iter()
            .any(|e| matches!(e, Event::Delivered { .. })),
        "nobody holds it yet"
    );
    clock.ms += 10;
    let wired = connect(&mut a, &mut b, &clock);
    let rest = settle(&mut a, &mut b, &clock, wired);
    assert_eq!(
        delivered(&rest, true),
        vec![(id, vec![b.peer_id().to_string()])],
        "the completed session proves b holds it, once"
    );
    assert!(delivered(&rest, false).is_empty(), "b sent nothing");
}

#[test]
fn confirming_delivery_syncs_after_a_send_and_gossip_alone_proves_nothing() {
    let mut clock = Clock::start();
    let mut a = engine(1, &clock);
    let mut b = engine(2, &clock);
    let wired = connect(&mut a, &mut b, &clock);
    settle(&mut a, &mut b, &clock, wired);
    clock.ms += 10;
    // Published to a connected room peer: gossip may or may not get there.
    let out = send(&mut a, &clock, "fire");
    let id = sent_id(&out);
    assert!(
        !out.iter().any(|o| matches!(o, Output::SyncRequest { .. })),
        "no extra sync unless a client must know"
    );
    // A one-shot sender asks: a syncs with its room peer, and the session confirms it.
    clock.ms += 10;
    let out = a.handle(Input::ConfirmDelivery, clock.now());
    assert!(out.iter().any(|o| matches!(o, Output::SyncRequest { .. })));
    let rest = settle(
        &mut a,
        &mut b,
        &clock,
        out.into_iter().map(|o| (true, o)).collect(),
    );
    assert_eq!(
        delivered(&rest, true),
        vec![(id, vec![b.peer_id().to_string()])]
    );
    // Nothing is left to confirm: the retry timer finds nothing to do.
    clock.ms += 1_000;
    let out = a.handle(Input::Timer(Timer::Deliver), clock.now());
    assert!(!out.iter().any(|o| matches!(o, Output::SyncRequest { .. })));
}

/// A presence announcement from a peer we never met directly, as gossip hands it over.
fn presence_from(n: u16, clock: &Clock) -> Input {
    let mut secret = [7u8; 32];
    secret[..2].copy_from_slice(&n.to_be_bytes());
    let peer = Keypair::ed25519_from_bytes(secret)
        .unwrap()
        .public()
        .to_peer_id();
    let room = lobby();
    let envelope = hark_proto::Envelope {
        author: peer.to_bytes(),
        name: format!("p{n}"),
        id: hark_proto::MessageId::random(&mut rand::thread_rng()),
        sent_at_ms: clock.now().wall_ms,
        body: hark_proto::Body::Presence,
    };
    let data = hark_proto::seal::seal(
        &room.key,
        &room.chat_topic,
        &envelope.encode().unwrap(),
        &mut rand::thread_rng(),
    );
    Input::Gossip {
        id: GossipId::new(&n.to_be_bytes()),
        from: peer,
        source: Some(peer),
        topic: room.chat_topic.as_str().to_owned(),
        data,
    }
}

#[test]
fn in_a_big_mesh_presence_waits_for_the_interval_the_mesh_calls_for() {
    let mut clock = Clock::start();
    let mut a = engine(1, &clock);
    let b = engine(2, &clock);
    let topic = lobby().chat_topic;
    // A neighbour joins: we answer within 0.5-1.5 s.
    connect_one(&mut a, b.peer_id(), &clock);
    clock.ms = 1_500;
    let out = a.handle(Input::Timer(Timer::Presence(topic.clone())), clock.now());
    assert_eq!(published(&out).len(), 1, "the answer to a newcomer");
    // The mesh turns out to be big: 300 peers heard.
    for n in 0..300 {
        let out = a.handle(presence_from(n, &clock), clock.now());
        assert_eq!(verdict(&out), Some(MessageAcceptance::Accept));
    }
    // The regular announcement planned while the mesh looked small (within 75 s) is held
    // back: 300 peers call for 300 s ± 25 %.
    clock.ms = 80_000;
    let out = a.handle(Input::Timer(Timer::Presence(topic.clone())), clock.now());
    assert!(published(&out).is_empty(), "held back");
    let next = out
        .iter()
        .find_map(|o| match o {
            Output::Timer {
                at,
                timer: Timer::Presence(_),
            } => Some(at.duration_since(clock.base)),
            _ => None,
        })
        .expect("re-planned");
    assert!(
        next >= Duration::from_millis(1_500 + 225_000 * 3 / 4),
        "next announcement at {next:?}"
    );
    // A newcomer 78 s after our last announcement is answered; the next one, right after that
    // answer, is not (at most one answer per 30 s in a big mesh).
    connect_one(&mut a, PeerId::random(), &clock);
    clock.ms += 1_500;
    let out = a.handle(Input::Timer(Timer::Presence(topic.clone())), clock.now());
    assert_eq!(published(&out).len(), 1, "answered");
    let out = connect_one(&mut a, PeerId::random(), &clock);
    assert!(
        !out.iter().any(|o| matches!(
            o,
            Output::Timer {
                timer: Timer::Presence(_),
                ..
            }
        )),
        "a second answer within 30 s is not planned"
    );
}

/// `peer` connects to `a` and subscribes to the lobby.
fn connect_one(a: &mut Engine<MemoryStore>, peer: PeerId, clock: &Clock) -> Vec<Output> {
    let mut out = a.handle(
        Input::Connected {
            peer,
            addr: "/memory/9".parse().unwrap(),
            first: true,
        },
        clock.now(),
    );
    out.extend(a.handle(
        Input::Subscribed {
            peer,
            topic: lobby().chat_topic.as_str().to_owned(),
        },
        clock.now(),
    ));
    out
}

#[test]
fn a_message_sent_as_a_web_user_is_signed_and_shown_as_theirs_on_every_node() {
    let clock = Clock::start();
    let mut a = engine(1, &clock);
    let mut b = engine(2, &clock);
    let ann = Keypair::ed25519_from_bytes([9; 32]).unwrap();
    let ann_id = ann.public().to_peer_id().to_string();
    let out = a.handle(
        Input::SendAs(Box::new(SendAs {
            identity: ann,
            name: "ann".into(),
            room: "lobby".into(),
            kind: hark_proto::MessageKind::Me,
            text: "waves from the web".into(),
        })),
        clock.now(),
    );
    let shown = |out: &[Output]| {
        events(out).into_iter().find_map(|e| match e {
            Event::Message {
                from, name, kind, ..
            } => Some((from.clone(), name.clone(), kind.clone())),
            _ => None,
        })
    };
    assert!(events(&out).iter().any(|e| matches!(e, Event::Sent { .. })));
    // The serving node's own clients see it as ann's, as they would from a peer.
    let expected = Some((ann_id.clone(), "ann".to_owned(), "me".to_owned()));
    assert_eq!(shown(&out), expected);
    let (topic, data) = published(&out)[0].clone();
    let out = b.handle(gossip(a.peer_id(), &topic, data, 1), clock.now());
    assert_eq!(verdict(&out), Some(MessageAcceptance::Accept));
    assert_eq!(shown(&out), expected);
    // Shown at once, stored with the next ones (held.rs): when the room's save timer fires.
    assert!(b.store.messages(&topic, 10, None).unwrap().is_empty());
    b.handle(Input::Timer(Timer::SaveHeld(topic.clone())), clock.now());
    let stored = b.store.messages(&topic, 10, None).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].author, ann_id);
}
