//! The engine's blind-relay rules, three engines wired by hand: a member stores its DM at a
//! relay that cannot open it, the relay's answer is a `delivered`, and the other member, who
//! was away, fetches it, opens it and has the room; junk and replays change nothing.

use std::time::Instant;

use hark_proto::blind::{BlindRequest, BlindResponse, Held, StoreResult};
use hark_proto::{seal, RoomKey};
use libp2p::identity::Keypair;
use libp2p::PeerId;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::super::{Engine, EngineConfig, Input, MemoryStore, Now, Output};
use crate::api::{Command, Event};
use crate::rooms::RoomBook;
use crate::store::blind::{BlindDb, Bounds};

fn now() -> Now {
    Now {
        at: Instant::now(),
        wall_ms: 1_796_083_200_000,
    }
}

fn engine(seed: u8, relay: bool) -> Engine<MemoryStore> {
    let mut rooms = RoomBook::default();
    let lobby = hark_proto::RoomName::parse("lobby").unwrap();
    rooms.insert(crate::rooms::Room::public(lobby)).unwrap();
    let mut engine = Engine::new(
        EngineConfig {
            relay,
            rooms,
            ..EngineConfig::for_test(seed)
        },
        MemoryStore::default(),
        StdRng::seed_from_u64(u64::from(seed)),
        now(),
    );
    engine.set_blind_store(Box::new(BlindDb::in_memory(Bounds::default()).unwrap()));
    engine
}

fn connect(engine: &mut Engine<MemoryStore>, peer: PeerId) -> Vec<Output> {
    engine.handle(
        Input::Connected {
            peer,
            addr: "/memory/1".parse().unwrap(),
            first: true,
        },
        now(),
    )
}

fn disconnect(engine: &mut Engine<MemoryStore>, peer: PeerId) {
    engine.handle(
        Input::Disconnected {
            peer,
            addr: "/memory/1".parse().unwrap(),
            remaining: 0,
        },
        now(),
    );
}

/// The blind requests among `out`.
fn requests(out: &[Output]) -> Vec<(PeerId, u64, BlindRequest)> {
    out.iter()
        .filter_map(|o| match o {
            Output::BlindRequest {
                peer,
                token,
                request,
            } => Some((*peer, *token, request.clone())),
            _ => None,
        })
        .collect()
}

fn events(out: &[Output]) -> Vec<Event> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// Carry `from`'s request to `relay` and its answer back; returns what `from` then did.
fn exchange(
    from: &mut Engine<MemoryStore>,
    relay: &mut Engine<MemoryStore>,
    (to, token, request): (PeerId, u64, BlindRequest),
) -> Vec<Output> {
    assert_eq!(to, relay.peer_id());
    let out = relay.handle(
        Input::BlindRequest {
            peer: from.peer_id(),
            reply: 7,
            request,
        },
        now(),
    );
    let response = out
        .into_iter()
        .find_map(|o| match o {
            Output::BlindResponse { reply: 7, response } => Some(response),
            _ => None,
        })
        .expect("the relay answers at once");
    from.handle(
        Input::BlindResponse {
            peer: to,
            token,
            response,
        },
        now(),
    )
}

fn fetch_of(out: &[Output]) -> (PeerId, u64, BlindRequest) {
    requests(out)
        .into_iter()
        .find(|(_, _, r)| matches!(r, BlindRequest::Fetch { .. }))
        .expect("a fetch")
}

#[test]
fn a_dm_reaches_an_absent_peer_through_a_relay_that_cannot_open_it() {
    let (mut alice, mut bob, mut relay) = (engine(1, false), engine(2, false), engine(3, true));
    let (pa, pb, pr) = (alice.peer_id(), bob.peer_id(), relay.peer_id());

    // Bob met alice once; now he is away.
    connect(&mut bob, pa);
    disconnect(&mut bob, pa);

    // Alice, connected to the relay only, writes to bob: the sealed message goes to the relay.
    connect(&mut alice, pr);
    connect(&mut relay, pa);
    alice.handle(Input::BlindRelay { peer: pr }, now());
    let out = alice.handle(
        Input::Command(Command::Dm {
            to: pb.to_string(),
            text: "the spare key is under pump 4".into(),
        }),
        now(),
    );
    let sent_id = events(&out)
        .into_iter()
        .find_map(|e| match e {
            Event::Sent { id, .. } => Some(id),
            _ => None,
        })
        .expect("sent");
    let store = requests(&out)
        .into_iter()
        .find(|(_, _, r)| matches!(r, BlindRequest::Store { .. }))
        .expect("stored at the relay as it is sent");
    let BlindRequest::Store { items } = &store.2 else {
        unreachable!()
    };
    assert_eq!(items.len(), 1);
    let after = exchange(&mut alice, &mut relay, store);
    // The relay holds it: the sender's delivery marks name the relay.
    let delivered = events(&after).into_iter().find_map(|e| match e {
        Event::Delivered { id, peers, .. } => Some((id, peers)),
        _ => None,
    });
    assert_eq!(delivered, Some((sent_id.clone(), vec![pr.to_string()])));
    // The relay learned nothing it could show: no room, no message.
    assert!(relay.store().rooms().is_empty());

    // Bob comes back, meets only the relay, and fetches.
    connect(&mut bob, pr);
    connect(&mut relay, pb);
    let out = bob.handle(Input::BlindRelay { peer: pr }, now());
    let fetch = fetch_of(&out);
    let got = exchange(&mut bob, &mut relay, fetch);
    let got = events(&got);
    assert!(
        got.contains(&Event::Joined {
            room: format!("@{pa}")
        }),
        "{got:?}"
    );
    let message = got.iter().find_map(|e| match e {
        Event::Message {
            room,
            id,
            from,
            text,
            ..
        } => Some((room.clone(), id.clone(), from.clone(), text.clone())),
        _ => None,
    });
    assert_eq!(
        message,
        Some((
            format!("@{pa}"),
            sent_id,
            pa.to_string(),
            "the spare key is under pump 4".to_owned()
        ))
    );

    // The same items again (a restart's fetch from cursor 0, a replaying relay): nothing new.
    let again = relay.handle(
        Input::BlindRequest {
            peer: pb,
            reply: 8,
            request: BlindRequest::Fetch {
                wants: vec![hark_proto::blind::Want {
                    topic: bob
                        .find_room(&format!("@{pa}"))
                        .unwrap()
                        .chat_topic
                        .to_string(),
                    after: 0,
                }],
            },
        },
        now(),
    );
    let Some(Output::BlindResponse { response, .. }) = again.into_iter().next() else {
        panic!("no answer");
    };
    bob.blind.pending.insert(99, (pr, super::Pending::Fetch));
    let replayed = bob.handle(
        Input::BlindResponse {
            peer: pr,
            token: 99,
            response,
        },
        now(),
    );
    assert!(
        !events(&replayed)
            .iter()
            .any(|e| matches!(e, Event::Message { .. })),
        "a replay is shown once"
    );
}

#[test]
fn items_that_do_not_open_are_dropped_and_open_no_room() {
    let (mut bob, relay) = (engine(2, false), engine(3, true));
    let (pa, pr) = (engine(1, false).peer_id(), relay.peer_id());
    connect(&mut bob, pa);
    disconnect(&mut bob, pa);
    connect(&mut bob, pr);
    let fetch = fetch_of(&bob.handle(Input::BlindRelay { peer: pr }, now()));
    let BlindRequest::Fetch { wants } = &fetch.2 else {
        unreachable!()
    };
    // The DM topic bob would share with alice is asked about; an outsider who knows it hands
    // the relay junk and a message sealed under another key, on that topic.
    let dm_topic = match bob.direct_room(&pa) {
        Ok(room) => room.chat_topic.to_string(),
        Err(e) => panic!("{}", e.detail),
    };
    assert!(wants.iter().any(|w| w.topic == dm_topic), "{wants:?}");
    let mut rng = StdRng::seed_from_u64(9);
    let other = RoomKey::random(&mut rng);
    let forged = seal::seal(
        &other,
        &hark_proto::Topic::clone(&other.chat_topic()),
        b"not for you",
        &mut rng,
    );
    let response = BlindResponse::Items {
        items: vec![
            Held {
                topic: dm_topic.clone(),
                seq: 1,
                sealed: vec![0x5a; 300],
            },
            Held {
                topic: dm_topic,
                seq: 2,
                sealed: forged,
            },
        ],
        more: false,
    };
    let out = bob.handle(
        Input::BlindResponse {
            peer: pr,
            token: fetch.1,
            response,
        },
        now(),
    );
    assert!(events(&out).is_empty(), "{:?}", events(&out));
    assert!(bob.store().rooms().is_empty());
    assert_eq!(
        bob.drops().get(&crate::validate::Drop::Unauthentic),
        Some(&2)
    );
}

#[test]
fn only_a_relay_keeps_anything() {
    let (mut member, relay) = (engine(2, false), engine(3, true));
    let request = BlindRequest::Store {
        items: vec![hark_proto::blind::Sealed {
            topic: RoomKey::from_bytes([1; 32]).chat_topic().to_string(),
            sealed: vec![1; 100],
        }],
    };
    let out = member.handle(
        Input::BlindRequest {
            peer: relay.peer_id(),
            reply: 1,
            request: request.clone(),
        },
        now(),
    );
    assert!(matches!(
        &out[..],
        [Output::BlindResponse {
            response: BlindResponse::Refused { .. },
            ..
        }]
    ));
    let mut relay = relay;
    let out = relay.handle(
        Input::BlindRequest {
            peer: member.peer_id(),
            reply: 1,
            request,
        },
        now(),
    );
    assert!(matches!(
        &out[..],
        [Output::BlindResponse {
            response: BlindResponse::Stored { results },
            ..
        }] if results == &[StoreResult::Stored]
    ));
    // A topic that is no chat topic is refused whole.
    let out = relay.handle(
        Input::BlindRequest {
            peer: member.peer_id(),
            reply: 2,
            request: BlindRequest::Fetch {
                wants: vec![hark_proto::blind::Want {
                    topic: "lobby".into(),
                    after: 0,
                }],
            },
        },
        now(),
    );
    assert!(matches!(
        &out[..],
        [Output::BlindResponse {
            response: BlindResponse::Refused { .. },
            ..
        }]
    ));
}

#[test]
fn a_message_written_before_meeting_a_relay_is_stored_when_one_comes() {
    let (mut alice, mut relay) = (engine(1, false), engine(3, true));
    let pb = engine(2, false).peer_id();
    let pr = relay.peer_id();
    let out = alice.handle(
        Input::Command(Command::Dm {
            to: pb.to_string(),
            text: "written alone".into(),
        }),
        now(),
    );
    assert!(requests(&out).is_empty(), "no relay yet");
    connect(&mut alice, pr);
    let out = alice.handle(Input::BlindRelay { peer: pr }, now());
    let store = requests(&out)
        .into_iter()
        .find(|(_, _, r)| matches!(r, BlindRequest::Store { .. }))
        .expect("the outbox goes to the relay");
    exchange(&mut alice, &mut relay, store);
    assert!(alice.blind.outbox.is_empty(), "held: not offered again");
    // A public room's messages are not handed to relays (a relay in the room syncs them).
    let out = alice.handle(
        Input::Command(Command::Send {
            room: "lobby".into(),
            text: "hello all".into(),
        }),
        now(),
    );
    assert!(requests(&out).is_empty());
}

/// An item sealed by a member of a private room, carrying `record` as the next change of the
/// member's `history`, as a relay would hand it over.
fn sealed_change(
    room: &crate::rooms::Room,
    history: &mut crate::history::RoomHistory,
    author: &[u8],
    record: &hark_proto::MessageRecord,
) -> Vec<u8> {
    let added = history.add_local(record).expect("the record goes in");
    let envelope = hark_proto::Envelope {
        author: author.to_vec(),
        name: "mallory".into(),
        id: hark_proto::MessageId(record.id.0),
        sent_at_ms: 1_796_083_200_000,
        body: hark_proto::Body::Change {
            shard: added.shard,
            change: added.bytes,
        },
    };
    let mut rng = StdRng::seed_from_u64(5);
    seal::seal(
        &room.key,
        &room.chat_topic,
        &envelope.encode().unwrap(),
        &mut rng,
    )
}

#[test]
fn records_from_a_relay_must_carry_their_authors_signature() {
    // Bob and mallory share a private room; mallory writes, a relay hands it to bob.
    let key = RoomKey::from_bytes([42; 32]);
    let room = crate::rooms::Room::new(hark_proto::RoomName::parse("ops").unwrap(), key, true);
    let mut bob = engine(2, false);
    assert!(bob.add_room(room.clone()).is_ok());
    let mallory = Keypair::ed25519_from_bytes([4; 32]).unwrap();
    let pr = engine(3, true).peer_id();
    connect(&mut bob, pr);
    let fetch = fetch_of(&bob.handle(Input::BlindRelay { peer: pr }, now()));

    let record = |n: u8, text: &str| {
        let mut record = hark_proto::MessageRecord {
            id: hark_proto::MessageId([n; 16]),
            author: mallory.public().to_peer_id().to_bytes(),
            name: "mallory".into(),
            hlc: hark_proto::Hlc::new(1_796_083_200_000 + u64::from(n), 0),
            kind: hark_proto::MessageKind::Text,
            text: text.into(),
            signature: Vec::new(),
        };
        crate::history::authorship::sign(&mut record, &mallory, room.chat_topic.as_str());
        record
    };
    let good = record(1, "signed");
    let mut forged = record(2, "signature does not match");
    forged.text = "altered after signing".into();
    let topic = room.chat_topic.to_string();
    let actor = mallory.public().to_peer_id().to_bytes();
    let mut history =
        crate::history::RoomHistory::new(actor.clone(), std::collections::BTreeMap::new());
    let forged = sealed_change(&room, &mut history, &actor, &forged);
    let good = sealed_change(&room, &mut history, &actor, &good);
    let response = BlindResponse::Items {
        items: vec![
            Held {
                topic: topic.clone(),
                seq: 1,
                sealed: forged,
            },
            Held {
                topic,
                seq: 2,
                sealed: good,
            },
        ],
        more: false,
    };
    let out = bob.handle(
        Input::BlindResponse {
            peer: pr,
            token: fetch.1,
            response,
        },
        now(),
    );
    let shown: Vec<String> = events(&out)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message { text, .. } => Some(text),
            _ => None,
        })
        .collect();
    // The envelope's author is mallory and it opened under the key, yet the relay is not
    // mallory: the record whose signature fails is not shown.
    assert_eq!(shown, vec!["signed".to_owned()]);
}

#[test]
fn a_relay_answering_more_with_nothing_we_asked_for_gets_no_cursor_and_no_refetch() {
    let mut bob = engine(2, false);
    let (pa, pr) = (engine(1, false).peer_id(), engine(3, true).peer_id());
    connect(&mut bob, pa);
    connect(&mut bob, pr);
    let fetch = fetch_of(&bob.handle(Input::BlindRelay { peer: pr }, now()));
    // Topics bob never asked about, and `more` forever: before, each became a cursor and
    // each answer a new fetch at once.
    let items = (0..64)
        .map(|i| Held {
            topic: format!("hark/1/chat/{i:032x}"),
            seq: 1,
            sealed: vec![0x5a; 64],
        })
        .collect();
    let out = bob.handle(
        Input::BlindResponse {
            peer: pr,
            token: fetch.1,
            response: BlindResponse::Items { items, more: true },
        },
        now(),
    );
    assert!(requests(&out).is_empty(), "fetched again at once");
    assert!(bob
        .blind
        .cursors
        .get(&pr)
        .is_none_or(|cursors| cursors.is_empty()));
}
