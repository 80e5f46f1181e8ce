//! Messages whose change arrives before the changes it depends on, and what earlier builds
//! left of them in a store.

use hark_proto::sync::{ShardMessage, SyncBody};
use hark_proto::{seal, Body, Envelope};
use rand::SeedableRng;

use super::storage::Chunk;
use super::tests::{engine, engine_on, events, gossip, lobby, published, send, Clock};
use super::*;
use crate::api::{Command, Event};
use crate::history::Shard;
use crate::store::Durability;

/// The shard and Automerge change a published chat message carries.
fn change_in(data: &[u8]) -> (u32, Vec<u8>) {
    let room = lobby();
    let plain = seal::open(&room.key, &room.chat_topic, data).unwrap();
    match Envelope::decode(&plain).unwrap().body {
        Body::Change { shard, change } => (shard, change),
        other => panic!("not a change: {other:?}"),
    }
}

/// A sync request from `peer` that carries `change` alone (as a sync round does when a Bloom
/// filter's false positive left out what it depends on).
fn sync_carrying(peer: PeerId, shard: u32, change: &[u8]) -> Input {
    let room = lobby();
    let message = automerge::sync::Message {
        heads: Vec::new(),
        need: Vec::new(),
        have: Vec::new(),
        changes: vec![change.to_vec()].into(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
    .encode();
    let body = SyncBody {
        digests: None,
        messages: vec![ShardMessage { shard, message }],
    };
    let mut rng = StdRng::seed_from_u64(7);
    Input::SyncRequest {
        peer,
        reply: 0,
        request: crate::sync::SyncRequest {
            room: room.chat_topic.as_str().to_owned(),
            sealed: seal::seal(
                &room.key,
                &room.key.sync_channel(),
                &body.encode(),
                &mut rng,
            ),
        },
    }
}

fn shown(outputs: &[Output], text: &str) -> usize {
    events(outputs)
        .iter()
        .filter(|e| matches!(e, Event::Message { text: t, .. } if t == text))
        .count()
}

/// A message whose change came by sync before the one it depends on waits in Automerge's
/// queue unseen; when gossip brings the missing change, the waiting one is applied with it
/// and must be shown and stored then: its own gossip copy, arriving later, finds it known.
/// Until this was fixed such a message was never shown nor indexed (a node of
/// `tests/tests/mesh.rs`'s choked mesh missed one message in a burst, about 1 run in 40).
#[test]
fn a_message_synced_before_what_it_needs_is_shown_once_gossip_brings_that() {
    let clock = Clock::start();
    let mut a = engine(1, &clock);
    let mut b = engine(2, &clock);
    let (topic, first) = published(&send(&mut a, &clock, "one"))[0].clone();
    let (_, second) = published(&send(&mut a, &clock, "two"))[0].clone();
    let (shard, change) = change_in(&second);

    let mut out = b.handle(sync_carrying(a.peer_id(), shard, &change), clock.now());
    assert_eq!(shown(&out, "two"), 0, "two waits for one");
    out.extend(b.handle(gossip(a.peer_id(), &topic, first, 1), clock.now()));
    assert_eq!(shown(&out, "one"), 1);
    // Held "one" is applied, and "two" with it, by the room's next store transaction (here
    // the one `history` asks for).
    out.extend(ask_history(&mut b, &clock));
    assert!(
        events(&out).iter().any(|e| matches!(e,
            Event::History { messages, .. } if messages.len() == 2)),
        "history has both"
    );
    out.extend(b.handle(gossip(a.peer_id(), &topic, second, 2), clock.now()));
    b.handle(Input::Timer(Timer::SaveHeld(topic.clone())), clock.now());
    assert_eq!(shown(&out, "two"), 1, "{:?}", events(&out));
    assert_eq!(b.store().message_count(&topic), 2);
}

fn ask_history(engine: &mut Engine<MemoryStore>, clock: &Clock) -> Vec<Output> {
    engine.handle(
        Input::Command(Command::History {
            room: "lobby".into(),
            limit: None,
            before: None,
        }),
        clock.now(),
    )
}

/// The texts of the lobby's history, oldest first.
fn history(engine: &mut Engine<MemoryStore>, clock: &Clock) -> Vec<String> {
    let out = ask_history(engine, clock);
    events(&out)
        .iter()
        .find_map(|e| match e {
            Event::History { messages, .. } => {
                Some(messages.iter().map(|m| m.text.clone()).collect())
            }
            _ => None,
        })
        .expect("a history answer")
}

/// A store holding `changes` of the room `topic` with none of their messages indexed (what
/// the bug above left behind).
fn stored_unindexed(topic: &Topic, changes: &[(u32, &Vec<u8>)]) -> MemoryStore {
    let chunks: Vec<Chunk> = changes
        .iter()
        .map(|(shard, change)| (*shard, change.as_slice(), &[][..]))
        .collect();
    let mut store = MemoryStore::default();
    store
        .append_history(topic, &chunks, Durability::Now)
        .unwrap();
    store
}

/// What that bug left behind in a store (a message's change stored, its record not indexed)
/// is indexed the first time the room's history is loaded (`engine/index_check.rs`), not
/// shown as news; a record in the documents without its author's valid signature is not.
#[test]
fn a_stored_message_the_index_lacks_is_indexed_once_its_room_is_loaded() {
    let clock = Clock::start();
    let mut a = engine(1, &clock);
    let (topic, data) = published(&send(&mut a, &clock, "hello"))[0].clone();
    let (shard, change) = change_in(&data);
    let mallory = engine(3, &clock).peer_id().to_bytes();
    let forged = hark_proto::MessageRecord {
        id: hark_proto::MessageId([9; 16]),
        author: mallory.clone(),
        name: "mallory".into(),
        hlc: hark_proto::Hlc::new(1_796_083_200_000, 0),
        kind: hark_proto::MessageKind::Text,
        text: "forged".into(),
        signature: vec![7; 64],
    };
    let forged_change = Shard::new(&mallory).add_local(&forged).unwrap();

    let store = stored_unindexed(&topic, &[(shard, &change), (shard, &forged_change)]);
    let mut b = engine_on(2, &clock, store);
    assert!(
        history(&mut b, &clock).is_empty(),
        "the room is not loaded yet"
    );
    // The next gossip change loads the room's history (as a send or a sync would).
    let (_, again) = published(&send(&mut a, &clock, "again"))[0].clone();
    let out = b.handle(gossip(a.peer_id(), &topic, again, 1), clock.now());
    assert_eq!((shown(&out, "hello"), shown(&out, "again")), (0, 1));
    assert_eq!(history(&mut b, &clock), vec!["hello", "again"]);
}

/// The check indexes what it found durably before marking the room: a store that would lose
/// the next deferred batch (a write behind that fails) does not make it lose them.
#[test]
fn the_index_check_is_not_a_write_that_can_fail_behind_it() {
    let clock = Clock::start();
    let mut a = engine(1, &clock);
    let (topic, data) = published(&send(&mut a, &clock, "hello"))[0].clone();
    let (shard, change) = change_in(&data);
    let mut store = stored_unindexed(&topic, &[(shard, &change)]);
    store.lose_next_batch = true;
    let mut b = engine_on(2, &clock, store);
    let (_, again) = published(&send(&mut a, &clock, "again"))[0].clone();
    b.handle(gossip(a.peer_id(), &topic, again, 1), clock.now());
    assert!(history(&mut b, &clock).contains(&"hello".to_owned()));
}
