//! A room's history: its shards (one Automerge document per UTC day) and the sync state kept for
//! each peer. Pure: the event loop loads shards from the store and stores what this returns.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use automerge::sync;
use hark_proto::sync::{ShardDigest, ShardMessage, MAX_SHARDS};
use hark_proto::MessageRecord;
use libp2p::PeerId;

use super::shard::{Applied, Shard, ShardError};

/// Bytes of changes waiting for dependencies, at most, across a room's shards (each shard also
/// has its own budget): a hostile member could otherwise spread them over many days.
pub const MAX_ROOM_QUEUED_BYTES: usize = 4 << 20;

/// What a sync message or a gossip change added to one shard.
pub struct Added {
    pub shard: u32,
    pub records: Vec<MessageRecord>,
    /// Bytes to append to the store for this shard.
    pub bytes: Vec<u8>,
}

pub struct RoomHistory {
    actor: Vec<u8>,
    shards: BTreeMap<u32, Shard>,
    /// Automerge sync state per peer and shard. Kept between sessions so that a re-sync of
    /// shards both sides already share costs a few hundred bytes, not a Bloom filter of every
    /// change (see FACTS on sync costs).
    states: HashMap<(PeerId, u32), sync::State>,
    /// See [`is_broken`](Self::is_broken).
    broken: bool,
}

impl RoomHistory {
    pub fn new(actor: Vec<u8>, shards: BTreeMap<u32, Shard>) -> Self {
        Self {
            actor,
            shards,
            states: HashMap::new(),
            broken: false,
        }
    }

    /// Apply every shard's held-back gossip changes ([`Shard::settle`]). A shard on which
    /// Automerge panics is dropped, and the history marks itself [`broken`](Self::is_broken):
    /// the engine then reloads it from the store (the last state known to be sound).
    pub fn settle(&mut self) {
        let mut broken = Vec::new();
        for (&id, doc) in self.shards.iter_mut() {
            match doc.settle() {
                Ok(()) => {}
                Err(ShardError::Panicked) => broken.push(id),
                Err(e) => tracing::warn!(shard = id, "held-back gossip changes dropped: {e}"),
            }
        }
        for id in broken {
            tracing::error!(shard = id, "Automerge failed on held-back gossip changes");
            self.shards.remove(&id);
            self.states.retain(|(_, shard), _| *shard != id);
            self.broken = true;
        }
    }

    /// Automerge panicked on one of the shards outside a call that reports it: reload.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Gossip changes held back across shards, not yet applied.
    pub fn pending_count(&self) -> usize {
        self.shards.values().map(Shard::pending_count).sum()
    }

    /// Settle, then what the documents gained from held-back changes and the store does not
    /// have yet, per shard. Its records are only those of changes released from Automerge's
    /// queue that were never shown ([`Shard::take_released`]; unchecked): the held-back
    /// changes' own were shown on arrival.
    pub fn take_unstored(&mut self) -> Vec<Added> {
        self.settle();
        self.shards
            .iter_mut()
            .map(|(&shard, doc)| Added {
                shard,
                records: doc.take_released(),
                bytes: doc.take_unstored(),
            })
            .filter(|added| !added.bytes.is_empty() || !added.records.is_empty())
            .collect()
    }

    pub fn digests(&mut self) -> Vec<ShardDigest> {
        self.settle();
        self.shards
            .iter_mut()
            .filter_map(|(&shard, doc)| (!doc.is_empty()).then_some((shard, doc)))
            .map(|(shard, doc)| ShardDigest {
                shard,
                heads: doc.digest(),
            })
            .collect()
    }

    /// The shards on which `theirs` and ours disagree (including shards only one side has).
    pub fn differing(&mut self, theirs: &[ShardDigest]) -> Vec<u32> {
        let ours: BTreeMap<u32, [u8; 32]> = self
            .digests()
            .into_iter()
            .map(|d| (d.shard, d.heads))
            .collect();
        let theirs: BTreeMap<u32, [u8; 32]> = theirs.iter().map(|d| (d.shard, d.heads)).collect();
        let all: BTreeSet<u32> = ours.keys().chain(theirs.keys()).copied().collect();
        all.into_iter()
            .filter(|s| ours.get(s) != theirs.get(s))
            .take(MAX_SHARDS)
            .collect()
    }

    /// Start a new session with `peer`: the sync states forget what was in flight (the last
    /// session may have ended mid-way), keeping only what the peer is known to have.
    pub fn begin_session(&mut self, peer: PeerId) {
        // Shards that a peer named but never filled (a hostile request can name thousands)
        // are dropped, so they cannot take up the room's shard table.
        self.settle();
        let empty: Vec<u32> = self
            .shards
            .iter_mut()
            .filter_map(|(&id, doc)| doc.is_empty().then_some(id))
            .collect();
        for id in empty {
            self.shards.remove(&id);
            self.states.retain(|(_, shard), _| *shard != id);
        }
        for ((p, _), state) in self.states.iter_mut() {
            if *p == peer {
                *state = sync::State::decode(&state.encode()).unwrap_or_default();
            }
        }
    }

    /// The sync messages for `peer` on `shards`, creating empty shards we do not have yet.
    pub fn generate(&mut self, peer: PeerId, shards: &[u32]) -> Vec<ShardMessage> {
        let mut out = Vec::new();
        for &shard in shards {
            if self.shard_or_new(shard).is_none() {
                continue;
            }
            let state = self.states.entry((peer, shard)).or_default();
            if let Some(message) = self.shards.get_mut(&shard).and_then(|d| d.generate(state)) {
                out.push(ShardMessage { shard, message });
            }
        }
        out
    }

    /// Apply `peer`'s sync messages. Stops at the first bad one; what was applied before it
    /// is returned through `added` all the same, so it is stored.
    pub fn receive(
        &mut self,
        peer: PeerId,
        messages: &[ShardMessage],
        added: &mut Vec<Added>,
    ) -> Result<(), ShardError> {
        self.receive_checked(peer, messages, added, &|_: &mut Added, _: bool| {})
    }

    /// [`receive`](Self::receive), with `check` run on what each shard added as soon as that
    /// shard is done (the caller's signature checks), so that with many shards the checks of
    /// one run while Automerge works on the next. A catch-up of many shards spreads them over
    /// every core: each shard is its own document and sync state, so they are independent.
    /// `check`'s second argument says whether it may use more threads itself (false when it
    /// already runs beside the other shards). Every shard that applied is returned through
    /// `added` (in the order of `messages`), also when another one failed; the first failure
    /// is the result.
    pub fn receive_checked(
        &mut self,
        peer: PeerId,
        messages: &[ShardMessage],
        added: &mut Vec<Added>,
        check: RecordCheck<'_>,
    ) -> Result<(), ShardError> {
        self.settle();
        let result = if self.worth_spreading(messages) {
            self.receive_spread(peer, messages, added, check)
        } else {
            self.receive_each(peer, messages, added, check)
        };
        self.bound_queues();
        result
    }

    /// Several big shard messages, each for another shard, and more than one core.
    fn worth_spreading(&self, messages: &[ShardMessage]) -> bool {
        let bytes: usize = messages.iter().map(|m| m.message.len()).sum();
        let mut ids: Vec<u32> = messages.iter().map(|m| m.shard).collect();
        ids.sort_unstable();
        ids.dedup();
        messages.len() >= 2
            && ids.len() == messages.len()
            && bytes >= SPREAD_FROM_BYTES
            && cores() >= 2
    }

    fn receive_each(
        &mut self,
        peer: PeerId,
        messages: &[ShardMessage],
        added: &mut Vec<Added>,
        check: RecordCheck<'_>,
    ) -> Result<(), ShardError> {
        for ShardMessage { shard, message } in messages {
            if self.shard_or_new(*shard).is_none() {
                return Err(ShardError::Rejected("too many shards in one room".into()));
            }
            let state = self.states.entry((peer, *shard)).or_default();
            let Some(doc) = self.shards.get_mut(shard) else {
                continue;
            };
            match receive_one(*shard, doc, state, message, check, true) {
                Ok(Some(chunk)) => added.push(chunk),
                Ok(None) => {}
                Err(e) => {
                    if e == ShardError::Panicked {
                        // Possibly half-applied: forget the in-memory copy; the caller reloads.
                        self.shards.remove(shard);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The shards of `messages` on every core: each worker takes every n-th shard (catch-up
    /// shards are days of similar size) with its document and sync state, and hands them back.
    fn receive_spread(
        &mut self,
        peer: PeerId,
        messages: &[ShardMessage],
        added: &mut Vec<Added>,
        check: RecordCheck<'_>,
    ) -> Result<(), ShardError> {
        let mut jobs = Vec::with_capacity(messages.len());
        let mut refused = None;
        for (i, ShardMessage { shard, message }) in messages.iter().enumerate() {
            if self.shard_or_new(*shard).is_none() {
                refused = Some(ShardError::Rejected("too many shards in one room".into()));
                break;
            }
            let Some(doc) = self.shards.remove(shard) else {
                continue;
            };
            let state = self.states.remove(&(peer, *shard)).unwrap_or_default();
            jobs.push((i, *shard, doc, state, message.as_slice()));
        }
        let workers = cores().min(jobs.len()).max(1);
        let mut lanes: Vec<Vec<_>> = (0..workers).map(|_| Vec::new()).collect();
        for (n, job) in jobs.into_iter().enumerate() {
            lanes[n % workers].push(job);
        }
        let mut done = std::thread::scope(|scope| {
            let handles: Vec<_> = lanes
                .into_iter()
                .map(|lane| {
                    scope.spawn(move || {
                        lane.into_iter()
                            .map(|(i, shard, mut doc, mut state, message)| {
                                let result =
                                    receive_one(shard, &mut doc, &mut state, message, check, false);
                                (i, shard, doc, state, result)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            // A worker cannot panic (Automerge runs under the panic guard); if one did, its
            // shards are lost from memory and reloaded from the store on next use.
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect::<Vec<_>>()
        });
        done.sort_by_key(|(i, ..)| *i);
        let mut first_error = None;
        for (_, shard, doc, state, result) in done {
            match result {
                Err(ShardError::Panicked) => {
                    first_error.get_or_insert(ShardError::Panicked);
                    continue;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
                Ok(Some(chunk)) => added.push(chunk),
                Ok(None) => {}
            }
            self.shards.insert(shard, doc);
            self.states.insert((peer, shard), state);
        }
        match first_error.or(refused) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Add our own message to the shard of its day.
    pub fn add_local(&mut self, record: &MessageRecord) -> Result<Added, ShardError> {
        self.add_to_its_day(record, Shard::add_local)
    }

    /// Add a message written under another identity (see [`Shard::add_local_as`]).
    pub fn add_local_as(&mut self, record: &MessageRecord) -> Result<Added, ShardError> {
        self.add_to_its_day(record, Shard::add_local_as)
    }

    fn add_to_its_day(
        &mut self,
        record: &MessageRecord,
        add: impl FnOnce(&mut Shard, &MessageRecord) -> Result<Vec<u8>, ShardError>,
    ) -> Result<Added, ShardError> {
        let shard = record.hlc.day();
        let doc = self
            .shard_or_new(shard)
            .ok_or_else(|| ShardError::Rejected("too many shards in one room".into()))?;
        let bytes = add(doc, record)?;
        Ok(Added {
            shard,
            records: vec![record.clone()],
            bytes,
        })
    }

    /// Apply a change that arrived by gossip.
    pub fn apply_gossip(
        &mut self,
        shard: u32,
        change: &[u8],
        author: &[u8],
    ) -> Result<Applied, ShardError> {
        let doc = self
            .shard_or_new(shard)
            .ok_or_else(|| ShardError::Rejected("too many shards in one room".into()))?;
        let applied = doc.apply_gossip(change, author);
        if matches!(applied, Err(ShardError::Panicked)) {
            self.shards.remove(&shard);
        }
        self.bound_queues();
        applied
    }

    /// Keep the room within [`MAX_ROOM_QUEUED_BYTES`]: over it, every shard drops what waits.
    fn bound_queues(&mut self) {
        let total: usize = self.shards.values().map(Shard::queued_bytes).sum();
        if total <= MAX_ROOM_QUEUED_BYTES {
            return;
        }
        tracing::debug!(
            total,
            "room's changes waiting for dependencies over budget: dropped"
        );
        for (&id, doc) in self.shards.iter_mut() {
            if doc.queued_bytes() > 0 {
                if let Err(e) = doc.drop_waiting() {
                    self.broken |= e == ShardError::Panicked;
                    // The shard keeps its document as it was: nothing is lost but the bound.
                    tracing::warn!(shard = id, "could not drop waiting changes: {e}");
                }
            }
        }
    }

    /// The peer is gone: forget its sync states (memory stays bounded by connected peers; the
    /// shard digests keep a reconnect cheap for shards that agree).
    pub fn forget_peer(&mut self, peer: &PeerId) {
        self.states.retain(|(p, _), _| p != peer);
    }

    /// Automerge sync states held (one per peer and shard).
    pub fn sync_state_count(&self) -> usize {
        self.states.len()
    }

    /// Bytes of changes waiting for their dependencies, across shards.
    pub fn waiting_bytes(&self) -> usize {
        self.shards.values().map(Shard::queued_bytes).sum()
    }

    /// Whether any shard holds changes waiting for dependencies.
    pub fn is_waiting(&mut self) -> bool {
        // Held-back changes may be exactly what a waiting change lacks.
        self.settle();
        self.shards.values().any(Shard::is_waiting)
    }

    pub fn shard(&self, shard: u32) -> Option<&Shard> {
        self.shards.get(&shard)
    }

    pub fn shard_mut(&mut self, shard: u32) -> Option<&mut Shard> {
        self.shards.get_mut(&shard)
    }

    pub fn shard_ids(&self) -> Vec<u32> {
        self.shards.keys().copied().collect()
    }

    fn shard_or_new(&mut self, shard: u32) -> Option<&mut Shard> {
        if !self.shards.contains_key(&shard) && self.shards.len() >= MAX_SHARDS {
            return None;
        }
        let actor = &self.actor;
        Some(
            self.shards
                .entry(shard)
                .or_insert_with(|| Shard::new(actor)),
        )
    }
}

/// Checks what a shard added before it is kept (see [`RoomHistory::receive_checked`]).
pub type RecordCheck<'a> = &'a (dyn Fn(&mut Added, bool) + Sync);

/// Below this many bytes of sync messages, one thread applies them all (spawning costs more).
const SPREAD_FROM_BYTES: usize = 256 * 1024;

/// Cores to spread over, read once (asking the OS reads cgroup files).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// One shard's sync message applied and checked; `None` when it added nothing to store.
fn receive_one(
    shard: u32,
    doc: &mut Shard,
    state: &mut sync::State,
    message: &[u8],
    check: RecordCheck<'_>,
    may_spread: bool,
) -> Result<Option<Added>, ShardError> {
    let (records, bytes) = doc.receive(state, message)?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let mut chunk = Added {
        shard,
        records,
        bytes,
    };
    check(&mut chunk, may_spread);
    Ok(Some(chunk))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hark_proto::{Hlc, MessageId, MessageKind};

    const DAY_MS: u64 = 86_400_000;

    fn record(author: &[u8], n: u8, day: u64) -> MessageRecord {
        MessageRecord {
            id: MessageId([n; 16]),
            author: author.to_vec(),
            name: "alice".into(),
            hlc: Hlc::new(day * DAY_MS + n as u64, 0),
            kind: MessageKind::Text,
            text: format!("message {n}"),
            // Shards do not check signatures (the node does, on arrival).
            signature: Vec::new(),
        }
    }

    /// One session the way the event loop runs it, until an exchange where neither side sends.
    fn session(a: &mut RoomHistory, pa: PeerId, b: &mut RoomHistory, pb: PeerId) -> usize {
        a.begin_session(pb);
        b.begin_session(pa);
        let shards = a.differing(&b.digests());
        assert_eq!(
            shards,
            b.differing(&a.digests()),
            "both sides see the same shards"
        );
        let mut received = 0;
        let mut to_a = b.generate(pa, &shards);
        for _ in 0..20 {
            let mut added = Vec::new();
            a.receive(pb, &to_a, &mut added).unwrap();
            received += added.iter().map(|x| x.records.len()).sum::<usize>();
            let to_b = a.generate(pb, &shards);
            let mut added = Vec::new();
            b.receive(pa, &to_b, &mut added).unwrap();
            received += added.iter().map(|x| x.records.len()).sum::<usize>();
            to_a = b.generate(pa, &shards);
            if to_b.is_empty() && to_a.is_empty() {
                return received;
            }
        }
        panic!("the session did not settle");
    }

    #[test]
    fn many_big_shards_are_applied_side_by_side_and_each_is_checked() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (pa, pb) = (PeerId::random(), PeerId::random());
        let mut a = RoomHistory::new(pa.to_bytes(), BTreeMap::new());
        // Text that does not compress, so that the shards are big on the wire.
        let mut seed = 7u64;
        let mut noise = || {
            (0..2_000)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    char::from(b'a' + (seed >> 59) as u8 % 26)
                })
                .collect::<String>()
        };
        for day in 100..104u64 {
            for n in 0..60u8 {
                let mut r = record(&pa.to_bytes(), n, day);
                r.id = MessageId([n, day as u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
                r.text = noise();
                a.add_local(&r).unwrap();
            }
        }
        let mut b = RoomHistory::new(pb.to_bytes(), BTreeMap::new());
        a.begin_session(pb);
        b.begin_session(pa);
        let shards = a.differing(&b.digests());
        assert_eq!(shards.len(), 4);
        let checked = AtomicUsize::new(0);
        let check = |chunk: &mut Added, spread: bool| {
            assert!(
                !spread,
                "beside the other shards, checks stay on their thread"
            );
            checked.fetch_add(1, Ordering::Relaxed);
            // Drop one record of each shard, as a failed signature would.
            chunk.records.pop();
        };
        let mut received = 0;
        let mut to_b = a.generate(pb, &shards);
        for _ in 0..10 {
            let big: usize = to_b.iter().map(|m| m.message.len()).sum();
            let mut added = Vec::new();
            b.receive_checked(pa, &to_b, &mut added, &check).unwrap();
            if big >= SPREAD_FROM_BYTES && to_b.len() > 1 {
                assert_eq!(
                    added.len(),
                    to_b.len(),
                    "each shard added its chunk, in order"
                );
                let order: Vec<u32> = added.iter().map(|c| c.shard).collect();
                let sent: Vec<u32> = to_b.iter().map(|m| m.shard).collect();
                assert_eq!(order, sent);
            }
            received += added.iter().map(|c| c.records.len()).sum::<usize>();
            let to_a = b.generate(pa, &shards);
            let mut back = Vec::new();
            a.receive(pb, &to_a, &mut back).unwrap();
            to_b = a.generate(pb, &shards);
            if to_a.is_empty() && to_b.is_empty() {
                break;
            }
        }
        assert_eq!(checked.load(Ordering::Relaxed), 4);
        assert_eq!(received, 4 * 59);
        assert_eq!(a.digests(), b.digests(), "the two sides agree");
        assert_eq!(
            b.sync_state_count(),
            4,
            "every shard's sync state was put back"
        );
    }

    #[test]
    fn only_differing_shards_are_synced_and_both_sides_converge() {
        let (pa, pb) = (PeerId::random(), PeerId::random());
        let mut a = RoomHistory::new(pa.to_bytes(), BTreeMap::new());
        let mut b = RoomHistory::new(pb.to_bytes(), BTreeMap::new());
        for n in 0..5 {
            a.add_local(&record(&pa.to_bytes(), n, 100)).unwrap();
        }
        a.add_local(&record(&pa.to_bytes(), 9, 101)).unwrap();
        b.add_local(&record(&pb.to_bytes(), 20, 101)).unwrap();
        b.add_local(&record(&pb.to_bytes(), 21, 102)).unwrap();
        assert_eq!(a.differing(&b.digests()), vec![100, 101, 102]);

        assert_eq!(session(&mut a, pa, &mut b, pb), 8);
        assert_eq!(a.digests(), b.digests());
        assert!(a.differing(&b.digests()).is_empty());
        assert_eq!(a.shard_ids(), vec![100, 101, 102]);

        // One new message later: only its day differs, and only it travels.
        a.add_local(&record(&pa.to_bytes(), 30, 102)).unwrap();
        assert_eq!(a.differing(&b.digests()), vec![102]);
        assert_eq!(session(&mut a, pa, &mut b, pb), 1);
        assert_eq!(a.digests(), b.digests());
    }
}
