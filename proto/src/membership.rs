//! Membership of a private room that can be taken back: owner, admins, kicks and key epochs.
//!
//! A private room's key changes when someone is kicked. Each key is an **epoch**; an epoch is
//! named by the id of the operation that made it ([`EpochId`]; the room's first key has
//! [`EpochId::GENESIS`]). Membership operations ([`MemberOp`]) are history records of kind
//! `Member` (see `record.rs`), written into the epoch they act on: signed by their author, bound
//! to that epoch's chat topic, ordered by `(hlc, id)` and synced exactly like chat messages, so
//! they converge offline like history does.
//!
//! The trust root is the [`Charter`] a member starts from: the owner (the room's creator) and
//! the admins named in the invite it joined with. Everything else is decided by [`Membership`]
//! from the *set* of operations a node holds, never from the order they arrived in:
//!
//! - admins: the charter's, plus whoever the owner promoted, minus whoever the owner removed;
//! - a `Rekey` counts only if its author is an admin, it does not remove the owner, and (unless
//!   the owner wrote it) it removes no admin;
//! - the epoch chain: from the start epoch, among the counting rekeys written in the current
//!   epoch the one with the smallest `(hlc, id)` wins and becomes the next epoch;
//! - removed: everyone any counting rekey removed, in any branch. A removal that the current
//!   epoch's key recipients do not reflect is *pending*: the admin who made it (or the owner)
//!   rekeys again, so concurrent kicks end in one epoch that excludes every kicked member.
//!
//! The new key travels inside the rekey, sealed for each remaining member alone under the
//! direct-message key of the rekey's author and that member ([`crate::direct::direct_key`]).

use std::collections::{BTreeMap, BTreeSet};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::hlc::Hlc;
use crate::room::RoomKey;
use crate::MessageId;

/// What the text of a `Member` record starts with; hex of the postcard op follows.
pub const OP_PREFIX: &str = "hark-member/1 ";
/// A rekey seals the new key for at most this many members (the record's 16 KiB text bound).
pub const MAX_RECIPIENTS: usize = 64;
/// Associated data of a sealed epoch key: this, the new epoch's id and the recipient's peer id.
const KEY_DOMAIN: &[u8] = b"hark/epoch-key/1";
const NONCE_BYTES: usize = 24;
const MAX_PEER_BYTES: usize = 64;

/// Names an epoch: the id of the rekey that made it, all zeros for the room's first key.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct EpochId(pub [u8; 16]);

impl EpochId {
    pub const GENESIS: EpochId = EpochId([0; 16]);

    pub fn of(rekey: MessageId) -> Self {
        Self(rekey.0)
    }
}

/// One membership operation, written by its author into one epoch's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberOp {
    /// The author is a member of the epoch it is written in (written on joining and on moving
    /// to a new epoch, so that every epoch knows its members).
    Join,
    /// The owner names `peer` an admin.
    Promote {
        #[serde(with = "serde_bytes")]
        peer: Vec<u8>,
    },
    /// Close this epoch: `removed` are out, `keys` carry the next epoch's key to each member.
    Rekey {
        removed: Vec<PeerBytes>,
        keys: Vec<SealedKey>,
    },
}

/// A peer id as bytes (serialised as bytes, not a list of numbers).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerBytes(#[serde(with = "serde_bytes")] pub Vec<u8>);

/// The next epoch's key for one member: sealed under the DM key of the author and `peer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedKey {
    #[serde(with = "serde_bytes")]
    pub peer: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MemberError {
    #[error("not a membership operation")]
    NotAnOp,
    #[error("membership operation is malformed: {0}")]
    Malformed(String),
    #[error("membership operation breaks a limit: {0}")]
    Limit(&'static str),
    #[error("the epoch key does not open (not for us, or tampered)")]
    Unauthentic,
}

impl MemberOp {
    /// The op as the text of a `Member` record.
    pub fn to_text(&self) -> Result<String, MemberError> {
        self.check()?;
        let bytes =
            postcard::to_allocvec(self).map_err(|e| MemberError::Malformed(e.to_string()))?;
        Ok(format!("{OP_PREFIX}{}", hex::encode(bytes)))
    }

    /// Decode the text of a `Member` record. Never panics; checks every limit.
    pub fn from_text(text: &str) -> Result<Self, MemberError> {
        let body = text.strip_prefix(OP_PREFIX).ok_or(MemberError::NotAnOp)?;
        let bytes = hex::decode(body).map_err(|e| MemberError::Malformed(e.to_string()))?;
        let (op, rest): (MemberOp, _) =
            postcard::take_from_bytes(&bytes).map_err(|e| MemberError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(MemberError::Malformed("bytes after the op".into()));
        }
        op.check()?;
        Ok(op)
    }

    fn check(&self) -> Result<(), MemberError> {
        match self {
            MemberOp::Join => Ok(()),
            MemberOp::Promote { peer } => check_peer(peer),
            MemberOp::Rekey { removed, keys } => {
                if keys.len() > MAX_RECIPIENTS || removed.len() > MAX_RECIPIENTS {
                    return Err(MemberError::Limit("too many members in one rekey"));
                }
                if keys.is_empty() {
                    return Err(MemberError::Limit("a rekey carries no key"));
                }
                for p in removed {
                    check_peer(&p.0)?;
                }
                for k in keys {
                    check_peer(&k.peer)?;
                    if k.sealed.len() != NONCE_BYTES + 32 + 16 {
                        return Err(MemberError::Limit("a sealed key has the wrong length"));
                    }
                    if removed.iter().any(|p| p.0 == k.peer) {
                        return Err(MemberError::Limit(
                            "a rekey gives its key to a removed peer",
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

fn check_peer(peer: &[u8]) -> Result<(), MemberError> {
    if peer.is_empty() || peer.len() > MAX_PEER_BYTES {
        return Err(MemberError::Limit("peer id is empty or too long"));
    }
    Ok(())
}

fn key_aad(epoch: EpochId, recipient: &[u8]) -> Vec<u8> {
    let mut aad = KEY_DOMAIN.to_vec();
    aad.extend_from_slice(&epoch.0);
    aad.extend_from_slice(recipient);
    aad
}

/// Seal `key` (the key of epoch `epoch`) for `recipient` under `pair` (the DM key of the
/// rekey's author and the recipient).
pub fn seal_epoch_key<R: RngCore + CryptoRng>(
    pair: &RoomKey,
    epoch: EpochId,
    recipient: &[u8],
    key: &RoomKey,
    rng: &mut R,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_BYTES];
    rng.fill_bytes(&mut nonce);
    let cipher = XChaCha20Poly1305::new(pair.as_bytes().into());
    let aad = key_aad(epoch, recipient);
    let payload = Payload {
        msg: key.as_bytes(),
        aad: &aad,
    };
    let ciphertext = cipher
        .encrypt(XNonce::from_slice(&nonce), payload)
        .expect("XChaCha20-Poly1305 encryption is infallible for in-memory input");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ciphertext);
    out
}

/// Open a key sealed by [`seal_epoch_key`].
pub fn open_epoch_key(
    pair: &RoomKey,
    epoch: EpochId,
    recipient: &[u8],
    sealed: &[u8],
) -> Result<RoomKey, MemberError> {
    if sealed.len() != NONCE_BYTES + 32 + 16 {
        return Err(MemberError::Unauthentic);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
    let cipher = XChaCha20Poly1305::new(pair.as_bytes().into());
    let aad = key_aad(epoch, recipient);
    let plain = cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| MemberError::Unauthentic)?;
    let key: [u8; 32] = plain.try_into().map_err(|_| MemberError::Unauthentic)?;
    Ok(RoomKey::from_bytes(key))
}

/// Where a member's knowledge of a room starts: from its invite, or its own `create`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charter {
    /// The room's creator.
    pub owner: PeerBytes,
    /// Admins already named when the invite was made.
    pub admins: Vec<PeerBytes>,
    /// The epoch the invite's key opens.
    pub epoch: EpochId,
    /// That epoch's number (0 for the first key), for events.
    pub number: u32,
}

/// One membership operation as a node holds it: checked record fields plus the epoch whose
/// history it came in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: MessageId,
    pub hlc: Hlc,
    #[serde(with = "serde_bytes")]
    pub author: Vec<u8>,
    pub epoch: EpochId,
    pub op: MemberOp,
}

impl Entry {
    fn order(&self) -> (Hlc, MessageId) {
        (self.hlc, self.id)
    }
}

/// The pure membership rules of one room (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub charter: Charter,
    ops: BTreeMap<MessageId, Entry>,
}

impl Membership {
    pub fn new(charter: Charter) -> Self {
        Self {
            charter,
            ops: BTreeMap::new(),
        }
    }

    /// Add an operation; false if it was known. Whether it counts is decided on reading.
    pub fn insert(&mut self, entry: Entry) -> bool {
        if self.ops.contains_key(&entry.id) {
            return false;
        }
        self.ops.insert(entry.id, entry);
        true
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.ops.values()
    }

    pub fn owner(&self) -> &[u8] {
        &self.charter.owner.0
    }

    /// The charter's admins and those the owner promoted (whether removed or not).
    fn promoted(&self) -> BTreeSet<Vec<u8>> {
        let mut out: BTreeSet<Vec<u8>> = self.charter.admins.iter().map(|p| p.0.clone()).collect();
        for e in self.ops.values() {
            if let MemberOp::Promote { peer } = &e.op {
                if e.author == self.owner() && peer.as_slice() != self.owner() {
                    out.insert(peer.clone());
                }
            }
        }
        out
    }

    fn removed_by_owner(&self) -> BTreeSet<Vec<u8>> {
        let mut out = BTreeSet::new();
        for e in self.ops.values() {
            if let MemberOp::Rekey { removed, .. } = &e.op {
                if e.author == self.owner() && !removed.iter().any(|p| p.0 == self.owner()) {
                    out.extend(removed.iter().map(|p| p.0.clone()));
                }
            }
        }
        out
    }

    /// The owner and every admin still in the room.
    pub fn admins(&self) -> BTreeSet<Vec<u8>> {
        let gone = self.removed_by_owner();
        let mut out: BTreeSet<Vec<u8>> = self
            .promoted()
            .into_iter()
            .filter(|p| !gone.contains(p))
            .collect();
        out.insert(self.owner().to_vec());
        out
    }

    pub fn is_admin(&self, peer: &[u8]) -> bool {
        self.admins().contains(peer)
    }

    /// Whether an operation counts under the rules.
    pub fn counts(&self, entry: &Entry) -> bool {
        match &entry.op {
            MemberOp::Join => true,
            MemberOp::Promote { .. } => entry.author == self.owner(),
            MemberOp::Rekey { removed, .. } => {
                self.rekey_counts(entry, removed, &self.admins(), &self.promoted())
            }
        }
    }

    /// A rekey counts when an admin made it, it removes not the owner, and only the owner
    /// removes admins. `admins` and `promoted` are passed in so a scan of every op computes
    /// them once, not once per rekey.
    fn rekey_counts(
        &self,
        entry: &Entry,
        removed: &[PeerBytes],
        admins: &BTreeSet<Vec<u8>>,
        promoted: &BTreeSet<Vec<u8>>,
    ) -> bool {
        if !admins.contains(&entry.author) || removed.iter().any(|p| p.0 == self.owner()) {
            return false;
        }
        entry.author == self.owner() || !removed.iter().any(|p| promoted.contains(&p.0))
    }

    fn rekeys(&self) -> impl Iterator<Item = (&Entry, &Vec<PeerBytes>, &Vec<SealedKey>)> {
        let (admins, promoted) = (self.admins(), self.promoted());
        self.ops.values().filter_map(move |e| match &e.op {
            MemberOp::Rekey { removed, keys }
                if self.rekey_counts(e, removed, &admins, &promoted) =>
            {
                Some((e, removed, keys))
            }
            _ => None,
        })
    }

    /// Everyone a counting rekey removed, in any branch.
    pub fn removed(&self) -> BTreeSet<Vec<u8>> {
        self.rekeys()
            .flat_map(|(_, removed, _)| removed.iter().map(|p| p.0.clone()))
            .collect()
    }

    /// When each removed peer was first removed, in one scan (for sifting many messages).
    pub fn removal_times(&self) -> BTreeMap<Vec<u8>, Hlc> {
        let mut out: BTreeMap<Vec<u8>, Hlc> = BTreeMap::new();
        for (e, removed, _) in self.rekeys() {
            for p in removed {
                out.entry(p.0.clone())
                    .and_modify(|at| *at = (*at).min(e.hlc))
                    .or_insert(e.hlc);
            }
        }
        out
    }

    /// When `peer` was first removed: its messages with a later clock are not shown.
    pub fn removed_at(&self, peer: &[u8]) -> Option<Hlc> {
        self.rekeys()
            .filter(|(_, removed, _)| removed.iter().any(|p| p.0 == peer))
            .map(|(e, _, _)| e.hlc)
            .min()
    }

    /// Whether a message of `author` with clock `hlc` is shown: everything but what a removed
    /// member wrote after its removal (into an old epoch whose key it still has). A message of
    /// an old epoch from anyone else is shown whenever it arrives: its author wrote it before
    /// learning of the new epoch.
    pub fn shows(&self, author: &[u8], hlc: Hlc) -> bool {
        self.removed_at(author).is_none_or(|at| hlc < at)
    }

    /// The winning rekeys from the start epoch on, in order: `chain[i]` made epoch `i + 1`.
    pub fn chain(&self) -> Vec<&Entry> {
        let rekeys: Vec<&Entry> = self.rekeys().map(|(e, _, _)| e).collect();
        let mut chain: Vec<&Entry> = Vec::new();
        let mut current = self.charter.epoch;
        // Each step moves to an epoch named by an op id, never seen before: at most one step
        // per rekey, so a crafted cycle cannot loop.
        for _ in 0..=rekeys.len() {
            let Some(winner) = rekeys
                .iter()
                .filter(|e| e.epoch == current)
                .min_by_key(|e| e.order())
            else {
                break;
            };
            chain.push(winner);
            current = EpochId::of(winner.id);
        }
        chain
    }

    /// The epoch every member should end on, and its number.
    pub fn current(&self) -> (EpochId, u32) {
        let chain = self.chain();
        match chain.last() {
            Some(last) => (
                EpochId::of(last.id),
                // Saturating: the starting number comes from an invite, any u32.
                self.charter
                    .number
                    .saturating_add(u32::try_from(chain.len()).unwrap_or(u32::MAX)),
            ),
            None => (self.charter.epoch, self.charter.number),
        }
    }

    /// Who holds the key of `epoch` by a rekey (`None`: the start epoch, held by whoever has
    /// the invite).
    pub fn holders(&self, epoch: EpochId) -> Option<BTreeSet<Vec<u8>>> {
        let (_, _, keys) = self.rekeys().find(|(e, _, _)| EpochId::of(e.id) == epoch)?;
        Some(keys.iter().map(|k| k.peer.clone()).collect())
    }

    /// The members of the current epoch: the owner, the admins, the new key's recipients and
    /// whoever joined in it, less everyone removed.
    pub fn members(&self) -> BTreeSet<Vec<u8>> {
        let (current, _) = self.current();
        let removed = self.removed();
        let mut out = self.admins();
        out.extend(self.holders(current).unwrap_or_default());
        out.extend(
            self.ops
                .values()
                .filter(|e| e.epoch == current && e.op == MemberOp::Join)
                .map(|e| e.author.clone()),
        );
        out.retain(|p| !removed.contains(p));
        out
    }

    /// Removals the current epoch does not reflect: someone removed still holds its key.
    pub fn pending(&self) -> BTreeSet<Vec<u8>> {
        let (current, _) = self.current();
        let removed = self.removed();
        match self.holders(current) {
            Some(holders) => removed.intersection(&holders).cloned().collect(),
            None => removed,
        }
    }

    /// Whether `me` should rekey again, and whom to remove: there are pending removals, and
    /// `me` is the owner or made one of them (so that not every admin does it at once).
    pub fn should_rekey(&self, me: &[u8]) -> Option<Vec<Vec<u8>>> {
        let pending = self.pending();
        if pending.is_empty() || !self.is_admin(me) || self.removed().contains(me) {
            return None;
        }
        let mine = me == self.owner()
            || self.rekeys().any(|(e, removed, _)| {
                e.author == me && removed.iter().any(|p| pending.contains(&p.0))
            });
        mine.then(|| pending.into_iter().collect())
    }

    /// Why `me` may not remove `target` now, if it may not.
    pub fn may_kick(&self, me: &[u8], target: &[u8]) -> Result<(), &'static str> {
        if !self.is_admin(me) || self.removed().contains(me) {
            return Err("only the owner and admins can kick");
        }
        if target == me {
            return Err("you cannot kick yourself (leave the room instead)");
        }
        if target == self.owner() {
            return Err("nobody can kick the room's owner");
        }
        if me != self.owner() && self.promoted().contains(target) {
            return Err("only the owner can kick an admin");
        }
        if self.removed().contains(target) {
            return Err("already kicked");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
