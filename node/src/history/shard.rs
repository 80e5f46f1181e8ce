//! One shard of a room's history: one Automerge document holding the messages of one UTC day.
//!
//! The document is a grow-only map at its root: key = message id in hex, value = the encoded
//! [`MessageRecord`] as bytes. Each message is one Automerge change made by its author (the
//! actor id is the author's peer id), so a message travels, syncs and dedupes as one change.
//!
//! What a node shows is derived from changes, not from the map's current state: every new change
//! is checked ([`valid_record`]) and only a change that puts exactly one well-formed record,
//! under its own id, authored by the change's actor, counts as a message. A hostile member's
//! deletes or overwrites therefore never hide or alter a message anyone already has.

use std::collections::HashSet;
use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{
    ActorId, Automerge, Change, ChangeHash, ObjId, ReadDoc, SaveOptions, ScalarValue,
    ScalarValueRef, ValueRef, ROOT,
};
use hark_proto::sync::heads_digest;
use hark_proto::{MessageId, MessageRecord};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ShardError {
    #[error("not an Automerge change: {0}")]
    BadChange(String),
    #[error("not an Automerge sync message: {0}")]
    BadSyncMessage(String),
    #[error("Automerge rejected the data: {0}")]
    Rejected(String),
    #[error("Automerge failed on this input (internal error caught)")]
    Panicked,
    #[error("stored history is damaged: {0}")]
    BadStored(String),
    #[error("record does not encode: {0}")]
    BadRecord(String),
}

/// What applying one gossip change did.
#[derive(Debug)]
pub enum Applied {
    /// The change was new.
    New {
        /// The valid message it carries (zero or one): shown at once, even while the change
        /// waits for its dependencies.
        records: Vec<MessageRecord>,
        /// What the document gained, to store: this change and any queued ones it unblocked
        /// (empty while the change waits).
        bytes: Vec<u8>,
        /// Its dependencies have not arrived: it waits in Automerge's queue (or, when the queue
        /// is over its budget, is left for sync to bring). The caller syncs if they do not
        /// come soon.
        waiting: bool,
    },
    /// The change was new and carries one valid record, shown at once; the document takes it
    /// in with the next ones ([`Shard::settle`]), and what it adds is then among
    /// [`Shard::take_unstored`].
    Deferred { records: Vec<MessageRecord> },
    /// We had it already.
    Known,
}

/// Gossip changes held for one Automerge apply, at most: Automerge 0.12 pays for every
/// `apply_changes` call in proportion to the document (≈ 0.3 ms at 1 000 messages, 0.9 ms at
/// 5 000, docs/performance.md), so a busy day's messages are taken in together.
pub const MAX_PENDING: usize = 256;

/// Bytes of changes waiting for their dependencies (Automerge's queue), at most, per shard.
/// Gossip may reorder a few changes and a Bloom-filter false positive in sync may leave a few
/// waiting for one more round; a hostile member may send megabytes of changes with made-up
/// dependencies, which would otherwise sit in memory for as long as the room is open.
pub const MAX_QUEUED_BYTES: usize = 1 << 20;

pub struct Shard {
    doc: Automerge,
    /// An upper bound on the bytes in Automerge's queue: input that left the document waiting
    /// since the queue was last empty.
    queued_bytes: usize,
    /// The whole document as last saved or loaded, with the heads it holds: what a peer that
    /// has nothing of this shard is sent (see [`Shard::generate`]). Behind a lock so that
    /// generating stays a read of the shard.
    saved: Mutex<Option<Saved>>,
    /// Well-formed record changes from gossip, causally ready, not yet applied to `doc`; and
    /// their hashes. Every read of the document applies them first ([`Shard::settle`]).
    pending: Vec<Change>,
    pending_hashes: HashSet<ChangeHash>,
    /// What settling added to the document and the store does not have yet.
    unstored: Vec<u8>,
    /// Records of changes that left Automerge's queue in a gossip apply or a settle and were
    /// never handed out: a change that came by sync and waited for its dependencies yields
    /// no record when it arrives, and none when gossip later brings what it lacked. Handed
    /// out by [`take_released`](Self::take_released), to be shown and indexed.
    released: Vec<MessageRecord>,
    /// Queued gossip changes whose record was handed out on arrival ([`Applied::New`] with
    /// `waiting`): not released again when they leave the queue. At most
    /// [`MAX_SHOWN_WAITING`]; forgetting one only costs a signature check (the store does
    /// not show a message twice).
    shown_waiting: HashSet<ChangeHash>,
}

/// Queued gossip changes remembered as handed out, at most (see `Shard::shown_waiting`).
const MAX_SHOWN_WAITING: usize = 4_096;

/// A saved document and the heads it was saved at: valid while the document's heads are those.
struct Saved {
    heads: Vec<ChangeHash>,
    bytes: Vec<u8>,
    /// Every change's hash, sorted, and their bloom filter: what a peer with nothing is told
    /// besides the bytes. Built for the first such peer (a relay's 27 ms at 100k messages).
    hashes: Option<(Vec<ChangeHash>, sync::BloomFilter)>,
}

/// [`Shard::quick_answer`]'s verdict.
enum Quick {
    Nothing,
    Heads(Vec<u8>),
    AskAutomerge,
}

impl Shard {
    pub fn new(actor: &[u8]) -> Self {
        Self {
            doc: Automerge::new().with_actor(ActorId::from(actor)),
            queued_bytes: 0,
            saved: Mutex::new(None),
            pending: Vec::new(),
            pending_hashes: HashSet::new(),
            unstored: Vec::new(),
            released: Vec::new(),
            shown_waiting: HashSet::new(),
        }
    }

    /// Apply the gossip changes held back ([`Applied::Deferred`]) in one Automerge call; what
    /// they add waits in [`take_unstored`](Self::take_unstored). A change Automerge refuses
    /// in the batch is retried alone, and one refused alone is left out of the document and
    /// its stored chunks (its record was shown and stays in the message index). What is left
    /// out, or left queued behind it, counts against [`MAX_QUEUED_BYTES`].
    pub fn settle(&mut self) -> Result<(), ShardError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        guard(|| self.settle_unguarded())?
    }

    fn settle_unguarded(&mut self) -> Result<(), ShardError> {
        let changes = mem::take(&mut self.pending);
        self.pending_hashes.clear();
        let before = self.doc.get_heads();
        let nothing_queued = self.queued_bytes == 0;
        let raw: Vec<u8> = changes
            .iter()
            .flat_map(|c| c.raw_bytes().to_vec())
            .collect();
        let sizes: Vec<(ChangeHash, usize)> = changes
            .iter()
            .map(|c| (c.hash(), c.raw_bytes().len()))
            .collect();
        let mut all_applied = true;
        if self.doc.apply_changes(changes.iter().cloned()).is_err() {
            for change in changes {
                let hash = change.hash();
                if let Err(e) = self.doc.apply_changes([change]) {
                    all_applied = false;
                    tracing::debug!(%hash, "a deferred gossip change did not apply: {e}");
                }
            }
        }
        if self.doc.get_heads() != before {
            let added = if nothing_queued && all_applied && !self.is_waiting() {
                // Exactly these changes were applied: their own encoding is what to store.
                raw
            } else {
                self.doc.save_after(&before)
            };
            self.unstored.extend_from_slice(&added);
            if !nothing_queued {
                let held: HashSet<ChangeHash> = sizes.iter().map(|(hash, _)| *hash).collect();
                self.release_dequeued(&before, |hash| held.contains(hash));
            }
        }
        // Changes left out (refused, or queued behind one refused: a member can make either)
        // count against the shard's budget for waiting changes, as any waiting change does.
        let left: usize = sizes
            .iter()
            .filter(|(hash, _)| !self.has_applied(hash))
            .map(|(_, len)| len)
            .sum();
        if left > 0 {
            self.account_queue(left)?;
        } else if !self.is_waiting() {
            self.queue_emptied();
        }
        Ok(())
    }

    /// [`settle`](Self::settle) before a read that cannot fail: if Automerge fails on the
    /// held-back changes, the document goes on without them (they were never stored; the
    /// caller, [`crate::history::RoomHistory`], settles first and reloads a shard that
    /// panicked, so this only matters for a shard used alone).
    fn settle_quietly(&mut self) {
        if let Err(e) = self.settle() {
            tracing::warn!("held-back gossip changes were dropped: {e}");
        }
    }

    /// What settling added to the document since last asked, to store (empty if nothing).
    pub fn take_unstored(&mut self) -> Vec<u8> {
        mem::take(&mut self.unstored)
    }

    /// Records of changes that left Automerge's queue without being handed out (see
    /// `Shard::released`), since last asked. They come from whoever sent them, not straight
    /// from a peer: the caller checks their signatures.
    pub fn take_released(&mut self) -> Vec<MessageRecord> {
        mem::take(&mut self.released)
    }

    /// The changes applied since `before` include changes that waited in Automerge's queue:
    /// release the records of those never handed out, `handed_out` (the changes this call
    /// applied, whose records their caller shows) and queued gossip changes shown on arrival
    /// aside. Only called when something was queued, and the walk over the new changes (in
    /// proportion to the document) is only taken when a new head is none of `handed_out`: a
    /// change that left the queue is a head, or an ancestor of one that also left it.
    fn release_dequeued(
        &mut self,
        before: &[ChangeHash],
        handed_out: impl Fn(&ChangeHash) -> bool,
    ) {
        let heads = self.doc.get_heads();
        if heads.iter().all(|h| handed_out(h) || before.contains(h)) {
            return;
        }
        for change in self.doc.get_changes(before) {
            let hash = change.hash();
            if handed_out(&hash) || self.shown_waiting.remove(&hash) {
                continue;
            }
            self.released.extend(valid_record(&change));
        }
    }

    /// Gossip changes held back, not yet applied.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// An upper bound on the bytes of changes waiting for dependencies.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Forget every change that waits for dependencies (they stay unstored; sync brings them
    /// again together with what they need). Costs one save and load of the shard.
    pub fn drop_waiting(&mut self) -> Result<(), ShardError> {
        self.settle()?;
        guard(|| self.drop_waiting_unguarded())?
    }

    fn drop_waiting_unguarded(&mut self) -> Result<(), ShardError> {
        let actor = self.doc.get_actor().clone();
        self.doc = if self.holds_nothing() {
            Automerge::new()
        } else {
            let bytes = self.doc.save_with_options(SaveOptions {
                deflate: false,
                retain_orphans: false,
            });
            Automerge::load(&bytes).map_err(|e| ShardError::BadStored(e.to_string()))?
        }
        .with_actor(actor);
        self.queue_emptied();
        Ok(())
    }

    /// Nothing waits in Automerge's queue any more.
    fn queue_emptied(&mut self) {
        self.queued_bytes = 0;
        self.shown_waiting.clear();
    }

    /// Account for `input_len` bytes just given to Automerge: while anything waits they count
    /// against the budget, and a shard over it drops what waits.
    fn account_queue(&mut self, input_len: usize) -> Result<(), ShardError> {
        if !self.is_waiting() {
            self.queue_emptied();
            return Ok(());
        }
        self.queued_bytes = self.queued_bytes.saturating_add(input_len);
        if self.queued_bytes > MAX_QUEUED_BYTES {
            tracing::debug!(
                queued = self.queued_bytes,
                "changes waiting for dependencies over budget: dropped"
            );
            self.drop_waiting_unguarded()?;
        }
        Ok(())
    }

    /// Rebuild from stored chunks (a saved document and/or incremental chunks, in order).
    pub fn load(actor: &[u8], chunks: &[Vec<u8>]) -> Result<Self, ShardError> {
        let mut shard = Self::new(actor);
        for chunk in chunks {
            guard(|| shard.doc.load_incremental(chunk))
                .and_then(|r| r.map_err(|e| ShardError::BadStored(e.to_string())))?;
        }
        // One stored chunk that loads into exactly this document (a compacted shard, as a relay
        // keeps them) is the document saved: keep it for the next peer that has nothing.
        if let [chunk] = chunks {
            if !shard.is_empty() && !shard.is_waiting() {
                shard.saved = Mutex::new(Some(Saved {
                    heads: shard.doc.get_heads(),
                    bytes: chunk.clone(),
                    hashes: None,
                }));
            }
        }
        Ok(shard)
    }

    /// The whole document, compacted (to replace its stored chunks). Changes still waiting for
    /// their dependencies are left out: only what the document holds is history.
    pub fn save(&mut self) -> Vec<u8> {
        self.settle_quietly();
        self.saved_now()
    }

    fn saved_now(&self) -> Vec<u8> {
        self.doc.save_with_options(SaveOptions {
            deflate: true,
            retain_orphans: false,
        })
    }

    pub fn is_empty(&mut self) -> bool {
        self.settle_quietly();
        self.holds_nothing()
    }

    fn holds_nothing(&self) -> bool {
        self.doc.get_heads().is_empty()
    }

    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.settle_quietly();
        self.doc.get_heads()
    }

    pub fn digest(&mut self) -> [u8; 32] {
        self.settle_quietly();
        heads_digest(self.doc.get_heads().into_iter().map(|h| h.0).collect())
    }

    /// Add our own message: returns the raw change to store and publish.
    pub fn add_local(&mut self, record: &MessageRecord) -> Result<Vec<u8>, ShardError> {
        self.settle()?;
        let value = record
            .encode()
            .map_err(|e| ShardError::BadRecord(e.to_string()))?;
        let mut tx = self.doc.transaction();
        tx.put(ROOT, record.id.to_hex(), ScalarValue::Bytes(value))
            .map_err(|e| ShardError::Rejected(e.to_string()))?;
        let (hash, _) = tx.commit();
        let change = hash
            .and_then(|_| self.doc.get_last_local_change())
            .ok_or_else(|| ShardError::Rejected("the change was not recorded".into()))?;
        Ok(change.raw_bytes().to_vec())
    }

    /// Add a message written by someone this node speaks for (a web user, engine/send_as.rs):
    /// the change's actor is the record's author, as every receiver requires of a record.
    pub fn add_local_as(&mut self, record: &MessageRecord) -> Result<Vec<u8>, ShardError> {
        let mine = self.doc.get_actor().clone();
        self.doc.set_actor(ActorId::from(record.author.clone()));
        let added = self.add_local(record);
        self.doc.set_actor(mine);
        added
    }

    /// Apply one change that arrived by gossip from `author`. All Automerge work on it runs
    /// under the panic guard (Automerge has debug assertions that malformed input can trip).
    pub fn apply_gossip(&mut self, bytes: &[u8], author: &[u8]) -> Result<Applied, ShardError> {
        guard(|| self.apply_gossip_unguarded(bytes, author))?
    }

    fn apply_gossip_unguarded(
        &mut self,
        bytes: &[u8],
        author: &[u8],
    ) -> Result<Applied, ShardError> {
        let change =
            Change::from_bytes(bytes.to_vec()).map_err(|e| ShardError::BadChange(e.to_string()))?;
        let record = valid_record(&change);
        // A change by another actor than the sender is one message record naming that actor as
        // its author (a web user's, sent by the node that holds their key); its signature is
        // checked before it is shown or indexed, as for records that arrive by sync.
        if change.actor_id().to_bytes() != author && record.is_none() {
            return Err(ShardError::BadChange(
                "the change's actor is not the gossip sender".into(),
            ));
        }
        let hash = change.hash();
        if self.has_applied(&hash) || self.pending_hashes.contains(&hash) {
            return Ok(Applied::Known);
        }
        // The common case, a well-formed message whose dependencies the document has or holds
        // back too: shown now, applied with the next ones.
        let ready_with_pending = change
            .deps()
            .iter()
            .all(|dep| self.has_applied(dep) || self.pending_hashes.contains(dep));
        if let (Some(record), true, None) = (&record, ready_with_pending, change.author()) {
            let records = vec![record.clone()];
            self.pending_hashes.insert(hash);
            self.pending.push(change);
            if self.pending.len() >= MAX_PENDING {
                self.settle_unguarded()?;
            }
            return Ok(Applied::Deferred { records });
        }
        self.settle_unguarded()?;
        let ready = change.deps().iter().all(|dep| self.has_applied(dep));
        let records: Vec<MessageRecord> = record.into_iter().collect();
        if !ready && self.queued_bytes.saturating_add(bytes.len()) > MAX_QUEUED_BYTES {
            return Ok(Applied::New {
                records: Vec::new(),
                bytes: Vec::new(),
                waiting: true,
            });
        }
        let before = self.doc.get_heads();
        let nothing_queued = self.queued_bytes == 0;
        let raw = change.raw_bytes().to_vec();
        self.doc
            .apply_changes([change])
            .map_err(|e| ShardError::Rejected(e.to_string()))?;
        let waiting = !self.has_applied(&hash);
        if waiting {
            self.queued_bytes += bytes.len();
            if !records.is_empty() {
                if self.shown_waiting.len() >= MAX_SHOWN_WAITING {
                    self.shown_waiting.clear();
                }
                self.shown_waiting.insert(hash);
            }
        } else if !nothing_queued {
            self.release_dequeued(&before, |applied| *applied == hash);
        }
        if !waiting && !self.is_waiting() {
            self.queue_emptied();
        }
        let bytes = if self.doc.get_heads() == before {
            Vec::new()
        } else if nothing_queued && !waiting {
            // The common case: this change alone was applied, so it alone is what to store
            // (the document's own encoding of it; `save_after` would re-derive the same from
            // the change graph at a cost that grows with the document).
            raw
        } else {
            self.doc.save_after(&before)
        };
        Ok(Applied::New {
            records,
            bytes,
            waiting,
        })
    }

    /// Whether the change `hash` is applied (not merely queued). Its metadata answers that;
    /// `get_change_by_hash` rebuilds the whole change, ≈ 6 % of a receiving node's CPU when
    /// asked three times per gossip message (docs/performance.md).
    fn has_applied(&self, hash: &automerge::ChangeHash) -> bool {
        self.doc.get_change_meta_by_hash(hash).is_some()
    }

    /// Whether changes are queued for dependencies this document does not have.
    pub fn is_waiting(&self) -> bool {
        !self.doc.get_missing_deps(&[]).is_empty()
    }

    /// The next sync message for a peer, if there is anything to say.
    pub fn generate(&mut self, state: &mut sync::State) -> Option<Vec<u8>> {
        self.settle_quietly();
        match self.quick_answer(state) {
            Quick::Nothing => return None,
            Quick::Heads(message) => return Some(message),
            Quick::AskAutomerge => {}
        }
        if let Some(message) = self.generate_whole(state) {
            return Some(message);
        }
        self.doc.generate_sync_message(state).map(|m| m.encode())
    }

    /// What Automerge 0.12's `generate_sync_message` answers when the peer's heads are ours,
    /// found without it: it walks the whole change graph (bloom filters, hashes to send) before
    /// it gets there, 75 ms at 100k messages, paid on both sides of a catch-up's closing rounds.
    /// Same message and same state changes as Automerge (`sync.rs`), in two cases:
    /// - nothing, while our answer at unchanged heads is in flight, or when the peer holds our
    ///   heads, asked for nothing and has been told ours;
    /// - our heads alone, with an empty bloom filter, when the peer holds our heads but has not
    ///   been told them (a catch-up's joiner, right after loading the whole document) and we
    ///   know it has all we have since our last sync. Without that message the relay would
    ///   still think the joiner empty and send the whole document again on its next change.
    ///
    /// Everything else (a peer naming changes we do not know, a pending reset, read-only
    /// states, changes waiting for dependencies) is left to Automerge.
    fn quick_answer(&self, state: &mut sync::State) -> Quick {
        let knows_their_last_sync = state.their_have.as_ref().is_none_or(|have| {
            have.first()
                .is_none_or(|h| h.last_sync.iter().all(|hash| self.has_applied(hash)))
        });
        if !knows_their_last_sync || state.needs_reset || state.read_only || self.is_waiting() {
            return Quick::AskAutomerge;
        }
        let ours = self.doc.get_heads();
        let told = state.last_sent_heads == ours && state.have_responded;
        if told && state.in_flight {
            return Quick::Nothing;
        }
        let asks = state
            .their_need
            .as_ref()
            .is_some_and(|need| !need.is_empty());
        let same_document = !ours.is_empty() && state.their_heads.as_deref() == Some(&ours);
        if !same_document || asks {
            return Quick::AskAutomerge;
        }
        if told {
            return Quick::Nothing;
        }
        if state.shared_heads != ours {
            // The bloom filter would cover changes since the last sync: Automerge's walk.
            return Quick::AskAutomerge;
        }
        let have = sync::Have {
            last_sync: state.shared_heads.clone(),
            bloom: sync::BloomFilter::from_hashes(std::iter::empty::<ChangeHash>()),
        };
        let version = if takes_v2(state) {
            sync::MessageVersion::V2
        } else {
            sync::MessageVersion::V1
        };
        Quick::Heads(send(state, ours, have, Vec::new(), version))
    }

    /// The message Automerge's `generate_sync_message` makes for a peer that has nothing of the
    /// shard (a catch-up: the whole document), from the saved document when the shard has not
    /// changed since: saving 100k messages again for every joiner took a relay 0.3–0.6 s before
    /// its first answer (docs/performance.md). Same message, same state changes as Automerge
    /// 0.12's own path (`sync.rs`, `send_doc`); None for every other case, which Automerge
    /// handles.
    fn generate_whole(&self, state: &mut sync::State) -> Option<Vec<u8>> {
        let fresh_peer = state.their_heads.as_deref() == Some(&[])
            && state.their_need.is_some()
            && state.their_have.as_ref().is_some_and(|have| {
                have.iter()
                    .all(|h| h.last_sync.iter().all(|hash| self.has_applied(hash)))
            })
            && takes_v2(state)
            && !state.read_only
            && !state.peer_read_only
            && !state.needs_reset;
        if !fresh_peer {
            return None;
        }
        let ours = self.doc.get_heads();
        // (An answer in flight at unchanged heads never gets here: `quick_answer` says nothing.)
        if ours.is_empty() || self.is_waiting() {
            return None;
        }
        let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        if saved.as_ref().is_some_and(|s| s.heads != ours) {
            *saved = None;
        }
        let saved = saved.get_or_insert_with(|| Saved {
            heads: ours.clone(),
            bytes: self.saved_now(),
            hashes: None,
        });
        let (all, bloom_all) = saved.hashes.get_or_insert_with(|| {
            let mut all: Vec<ChangeHash> = self
                .doc
                .get_changes_meta(&[])
                .into_iter()
                .map(|c| c.hash)
                .collect();
            all.sort_unstable();
            let bloom = sync::BloomFilter::from_hashes(all.iter());
            (all, bloom)
        });
        let bloom = if state.shared_heads.is_empty() {
            bloom_all.clone()
        } else {
            let since_shared: Vec<ChangeHash> = self
                .doc
                .get_changes_meta(&state.shared_heads)
                .into_iter()
                .map(|c| c.hash)
                .collect();
            sync::BloomFilter::from_hashes(since_shared.iter())
        };
        let have = sync::Have {
            last_sync: state.shared_heads.clone(),
            bloom,
        };
        if state.sent_hashes.is_empty() {
            // Built from sorted hashes in one go, not inserted one by one.
            state.sent_hashes = all.iter().copied().collect();
        } else {
            state.sent_hashes.extend(all.iter().copied());
        }
        let bytes = saved.bytes.clone();
        Some(send(
            state,
            ours,
            have,
            vec![bytes],
            sync::MessageVersion::V2,
        ))
    }

    /// Apply a peer's sync message. Returns the valid messages it added and the bytes to store
    /// (empty when nothing changed). Runs under the panic guard.
    pub fn receive(
        &mut self,
        state: &mut sync::State,
        message: &[u8],
    ) -> Result<(Vec<MessageRecord>, Vec<u8>), ShardError> {
        self.settle()?;
        guard(|| self.receive_unguarded(state, message))?
    }

    fn receive_unguarded(
        &mut self,
        state: &mut sync::State,
        message: &[u8],
    ) -> Result<(Vec<MessageRecord>, Vec<u8>), ShardError> {
        let message = sync::Message::decode(message)
            .map_err(|e| ShardError::BadSyncMessage(e.to_string()))?;
        let message = match self.quick_receive(state, message) {
            Ok(()) => return Ok((Vec::new(), Vec::new())),
            Err(message) => message,
        };
        let input_len: usize = message.changes.iter().map(<[u8]>::len).sum();
        let before = self.doc.get_heads();
        // A whole document (what Automerge sends a peer that has nothing) into a shard that
        // held nothing: those very bytes are what to store, no need to save the shard again.
        let whole_document =
            if before.is_empty() && message.changes.len() == 1 && !self.is_waiting() {
                message.changes.iter().next().map(<[u8]>::to_vec)
            } else {
                None
            };
        self.doc
            .receive_sync_message(state, message)
            .map_err(|e| ShardError::Rejected(e.to_string()))?;
        if input_len > 0 {
            self.account_queue(input_len)?;
        }
        if self.doc.get_heads() == before {
            return Ok((Vec::new(), Vec::new()));
        }
        // Into an empty shard (a catch-up) the records are read off the document's state when
        // that accounts for every change: re-encoding 100k changes one by one to look at them
        // was the largest cost of a catch-up.
        let fast = if before.is_empty() {
            self.records_from_state()
        } else {
            None
        };
        let records = fast.unwrap_or_else(|| {
            self.doc
                .get_changes(&before)
                .iter()
                .filter_map(valid_record)
                .collect()
        });
        // What to store: into an empty shard (a catch-up), the document as received when it
        // came whole and left nothing waiting, else the whole document saved again (far smaller
        // than its changes one by one: 6× at 100k messages); otherwise what was added.
        let bytes = match whole_document {
            Some(received) if !self.is_waiting() => received,
            _ if before.is_empty() => self.saved_now(),
            _ => self.doc.save_after(&before),
        };
        Ok((records, bytes))
    }

    /// What Automerge 0.12's `receive_sync_message` does with a message that brings no changes
    /// and names our own heads (a catch-up's last word: the joiner now holds everything), done
    /// without it: it removes the ancestors of the peer's heads from the hashes sent this
    /// session by walking the whole change graph, 40–80 ms at 100k messages on the relay, in
    /// the joiner's wait for the session to end. Here every change is such an ancestor, so it
    /// keeps only hashes the document does not have, found in the sorted hash list kept with
    /// the saved document (whoever it was built for, it lists every change while its heads
    /// are the document's). Same state changes as Automerge
    /// (`sync.rs`, `receive_sync_message_inner`); anything else goes back to Automerge.
    fn quick_receive(
        &self,
        state: &mut sync::State,
        message: sync::Message,
    ) -> Result<(), sync::Message> {
        if !message.changes.is_empty() || self.is_waiting() {
            return Err(message);
        }
        let ours = self.doc.get_heads();
        if ours.is_empty() || message.heads != ours {
            return Err(message);
        }
        if !state.sent_hashes.is_empty() {
            let saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
            let Some((all, _)) = saved
                .as_ref()
                .filter(|s| s.heads == ours)
                .and_then(|s| s.hashes.as_ref())
            else {
                return Err(message);
            };
            state
                .sent_hashes
                .retain(|hash| all.binary_search(hash).is_err());
        }
        state.in_flight = false;
        if let Some(flags) = message.flags {
            let mut caps = vec![sync::Capability::MessageV2];
            if flags.contains(sync::MessageFlags::SUPPORTS_SYNC_RESET) {
                caps.push(sync::Capability::SyncReset);
            }
            state.their_capabilities = Some(caps);
            if flags.contains(sync::MessageFlags::SYNC_RESET) {
                state.sent_hashes.clear();
            }
            state.peer_read_only = flags.contains(sync::MessageFlags::READ_ONLY);
        }
        state.last_sent_heads.clone_from(&message.heads);
        state.shared_heads.clone_from(&message.heads);
        state.their_have = Some(message.have);
        state.their_heads = Some(message.heads);
        state.their_need = Some(message.need);
        Ok(())
    }

    /// Every message in the document, read from its state, if every change in it is one that
    /// [`valid_record`] accepts; None otherwise (then only looking at each change can tell).
    /// Each change of a single op whose value is the one visible under its key, holding a
    /// record with that id and the change's actor as author, is exactly such a change: so when
    /// there are as many of those as changes, the two ways agree (a conflict, a delete or an
    /// overwrite leaves fewer visible values than changes).
    fn records_from_state(&self) -> Option<Vec<MessageRecord>> {
        let changes = self.doc.get_changes_meta(&[]);
        let single_ops: HashSet<(u64, &[u8])> = changes
            .iter()
            .filter(|c| c.start_op == c.max_op)
            .map(|c| (c.start_op, c.actor.to_bytes()))
            .collect();
        if single_ops.len() != changes.len() {
            return None;
        }
        let mut records = Vec::with_capacity(changes.len());
        // One pass over the root map: a lookup per key cost 14 % of a catch-up's CPU.
        for item in self.doc.map_range(ROOT, ..) {
            let ObjId::Id(counter, actor, _) = item.id() else {
                return None;
            };
            if !single_ops.contains(&(counter, actor.to_bytes())) {
                return None;
            }
            let ValueRef::Scalar(ScalarValueRef::Bytes(bytes)) = &item.value else {
                return None;
            };
            let record = MessageRecord::decode(bytes).ok()?;
            if !id_matches_key(&record.id, &item.key) || record.author != actor.to_bytes() {
                return None;
            }
            records.push(record);
        }
        (records.len() == changes.len()).then_some(records)
    }

    /// Every valid message in the document, read off its state when that accounts for every
    /// change (for checking the message index against the document). An error if Automerge
    /// failed on the way: the caller must not take the list as the whole document.
    pub fn all_records(&mut self) -> Result<Vec<MessageRecord>, ShardError> {
        self.settle()?;
        guard(|| {
            self.records_from_state().unwrap_or_else(|| {
                self.doc
                    .get_changes(&[])
                    .iter()
                    .filter_map(valid_record)
                    .collect()
            })
        })
    }

    /// Every valid message in the document, change by change.
    pub fn records(&mut self) -> Vec<MessageRecord> {
        self.settle_quietly();
        guard(|| {
            self.doc
                .get_changes(&[])
                .iter()
                .filter_map(valid_record)
                .collect()
        })
        .unwrap_or_default()
    }
}

/// Whether the peer takes Automerge's version 2 sync messages.
fn takes_v2(state: &sync::State) -> bool {
    state
        .their_capabilities
        .as_ref()
        .is_some_and(|caps| caps.contains(&sync::Capability::MessageV2))
}

/// Our sync message as Automerge 0.12 builds it (our heads, nothing needed, one `have`, the
/// flags we support), with the state changes Automerge makes when it sends one.
fn send(
    state: &mut sync::State,
    heads: Vec<ChangeHash>,
    have: sync::Have,
    changes: Vec<Vec<u8>>,
    version: sync::MessageVersion,
) -> Vec<u8> {
    state.have_responded = true;
    state.last_sent_heads.clone_from(&heads);
    state.in_flight = true;
    let mut flags = sync::MessageFlags::new();
    flags.set(sync::MessageFlags::SUPPORTS_SYNC_RESET);
    sync::Message {
        heads,
        need: Vec::new(),
        have: vec![have],
        changes: sync::ChunkList::from(changes),
        flags: Some(flags),
        version,
    }
    .encode()
}

/// The message a change adds, if it is a well-formed one: exactly one put at the root, of a
/// record whose id is the key and whose author is the change's actor.
pub fn valid_record(change: &Change) -> Option<MessageRecord> {
    let expanded = change.decode();
    let [op] = expanded.operations.as_slice() else {
        return None;
    };
    let (automerge::legacy::ObjectId::Root, automerge::legacy::Key::Map(key), false) =
        (&op.obj, &op.key, op.insert)
    else {
        return None;
    };
    let automerge::legacy::OpType::Put(ScalarValue::Bytes(value)) = &op.action else {
        return None;
    };
    let record = MessageRecord::decode(value).ok()?;
    (id_matches_key(&record.id, key) && record.author == change.actor_id().to_bytes())
        .then_some(record)
}

/// Whether `key` is `id` in lower-case hex. Compared as bytes: formatting the id as hex for
/// every change of a catch-up shows up in profiles.
fn id_matches_key(id: &MessageId, key: &str) -> bool {
    let mut key_id = [0u8; 16];
    !key.bytes().any(|b| b.is_ascii_uppercase())
        && hex::decode_to_slice(key, &mut key_id).is_ok()
        && key_id == id.0
}

/// The message in a raw change, if it holds a valid one (for tools and tests reading the wire).
pub fn record_in_change(bytes: &[u8]) -> Option<MessageRecord> {
    let change = Change::from_bytes(bytes.to_vec()).ok()?;
    guard(|| valid_record(&change)).ok().flatten()
}

/// Run Automerge on input from the network, turning a panic inside it into an error: a bug in
/// a dependency must not take the node down. The caller drops the shard after an error that
/// may have left it half-updated and reloads it from the store.
fn guard<T>(f: impl FnOnce() -> T) -> Result<T, ShardError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| ShardError::Panicked)
}

/// A message id from its key in the document.
pub fn id_from_key(key: &str) -> Option<MessageId> {
    let bytes = hex::decode(key).ok()?;
    Some(MessageId(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests;
