//! A hostile room member against a node's history sync (`/hark/sync/1`, SPEC §6): requests for
//! rooms the node is not in, garbage, wrong keys, garbage bodies and Automerge messages, forged,
//! deleting and overwriting changes, absurd shard numbers and endless sessions. Every request
//! must be refused or do no harm: the node keeps running, its history is exactly what it was
//! (same ids, same order), nothing forged is shown, and an honest node still syncs all of it.
//!
//! Mallory is an in-process Hark swarm ([`SyncPeer`]) holding a replica of the room's shards
//! ([`Shard`]), so it can run honest sessions and slip its own changes into them.
//!
//! Tests marked `#[ignore]` assert what SPEC §6 and docs/security.md promise but the node does
//! not do yet; each names the bug. Run them with `cargo test -p hark-tests --test
//! history_hostile -- --ignored`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use automerge::sync::{self, ChunkList, MessageVersion};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, Change, ScalarValue, ROOT};
use hark_node::history::Shard;
use hark_node::sync::{SyncRequest, SyncResponse, MAX_ROUNDS};
use hark_node::{Event, HistoryMessage};
use hark_proto::sync::{ShardDigest, ShardMessage, SyncBody, MAX_SHARDS};
use hark_proto::{
    seal, Body, Envelope, Hlc, MessageId, MessageKind, MessageRecord, RoomKey, RoomName,
};
use hark_tests::process::{proc_status_kib, DELIVERY};
use hark_tests::raw::RawPeer;
use hark_tests::sync_fuzz;
use hark_tests::sync_peer::SyncPeer;
use hark_tests::NodeProcess;
use libp2p::PeerId;
use rand::rngs::{OsRng, StdRng};
use rand::{Rng, RngCore, SeedableRng};

/// One sync answer on a loaded 2-core machine.
const ANSWER: Duration = Duration::from_secs(20);
/// A fresh node catching up on a small room.
const CATCH_UP: Duration = Duration::from_secs(60);

const FORGED: &str = "forged by mallory";

fn lobby() -> RoomKey {
    RoomKey::public(&RoomName::parse("lobby").expect("valid name"))
}

fn ids(messages: &[HistoryMessage]) -> Vec<String> {
    messages.iter().map(|m| m.id.clone()).collect()
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

fn record(id: MessageId, author: &[u8], text: &str) -> MessageRecord {
    MessageRecord {
        id,
        author: author.to_vec(),
        name: "mallory".into(),
        hlc: Hlc::new(1_790_000_000_000, 0),
        kind: MessageKind::Text,
        text: text.into(),
        // Unsigned: fine from its author in person, never when relayed by anyone else.
        signature: Vec::new(),
    }
}

/// An Automerge sync message that says nothing (no heads, no changes): valid, harmless.
fn empty_sync_message() -> Vec<u8> {
    sync::Message {
        heads: Vec::new(),
        need: Vec::new(),
        have: Vec::new(),
        changes: ChunkList::from(Vec::<Vec<u8>>::new()),
        flags: None,
        version: MessageVersion::V1,
    }
    .encode()
}

fn open_body(key: &RoomKey, response: &SyncResponse) -> Result<SyncBody, String> {
    if let Some(why) = &response.error {
        return Err(format!("refused: {why}"));
    }
    let plain = seal::open(key, &key.sync_channel(), &response.sealed)
        .map_err(|e| format!("response does not open: {e}"))?;
    SyncBody::decode(&plain).map_err(|e| format!("response body: {e}"))
}

/// A room member with its own replica of the room's history, talking to one node.
struct Mallory {
    peer: SyncPeer,
    node: PeerId,
    key: RoomKey,
    actor: Vec<u8>,
    shards: BTreeMap<u32, Shard>,
}

impl Mallory {
    fn connect(node: &NodeProcess) -> Self {
        let mut peer = SyncPeer::new();
        let target: PeerId = node.peer_id.parse().expect("peer id");
        peer.dial(&node.addr());
        assert!(
            peer.wait_connected(&target, DELIVERY),
            "mallory connects to {}",
            node.name
        );
        let actor = peer.peer_id.to_bytes();
        Self {
            peer,
            node: target,
            key: lobby(),
            actor,
            shards: BTreeMap::new(),
        }
    }

    /// Send one request; the node must answer it (a refusal is an answer).
    fn send(&self, request: SyncRequest) -> SyncResponse {
        self.peer
            .request(&self.node, request, ANSWER)
            .unwrap_or_else(|e| panic!("the node did not answer a sync request: {e}"))
    }

    fn sealed(&self, body: &SyncBody) -> Vec<u8> {
        seal::seal(
            &self.key,
            &self.key.sync_channel(),
            &body.encode(),
            &mut OsRng,
        )
    }

    fn request(&self, sealed: Vec<u8>) -> SyncRequest {
        SyncRequest {
            room: self.key.chat_topic().as_str().to_owned(),
            sealed,
        }
    }

    fn send_body(&self, body: &SyncBody) -> SyncResponse {
        self.send(self.request(self.sealed(body)))
    }

    fn digests(&mut self) -> Vec<ShardDigest> {
        self.shards
            .iter_mut()
            .map(|(&shard, doc)| ShardDigest {
                shard,
                heads: doc.digest(),
            })
            .collect()
    }

    /// One honest session, as a node runs it: digests first, then sync messages for the shards
    /// that differ until an exchange in which neither side says anything. Whatever our replica
    /// holds that the node lacks (including changes we forged into it) goes to the node.
    fn sync(&mut self) -> Result<(), String> {
        let ours = self.digests();
        let mut states: BTreeMap<u32, sync::State> = BTreeMap::new();
        let mut differing: BTreeSet<u32> = BTreeSet::new();
        let mut body = SyncBody {
            digests: Some(ours.clone()),
            messages: Vec::new(),
        };
        for _ in 0..MAX_ROUNDS {
            let sent_nothing = body.messages.is_empty();
            let reply = open_body(&self.key, &self.send_body(&body))?;
            for ShardMessage { shard, message } in &reply.messages {
                let state = states.entry(*shard).or_default();
                let doc = self
                    .shards
                    .entry(*shard)
                    .or_insert_with(|| Shard::new(&self.actor));
                doc.receive(state, message).map_err(|e| e.to_string())?;
            }
            if let Some(theirs) = &reply.digests {
                let ours: BTreeMap<u32, [u8; 32]> =
                    ours.iter().map(|d| (d.shard, d.heads)).collect();
                let theirs: BTreeMap<u32, [u8; 32]> =
                    theirs.iter().map(|d| (d.shard, d.heads)).collect();
                differing = ours
                    .keys()
                    .chain(theirs.keys())
                    .filter(|s| ours.get(s) != theirs.get(s))
                    .copied()
                    .collect();
            }
            if sent_nothing && reply.messages.is_empty() {
                return Ok(());
            }
            let mut messages = Vec::new();
            for &shard in &differing {
                let state = states.entry(shard).or_default();
                let doc = self
                    .shards
                    .entry(shard)
                    .or_insert_with(|| Shard::new(&self.actor));
                if let Some(message) = doc.generate(state) {
                    messages.push(ShardMessage { shard, message });
                }
            }
            body = SyncBody {
                digests: None,
                messages,
            };
        }
        Err("the session did not settle".into())
    }

    /// Whether the node's digest of `shard` is ours, i.e. everything we slipped in reached it.
    /// (Starts a session the next one replaces.)
    fn node_has(&mut self, shard: u32) -> bool {
        let ours = self.shards.get_mut(&shard).map(Shard::digest);
        let digests = self.digests();
        let reply = self.send_body(&SyncBody {
            digests: Some(digests),
            messages: Vec::new(),
        });
        open_body(&self.key, &reply)
            .ok()
            .and_then(|body| body.digests)
            .is_some_and(|theirs| {
                theirs
                    .iter()
                    .any(|d| d.shard == shard && Some(d.heads) == ours)
            })
    }

    /// Every message id our replica holds, as valid messages.
    fn record_ids(&mut self) -> BTreeSet<String> {
        self.shards
            .values_mut()
            .flat_map(|s| s.records())
            .map(|r| r.id.to_hex())
            .collect()
    }

    /// The shard holding the node's messages (the test sends them all today).
    fn today(&mut self) -> u32 {
        self.shards
            .iter_mut()
            .find_map(|(&shard, s)| (!s.records().is_empty()).then_some(shard))
            .expect("a shard with messages")
    }

    /// Rewrite one shard of our replica with Automerge as `actor` (any bytes: Automerge does not
    /// check who an actor is), keeping everything it already holds.
    fn edit(&mut self, shard: u32, actor: &[u8], edit: impl FnOnce(&mut Automerge)) {
        let saved = self
            .shards
            .get_mut(&shard)
            .map(|s| s.save())
            .unwrap_or_default();
        let mut doc = if saved.is_empty() {
            Automerge::new()
        } else {
            Automerge::load(&saved).expect("our replica loads")
        }
        .with_actor(ActorId::from(actor));
        edit(&mut doc);
        let shard_doc = Shard::load(&self.actor, &[doc.save()]).expect("edited replica loads");
        self.shards.insert(shard, shard_doc);
    }
}

/// One way to tamper with a shard, applied to mallory's replica before a session.
type Forgery<'a> = Box<dyn FnOnce(&mut Automerge) + 'a>;

/// Add one change putting `value` under `key` at the root.
fn put(doc: &mut Automerge, key: &str, value: ScalarValue) {
    let mut tx = doc.transaction();
    tx.put(ROOT, key, value).expect("put");
    tx.commit();
}

fn put_record(doc: &mut Automerge, key: &str, record: &MessageRecord) {
    put(
        doc,
        key,
        ScalarValue::Bytes(record.encode().expect("a valid record")),
    );
}

/// What a response to a hostile request may be.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Refused,
    /// Answered, refused or not: the checks on history afterwards decide.
    Answered,
}

fn check(label: &str, response: &SyncResponse, expect: Expect, key: &RoomKey) {
    match expect {
        Expect::Refused => assert!(
            response.error.is_some() && response.sealed.is_empty(),
            "{label}: expected a refusal, got {response:?}"
        ),
        Expect::Answered => {
            if response.error.is_none() {
                open_body(key, response)
                    .unwrap_or_else(|e| panic!("{label}: the answer is not a sync body: {e}"));
            }
        }
    }
}

/// The node's stored history, and every `message` event it raised so far.
fn shown(node: &mut NodeProcess) -> (Vec<HistoryMessage>, Vec<(String, String, String)>) {
    let history = node.history("lobby", 1000);
    node.drain();
    let events = node
        .seen
        .iter()
        .filter_map(|e| match e {
            Event::Message { id, from, text, .. } => Some((id.clone(), from.clone(), text.clone())),
            _ => None,
        })
        .collect();
    (history, events)
}

#[test]
fn hostile_sync_requests_are_refused_or_harmless() {
    let mut a = NodeProcess::start("alice", &[]);
    let sent = a.send_burst("lobby", "before", 5);
    let before = a.history("lobby", 100);
    assert_eq!(ids(&before), sent, "alice's own messages in sending order");
    let alice: PeerId = a.peer_id.parse().expect("peer id");

    let mut m = Mallory::connect(&a);
    m.sync().expect("an honest session works");
    assert_eq!(
        m.record_ids(),
        sent.iter().cloned().collect(),
        "mallory's replica holds the room"
    );
    let today = m.today();
    let key = lobby();
    let start = SyncBody {
        digests: Some(m.digests()),
        messages: Vec::new(),
    };
    let mut cases: Vec<(&str, SyncRequest, Expect)> = Vec::new();

    // A room the node is not in, named every way.
    let other = RoomKey::public(&RoomName::parse("elsewhere").expect("name"));
    for (label, room) in [
        ("unknown room topic", other.chat_topic().as_str().to_owned()),
        ("room topic empty", String::new()),
        ("room topic is the plain name", "lobby".to_owned()),
        ("room topic 64 KiB long", "x".repeat(64 * 1024)),
    ] {
        let request = SyncRequest {
            room,
            sealed: m.sealed(&start),
        };
        cases.push((label, request, Expect::Refused));
    }

    // Garbage instead of a sealed body, of every size up to a huge frame.
    for (label, len) in [
        ("sealed empty", 0),
        ("sealed 10 random bytes", 10),
        ("sealed 40 random bytes (nonce and tag only)", 40),
        ("sealed 1000 random bytes", 1000),
        ("sealed 70 000 random bytes", 70_000),
        ("sealed 2 MiB random bytes", 2 << 20),
    ] {
        cases.push((label, m.request(random_bytes(len)), Expect::Refused));
    }

    // A valid body under the wrong key or channel.
    let wrong = RoomKey::random(&mut OsRng);
    let body = start.encode();
    cases.push((
        "sealed under another key",
        m.request(seal::seal(&wrong, &key.sync_channel(), &body, &mut OsRng)),
        Expect::Refused,
    ));
    cases.push((
        "sealed for the chat topic, not the sync channel",
        m.request(seal::seal(&key, &key.chat_topic(), &body, &mut OsRng)),
        Expect::Refused,
    ));
    cases.push((
        "sealed for another room's sync channel",
        m.request(seal::seal(&other, &other.sync_channel(), &body, &mut OsRng)),
        Expect::Refused,
    ));

    // Sealed correctly, but not a sync body.
    let mut trailing = start.encode();
    trailing.push(0);
    let too_many = SyncBody {
        digests: Some(
            (0..=MAX_SHARDS as u32)
                .map(|shard| ShardDigest {
                    shard,
                    heads: [7; 32],
                })
                .collect(),
        ),
        messages: Vec::new(),
    };
    for (label, plain) in [
        ("body empty", Vec::new()),
        ("body version only", vec![1]),
        ("body of an unknown version", vec![2, 0, 0]),
        (
            "body with a forged huge count",
            vec![1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f],
        ),
        ("body of 0xff", {
            let mut b = vec![0xff; 64];
            b[0] = 1;
            b
        }),
        ("body of random bytes", {
            let mut b = random_bytes(1000);
            b[0] = 1;
            b
        }),
        ("body with bytes after it", trailing),
        ("body naming more than MAX_SHARDS shards", too_many.encode()),
    ] {
        let sealed = seal::seal(&key, &key.sync_channel(), &plain, &mut OsRng);
        cases.push((label, m.request(sealed), Expect::Refused));
    }

    // A valid body whose Automerge sync messages are garbage.
    let mut v1 = random_bytes(200);
    v1[0] = 0x42;
    let mut v2 = random_bytes(200);
    v2[0] = 0x43;
    let honest = m
        .shards
        .get_mut(&today)
        .and_then(|s| s.generate(&mut sync::State::new()))
        .expect("a sync message");
    for (label, messages) in [
        ("sync message is text", vec![b"junk".to_vec()]),
        ("sync message empty", vec![Vec::new()]),
        ("sync message type byte only", vec![vec![0x42]]),
        ("sync message v1 random", vec![v1]),
        ("sync message v2 random", vec![v2]),
        (
            "sync message truncated",
            vec![honest[..honest.len() / 2].to_vec()],
        ),
        (
            "a valid sync message, then junk",
            vec![honest.clone(), b"junk".to_vec()],
        ),
    ] {
        let body = SyncBody {
            digests: None,
            messages: messages
                .into_iter()
                .map(|message| ShardMessage {
                    shard: today,
                    message,
                })
                .collect(),
        };
        cases.push((label, m.request(m.sealed(&body)), Expect::Refused));
    }

    // Absurd shard numbers: harmless at worst.
    for (label, body) in [
        (
            "digest of shard u32::MAX",
            SyncBody {
                digests: Some(vec![ShardDigest {
                    shard: u32::MAX,
                    heads: [0xee; 32],
                }]),
                messages: Vec::new(),
            },
        ),
        (
            "sync message for shard u32::MAX",
            SyncBody {
                digests: None,
                messages: vec![ShardMessage {
                    shard: u32::MAX,
                    message: empty_sync_message(),
                }],
            },
        ),
    ] {
        cases.push((label, m.request(m.sealed(&body)), Expect::Answered));
    }

    for (label, request, expect) in cases {
        let response = m.send(request);
        check(label, &response, expect, &key);
        assert!(a.is_running(), "alice survived {label}:\n{}", a.stderr());
    }

    // Changes slipped into honest sessions. Each one reaches the node (its session succeeds)
    // and must show nothing.
    let victim = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let mallory = m.actor.clone();
    let existing: Vec<MessageId> = sent
        .iter()
        .map(|id| hark_node::history::shard::id_from_key(id).expect("an id"))
        .collect();
    let forgeries: Vec<(&str, Forgery)> = vec![
        (
            "a record by alice inside mallory's change",
            Box::new(|doc| {
                let r = record(MessageId::random(&mut OsRng), &alice.to_bytes(), FORGED);
                put_record(doc, &r.id.to_hex(), &r);
            }),
        ),
        (
            "a record by a third peer inside mallory's change",
            Box::new(|doc| {
                let r = record(MessageId::random(&mut OsRng), &victim.to_bytes(), FORGED);
                put_record(doc, &r.id.to_hex(), &r);
            }),
        ),
        (
            "a delete of alice's first message",
            Box::new(|doc| {
                let mut tx = doc.transaction();
                tx.delete(ROOT, existing[0].to_hex()).expect("delete");
                tx.commit();
            }),
        ),
        (
            "mallory's record under alice's second message's id",
            Box::new(|doc| {
                let r = record(existing[1], &mallory, FORGED);
                put_record(doc, &r.id.to_hex(), &r);
            }),
        ),
        (
            "junk bytes over alice's third message",
            Box::new(|doc| {
                put(
                    doc,
                    &existing[2].to_hex(),
                    ScalarValue::Bytes(b"junk".to_vec()),
                )
            }),
        ),
        (
            "a string over alice's fourth message",
            Box::new(|doc| put(doc, &existing[3].to_hex(), ScalarValue::Str(FORGED.into()))),
        ),
        (
            "mallory's record under a key that is not its id",
            Box::new(|doc| {
                let r = record(MessageId::random(&mut OsRng), &mallory, FORGED);
                put_record(doc, &existing[4].to_hex(), &r);
            }),
        ),
        (
            "two records in one change",
            Box::new(|doc| {
                let mut tx = doc.transaction();
                for _ in 0..2 {
                    let r = record(MessageId::random(&mut OsRng), &mallory, FORGED);
                    tx.put(
                        ROOT,
                        r.id.to_hex(),
                        ScalarValue::Bytes(r.encode().expect("record")),
                    )
                    .expect("put");
                }
                tx.commit();
            }),
        ),
    ];
    for (label, forge) in forgeries {
        m.edit(today, &mallory, forge);
        m.sync()
            .unwrap_or_else(|e| panic!("{label}: the session carrying it failed: {e}"));
        assert!(a.is_running(), "alice survived {label}:\n{}", a.stderr());
        assert!(m.node_has(today), "{label}: the change reached alice");
    }
    // A forged record with no history under it, in a shard of its own (yesterday).
    m.edit(today - 1, &mallory, |doc| {
        let r = record(MessageId::random(&mut OsRng), &alice.to_bytes(), FORGED);
        put_record(doc, &r.id.to_hex(), &r);
    });
    m.sync().expect("the session with a new shard");
    assert!(m.node_has(today - 1), "the new shard reached alice");

    // A session that never settles: every request carries a sync message. The node gives up
    // after MAX_ROUNDS exchanges.
    let first = m.send_body(&start);
    check("a session start", &first, Expect::Answered, &key);
    let endless = SyncBody {
        digests: None,
        messages: vec![ShardMessage {
            shard: today,
            message: honest.clone(),
        }],
    };
    let mut refused_at = None;
    for round in 2..=MAX_ROUNDS + 2 {
        let response = m.send_body(&endless);
        check("an endless session", &response, Expect::Answered, &key);
        if response.error.as_deref() == Some("too many rounds") {
            refused_at = Some(round);
            break;
        }
    }
    assert_eq!(
        refused_at,
        Some(MAX_ROUNDS + 1),
        "the node ends a session after {MAX_ROUNDS} rounds"
    );
    m.sync()
        .expect("a new honest session after the endless one");

    // The node is whole: running, the same history, nothing shown.
    assert!(a.is_running(), "alice survived:\n{}", a.stderr());
    let (after, events) = shown(&mut a);
    assert_eq!(after, before, "alice's history is exactly what it was");
    assert!(
        events.is_empty(),
        "alice showed messages nobody honest sent: {events:?}"
    );

    // An honest newcomer still gets the room, and nothing else.
    let mut b = NodeProcess::start("bob", &["--peer", &a.addr()]);
    let b_history = b.wait_history_len("lobby", before.len(), CATCH_UP);
    assert_eq!(
        ids(&b_history),
        ids(&before),
        "bob has alice's messages:\n{}",
        b.stderr()
    );
    b.expect(
        "a finished sync with alice",
        CATCH_UP,
        |e| matches!(e, Event::Synced { peer_id, .. } if *peer_id == a.peer_id),
    );
    let (b_after, b_events) = shown(&mut b);
    assert_eq!(b_after, before, "bob prints the room as alice does");
    let shown_ids: BTreeSet<String> = b_events.iter().map(|(id, _, _)| id.clone()).collect();
    assert_eq!(
        shown_ids,
        sent.iter().cloned().collect(),
        "bob showed alice's messages and nothing else: {b_events:?}"
    );
    assert!(
        b_events
            .iter()
            .all(|(_, from, text)| *from == a.peer_id && text != FORGED),
        "bob showed nothing forged: {b_events:?}"
    );
}

/// Docs/security.md: "a room member cannot post as another peer". Over gossip the change's
/// actor must be the signed sender; over sync nothing ties a change's actor to anyone, so a
/// member writes a change whose actor *is* the victim's peer id and a record by the victim.
#[test]
fn a_member_cannot_post_as_another_peer_through_sync() {
    let mut a = NodeProcess::start("alice", &[]);
    a.send_burst("lobby", "before", 2);
    let before = a.history("lobby", 100);
    let mut m = Mallory::connect(&a);
    m.sync().expect("an honest session");
    let today = m.today();
    let victim = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    m.edit(today, &victim.to_bytes(), |doc| {
        let r = record(MessageId::random(&mut OsRng), &victim.to_bytes(), FORGED);
        put_record(doc, &r.id.to_hex(), &r);
    });
    m.sync().expect("the session carrying the forgery");
    // Give a wrongly accepted forgery time to surface before checking it did not.
    let _ = a.wait_for(Duration::from_secs(2), |e| {
        matches!(e, Event::Message { .. })
    });
    let (after, events) = shown(&mut a);
    assert!(
        events.is_empty(),
        "alice showed a message as {victim} that mallory wrote: {events:?}"
    );
    assert_eq!(after, before, "alice's history is what it was");
}

/// One request of 4095 empty sync messages, each for another shard (36 KiB sealed), makes the
/// node create 4095 empty shards in memory, up to `MAX_SHARDS`. From then on its digest list is
/// ~140 KiB, over the 64 KiB `seal::open` accepts, so no honest peer can sync with it; and no
/// new day's shard can be created, so it can neither send nor take in messages of a new day.
#[test]
fn naming_thousands_of_shards_does_not_break_sync() {
    let mut a = NodeProcess::start("alice", &[]);
    let sent = a.send_burst("lobby", "before", 3);
    let m = Mallory::connect(&a);
    let body = SyncBody {
        digests: None,
        messages: (1..MAX_SHARDS as u32)
            .map(|shard| ShardMessage {
                shard,
                message: empty_sync_message(),
            })
            .collect(),
    };
    let response = m.send_body(&body);
    assert!(a.is_running(), "alice survived:\n{}", a.stderr());
    eprintln!(
        "response to {} shard messages: {:?}",
        MAX_SHARDS - 1,
        response.error
    );
    let mut b = NodeProcess::start("bob", &["--peer", &a.addr()]);
    let b_history = b.wait_history_len("lobby", sent.len(), CATCH_UP);
    assert_eq!(
        ids(&b_history),
        sent,
        "an honest peer still syncs; bob's log:\n{}",
        b.stderr()
    );
}

/// Not hostile, but what the hostile tests rely on: an honest newcomer gets the room. A session
/// answer carries every change the other side lacks in one sync body, and bodies are opened
/// with `seal::open`, which refuses anything over 64 KiB (the gossip limit) although sync
/// allows `MAX_SYNC_BYTES` (32 MiB). 1000 messages of 100 characters that do not compress
/// (~105 KiB) then never reach a newcomer: every session fails, on both sides.
#[test]
fn an_honest_newcomer_gets_more_than_64_kib_of_history() {
    let mut a = NodeProcess::start("alice", &[]);
    let count = 1000;
    for i in 0..count {
        let text: String = random_bytes(50)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        a.send(serde_json::json!({"cmd": "send", "room": "lobby", "text": text}));
        if i % 50 == 49 {
            // Keep the node's stdin from running far ahead of it.
            a.expect("sent", DELIVERY, |e| matches!(e, Event::Sent { .. }));
        }
    }
    assert_eq!(a.wait_history_len("lobby", count, CATCH_UP).len(), count);
    let mut b = NodeProcess::start("bob", &["--peer", &a.addr()]);
    let got = b.wait_history_len("lobby", count, CATCH_UP).len();
    assert_eq!(got, count, "bob caught up; bob's log:\n{}", b.stderr());
}

/// Automerge keeps changes whose dependencies it lacks in an in-memory queue, unbounded, and a
/// sync message may carry any number of them: each request grows the node for good (the queue
/// is never stored, never trimmed, and the round limit does not apply to a new session).
#[test]
fn changes_with_missing_dependencies_do_not_grow_memory() {
    let mut a = NodeProcess::start("alice", &[]);
    a.send_burst("lobby", "before", 1);
    let mut m = Mallory::connect(&a);
    m.sync().expect("an honest session");
    let today = m.today();
    let start_kib = proc_status_kib(a.pid(), "VmRSS:");
    let mut rng = StdRng::seed_from_u64(1);
    let requests = 600;
    for _ in 0..requests {
        // 40 changes of ~1 KiB, each depending on the one before, sent without the first.
        let mut actor = [0u8; 16];
        rng.fill_bytes(&mut actor);
        let mut doc = Automerge::new().with_actor(ActorId::from(&actor[..]));
        for i in 0..41 {
            let mut value = vec![0u8; 1024];
            rng.fill_bytes(&mut value);
            put(&mut doc, &format!("k{i}"), ScalarValue::Bytes(value));
        }
        let changes = doc.get_changes(&[]);
        let orphans: Vec<Vec<u8>> = changes[1..]
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect();
        let message = sync::Message {
            heads: Vec::new(),
            need: Vec::new(),
            have: Vec::new(),
            changes: ChunkList::from(orphans),
            flags: None,
            version: MessageVersion::V1,
        }
        .encode();
        let body = SyncBody {
            digests: Some(m.digests()),
            messages: vec![ShardMessage {
                shard: today,
                message,
            }],
        };
        let response = m.send_body(&body);
        assert!(a.is_running(), "alice survived:\n{}", a.stderr());
        if rng.gen_ratio(1, 100) {
            eprintln!("response: {:?}", response.error);
        }
    }
    let grown_kib = proc_status_kib(a.pid(), "VmRSS:").saturating_sub(start_kib);
    assert!(
        grown_kib < 16 * 1024,
        "{requests} requests of ~40 KiB of unappliable changes grew alice by {grown_kib} KiB"
    );
}

/// Seeded random inputs through the very code the `sync_body` fuzz target runs, so `make test`
/// covers it without cargo fuzz. A panic inside Automerge that `Shard` catches passes here (the
/// node survives it); any other panic fails.
#[test]
fn sync_body_fuzz_code_survives_random_inputs() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for i in 0..500u32 {
        let mut data = vec![0u8; rng.gen_range(1..400)];
        rng.fill_bytes(&mut data);
        data[0] = (i % 5) as u8;
        sync_fuzz::run(&data);
    }
}

/// Every input the `sync_body` fuzz target crashed on (`fuzz/regressions/sync_body/`), replayed.
/// All three are mode 3: a change template with one byte changed, given to
/// `Shard::apply_gossip` with the change's own actor as author (what a member can gossip):
/// - `crash-18704cad…`: bob's change, byte 103 `01` -> `29` (a column run lengthened). Same
///   operation, other bytes, so another hash than the change Automerge rebuilds from its ops;
///   `get_change_by_hash` after `apply_changes` (outside `Shard`'s guard) hits Automerge's debug
///   check: `MissingDep`. Kills a debug node (`a_non_canonical_change_does_not_crash_the_node`).
/// - `crash-61934f37…`: alice's third change, byte 103 `30` -> `5d` (another key): a second,
///   different change with the same actor and seq as one the shard has. Same panic, same place.
/// - `crash-ccea1da6…`: alice's third change, byte 82 `01` -> `6c` (another actor, starting at
///   seq 3): `lookup_actor(..).unwrap()` panics inside `apply_changes`, which the guard catches
///   (`ShardError::Panicked`): the node survives this one, so it passes here.
#[test]
fn sync_body_fuzz_regressions_do_not_crash() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/sync_body");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.sort();
    for path in &paths {
        eprintln!("replaying {}", path.display());
        sync_fuzz::run(&std::fs::read(path).expect("a regression input"));
    }
    assert!(!paths.is_empty(), "regression inputs in {}", dir.display());
}

/// `change` with one column run lengthened: it still parses and decodes to the same operation,
/// but its bytes, and so its hash, are not those Automerge produces for that operation.
fn non_canonical(change: Vec<u8>, id: &MessageId) -> Vec<u8> {
    // The key column holds one 32-character string (`7f 20` + the id in hex); the byte after
    // it is the next column's run length.
    let mut key = vec![0x7f, 0x20];
    key.extend(id.to_hex().as_bytes());
    let at = change
        .windows(key.len())
        .position(|w| w == key.as_slice())
        .expect("the key column")
        + key.len();
    let mut out = change.clone();
    out[at] ^= 0x28;
    let (a, b) = (
        Change::from_bytes(change).expect("a change"),
        Change::from_bytes(out.clone()).expect("still a change"),
    );
    assert_eq!(
        format!("{:?}", a.decode().operations),
        format!("{:?}", b.decode().operations),
        "the same operations"
    );
    assert_ne!(a.hash(), b.hash(), "another hash");
    out
}

/// The fuzz crash above, through a node: a room member gossips its own message as a
/// non-canonically encoded change (signed, author = actor: valid in every other way). A debug
/// build of hark-node (what `make test` runs) loses its event loop in `Shard::apply_gossip`: the
/// process stays up but answers nothing more. A release build does not panic there (Automerge's
/// check is debug-only; replayed with `cargo fuzz run -O`), but then holds a change whose hash
/// in its heads differs from that of the bytes it stores and syncs; what that does to later
/// sessions is not tested here.
#[test]
fn a_non_canonical_change_does_not_crash_the_node() {
    let mut a = NodeProcess::start("alice", &[]);
    a.send_burst("lobby", "before", 1);
    let key = lobby();
    let topic = key.chat_topic();
    let mut raw = RawPeer::new();
    raw.subscribe(topic.as_str());
    raw.dial(&a.addr());
    assert!(raw.wait_connected(&a.peer_id, DELIVERY));
    assert!(raw.wait_subscribed(&a.peer_id, topic.as_str(), DELIVERY));
    let author = raw.peer_id.to_bytes();
    let r = record(MessageId::random(&mut OsRng), &author, "non-canonical");
    let change = Shard::new(&author).add_local(&r).expect("a change");
    let envelope = Envelope {
        author: author.clone(),
        name: "mallory".into(),
        id: r.id,
        sent_at_ms: 1,
        body: Body::Change {
            shard: r.hlc.day(),
            change: non_canonical(change, &r.id),
        },
    };
    let sealed = seal::seal(
        &key,
        &topic,
        &envelope.encode().expect("envelope"),
        &mut OsRng,
    );
    assert_eq!(raw.publish(topic.as_str(), vec![sealed]), 1);
    let shown = a.wait_for(
        DELIVERY,
        |e| matches!(e, Event::Message { text, .. } if text == "non-canonical"),
    );
    assert!(a.is_running(), "alice's process survived:\n{}", a.stderr());
    a.send(serde_json::json!({"cmd": "history", "room": "lobby", "limit": 10}));
    let answer = a.wait_for(DELIVERY, |e| matches!(e, Event::History { .. }));
    assert!(
        answer.is_some(),
        "alice still answers commands:\n{}",
        a.stderr()
    );
    // Debug builds of Automerge trip an assertion on this encoding; the node's guard turns that
    // into a rejected change (release builds accept it). Either way the node lives on.
    let _ = shown;
}
