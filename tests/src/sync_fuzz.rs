//! What `fuzz/fuzz_targets/sync_body.rs` does with one input, shared with the replay of the
//! inputs it found (`tests/tests/history_hostile.rs`), which runs in `make test`.
//!
//! The input's first byte picks a mode: a [`SyncBody`] as the node decodes it after opening (its
//! shard messages fed to a [`Shard`]), a raw Automerge sync message, a raw gossip change, a
//! mutated well-formed template (sync messages that carry changes, honest and forged changes),
//! or a hostile but well-formed change built with Automerge from the input (any actor; puts of
//! any value under any key, deletes, nested objects) and delivered by a real sync exchange.
//! Each sync message goes to an empty shard and to one that already holds messages. Random
//! bytes rarely pass Automerge's framing and checksums; the last two modes reach further.
//!
//! Nothing here may panic outside `Shard`'s `catch_unwind` guard (see the fuzz target's doc
//! for why the fuzzer reports panics inside it too).

use std::sync::OnceLock;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, Change, ObjType, ScalarValue, ROOT};
use hark_node::history::shard::record_in_change;
use hark_node::history::{Applied, Shard};
use hark_proto::sync::SyncBody;
use hark_proto::{Hlc, MessageId, MessageKind, MessageRecord};

const ALICE: [u8; 38] = [1; 38];
const BOB: [u8; 38] = [2; 38];
const US: [u8; 38] = [3; 38];

fn record(author: &[u8], n: u8, text: &str) -> MessageRecord {
    MessageRecord {
        id: MessageId([n; 16]),
        author: author.to_vec(),
        name: "alice".into(),
        hlc: Hlc::new(1_790_000_000_000 + n as u64, 0),
        kind: MessageKind::Text,
        text: text.into(),
        signature: Vec::new(),
    }
}

struct Templates {
    /// A saved shard that holds three messages (the "victim" a hostile peer writes to).
    victim: Vec<u8>,
    /// Sync messages seen while an empty shard catches up with the victim, and back.
    sync_messages: Vec<Vec<u8>>,
    /// Raw changes: honest ones and a forged one (record author is not the actor).
    changes: Vec<Vec<u8>>,
}

fn templates() -> &'static Templates {
    static T: OnceLock<Templates> = OnceLock::new();
    T.get_or_init(|| {
        let mut alice = Shard::new(&ALICE);
        let mut changes = Vec::new();
        for (n, text) in [(1, "one"), (2, "two"), (3, "three")] {
            changes.push(alice.add_local(&record(&ALICE, n, text)).expect("a change"));
        }
        let mut bob = Shard::new(&BOB);
        changes.push(
            bob.add_local(&record(&ALICE, 9, "forged"))
                .expect("a change"),
        );
        let mut sync_messages = Vec::new();
        let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
        for _ in 0..8 {
            let ab = alice.generate(&mut sa);
            if let Some(m) = &ab {
                sync_messages.push(m.clone());
                let _ = bob.receive(&mut sb, m);
            }
            let ba = bob.generate(&mut sb);
            if let Some(m) = &ba {
                sync_messages.push(m.clone());
                let _ = alice.receive(&mut sa, m);
            }
            if ab.is_none() && ba.is_none() {
                break;
            }
        }
        Templates {
            victim: alice.save(),
            sync_messages,
            changes,
        }
    })
}

fn victim() -> Shard {
    Shard::load(&US, &[templates().victim.clone()]).expect("the victim template loads")
}

/// Feed one sync message to an empty shard and to the victim; each must still answer after,
/// and what the node would store must load again after a restart and compact (`save`, which
/// the node calls unguarded when a shard has many chunks).
fn receive_everywhere(message: &[u8]) {
    for (base, mut shard) in [
        (None, Shard::new(&US)),
        (Some(&templates().victim), victim()),
    ] {
        let mut state = sync::State::new();
        let Ok((_, stored)) = shard.receive(&mut state, message) else {
            continue;
        };
        let _ = shard.generate(&mut state);
        let _ = shard.records();
        let _ = shard.digest();
        if stored.is_empty() {
            continue;
        }
        let chunks: Vec<Vec<u8>> = base.cloned().into_iter().chain([stored]).collect();
        if let Ok(mut reloaded) = Shard::load(&US, &chunks) {
            let _ = reloaded.records();
            let _ = Shard::load(&US, &[reloaded.save()]);
        }
    }
}

/// Try bytes as a gossip change from their own actor (the only author the node accepts).
fn gossip_everywhere(bytes: &[u8]) {
    let _ = record_in_change(bytes);
    let author = Change::from_bytes(bytes.to_vec())
        .map(|c| c.actor_id().to_bytes().to_vec())
        .unwrap_or_else(|_| ALICE.to_vec());
    for (base, mut shard) in [
        (None, Shard::new(&US)),
        (Some(&templates().victim), victim()),
    ] {
        let applied = shard.apply_gossip(bytes, &author);
        // After a caught panic the node drops the shard and reloads it; so do we.
        if matches!(applied, Err(hark_node::history::ShardError::Panicked)) {
            continue;
        }
        // Reading the shard applies a held-back change; what it added is then to store.
        let _ = shard.records();
        let stored = match applied {
            Ok(Applied::New { bytes, .. }) => Some(bytes),
            Ok(Applied::Deferred { .. }) => Some(shard.take_unstored()),
            _ => None,
        };
        if let Some(stored) = stored {
            let chunks: Vec<Vec<u8>> = base.cloned().into_iter().chain([stored]).collect();
            if let Ok(mut reloaded) = Shard::load(&US, &chunks) {
                let _ = Shard::load(&US, &[reloaded.save()]);
            }
        }
    }
}

/// Bytes -> a stream of small numbers.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

/// Mutate a template: a list of (offset, xor) edits, then an optional truncation.
fn mutate(template: &[u8], r: &mut Reader) -> Vec<u8> {
    let mut bytes = template.to_vec();
    let edits = r.byte().unwrap_or(0) % 8;
    for _ in 0..edits {
        let (Some(hi), Some(lo), Some(x)) = (r.byte(), r.byte(), r.byte()) else {
            break;
        };
        if !bytes.is_empty() {
            let at = (usize::from(hi) << 8 | usize::from(lo)) % bytes.len();
            bytes[at] ^= x;
        }
    }
    if let Some(cut) = r.byte() {
        if cut & 0x80 != 0 && !bytes.is_empty() {
            let keep = usize::from(cut & 0x7f) * bytes.len() / 128;
            bytes.truncate(keep);
        }
    }
    bytes
}

/// Build a hostile but well-formed change with Automerge from the input, on top of the victim's
/// history or not, and deliver it to the victim by a real sync exchange.
fn hostile_change(r: &mut Reader) {
    let actor = match r.byte().unwrap_or(0) % 4 {
        0 => ALICE.to_vec(),
        1 => BOB.to_vec(),
        2 => US.to_vec(),
        _ => {
            let n = usize::from(r.byte().unwrap_or(1) % 64) + 1;
            r.take(n).to_vec()
        }
    };
    if actor.is_empty() {
        return;
    }
    let on_top = r.byte().unwrap_or(0) & 1 == 1;
    let mut doc = if on_top {
        match Automerge::load(&templates().victim) {
            Ok(doc) => doc.with_actor(ActorId::from(actor.as_slice())),
            Err(_) => return,
        }
    } else {
        Automerge::new().with_actor(ActorId::from(actor.as_slice()))
    };
    let changes = usize::from(r.byte().unwrap_or(0) % 3) + 1;
    for _ in 0..changes {
        let mut tx = doc.transaction();
        let ops = usize::from(r.byte().unwrap_or(0) % 4) + 1;
        for _ in 0..ops {
            let key = match r.byte().unwrap_or(0) % 4 {
                0 => MessageId([1; 16]).to_hex(),
                1 => MessageId([9; 16]).to_hex(),
                2 => String::new(),
                _ => {
                    let n = usize::from(r.byte().unwrap_or(0) % 40);
                    String::from_utf8_lossy(r.take(n)).into_owned()
                }
            };
            let _ = match r.byte().unwrap_or(0) % 6 {
                0 => {
                    let n = usize::from(r.byte().unwrap_or(0));
                    tx.put(ROOT, &key, ScalarValue::Bytes(r.take(n).to_vec()))
                }
                1 => {
                    // A well-formed record, by an author the input picks.
                    let author = if r.byte().unwrap_or(0) & 1 == 0 {
                        actor.clone()
                    } else {
                        ALICE.to_vec()
                    };
                    let rec = record(&author, r.byte().unwrap_or(1), "hostile");
                    let key = if r.byte().unwrap_or(0) & 1 == 0 {
                        rec.id.to_hex()
                    } else {
                        key
                    };
                    match rec.encode() {
                        Ok(v) => tx.put(ROOT, &key, ScalarValue::Bytes(v)),
                        Err(_) => Ok(()),
                    }
                }
                2 => tx.delete(ROOT, &key),
                3 => tx.put(
                    ROOT,
                    &key,
                    ScalarValue::Int(i64::from(r.byte().unwrap_or(0))),
                ),
                4 => tx
                    .put_object(ROOT, &key, ObjType::Map)
                    .and_then(|obj| tx.put(&obj, "x", ScalarValue::Null)),
                _ => tx
                    .put_object(ROOT, &key, ObjType::List)
                    .and_then(|list| tx.insert(&list, 0, ScalarValue::Str("y".into()))),
            };
        }
        tx.commit();
    }
    // Also as raw gossip changes, one by one.
    for change in doc.get_changes(&[]) {
        gossip_everywhere(change.raw_bytes());
    }
    // Sync the hostile document into the victim.
    let mut target = victim();
    let (mut st, mut sh) = (sync::State::new(), sync::State::new());
    for _ in 0..8 {
        let to_hostile = target.generate(&mut st);
        if let Some(m) = &to_hostile {
            if let Ok(m) = sync::Message::decode(m) {
                let _ = doc.receive_sync_message(&mut sh, m);
            }
        }
        let to_target = doc.generate_sync_message(&mut sh).map(|m| m.encode());
        if let Some(m) = &to_target {
            receive_everywhere(m);
            if target.receive(&mut st, m).is_err() {
                return;
            }
        }
        if to_hostile.is_none() && to_target.is_none() {
            break;
        }
    }
    let _ = target.records();
}

/// One fuzz input: the first byte picks what the rest is fed as.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 5 {
        // The sync body as the node decodes it after opening.
        0 => {
            if let Ok(body) = SyncBody::decode(rest) {
                for message in &body.messages {
                    receive_everywhere(&message.message);
                }
            }
        }
        // Raw Automerge sync message.
        1 => receive_everywhere(rest),
        // Raw gossip change.
        2 => gossip_everywhere(rest),
        // A mutated template.
        3 => {
            let t = templates();
            let mut r = Reader(rest);
            let pick = usize::from(r.byte().unwrap_or(0));
            let all = t.sync_messages.len() + t.changes.len();
            if all == 0 {
                return;
            }
            let pick = pick % all;
            if pick < t.sync_messages.len() {
                let bytes = mutate(&t.sync_messages[pick], &mut r);
                receive_everywhere(&bytes);
            } else {
                let bytes = mutate(&t.changes[pick - t.sync_messages.len()], &mut r);
                gossip_everywhere(&bytes);
            }
        }
        // A hostile, well-formed change built from the input.
        _ => hostile_change(&mut Reader(rest)),
    }
}
