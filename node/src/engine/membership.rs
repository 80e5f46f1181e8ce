//! Private rooms whose membership can be taken back: owner, admins, kicks and key epochs.
//!
//! The rules are pure (`hark_proto::membership`); this file keeps each private room's
//! [`Membership`] and the keys of its epochs, turns `Member` records that arrive in any epoch's
//! history into operations, and acts on what the rules decide:
//!
//! - a winning rekey whose key was sealed for us moves the room to the new epoch: its chat and
//!   voice topics are subscribed, the old voice topic is left, and the old epoch stays as a
//!   *retired* room (its chat topic still subscribed, read and synced, never written to), so a
//!   member who was away learns of the kick by syncing the old epoch, and a message written
//!   there by someone who had not heard of it yet is still shown;
//! - a removed member's messages with a clock after its removal are never shown;
//! - a removal the current epoch does not reflect (concurrent kicks) makes its author, or the
//!   owner, rekey again.
//!
//! State is saved whole (JSON, a few KiB) in the store after every change.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hark_proto::membership::{
    open_epoch_key, seal_epoch_key, Charter, Entry, EpochId, MemberOp, Membership, PeerBytes,
    SealedKey, MAX_RECIPIENTS,
};
use hark_proto::{Body, Invite, MessageId, MessageKind, MessageRecord, RoomKey, RoomName, Topic};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::identities::ed25519_key;
use super::{fail, CommandError, Engine, Output, RoomState, Storage};
use crate::api::Event;
use crate::history::{authorship, Added};
use crate::rooms::Room;
use crate::store::StoredMessage;

/// One private room's membership as this node knows it.
#[derive(Default)]
pub struct RoomMembers {
    rules: Membership,
    /// The key of every epoch we hold.
    keys: BTreeMap<EpochId, RoomKey>,
    /// The epoch we are on (write in).
    on: EpochId,
    /// Removals already announced with `kicked`.
    announced: BTreeSet<Vec<u8>>,
}

/// What is saved per room.
#[derive(Serialize, Deserialize)]
struct Saved {
    charter: Charter,
    ops: Vec<Entry>,
    keys: Vec<(EpochId, [u8; 32])>,
    on: EpochId,
    announced: Vec<Vec<u8>>,
}

/// Every private room's membership, and which room and epoch each chat topic is.
#[derive(Default)]
pub struct Members {
    rooms: HashMap<RoomName, RoomMembers>,
    topics: HashMap<Topic, (RoomName, EpochId)>,
}

impl Members {
    fn add_epoch(&mut self, name: &RoomName, epoch: EpochId, key: &RoomKey) {
        self.topics.insert(key.chat_topic(), (name.clone(), epoch));
    }
}

fn peer_text(bytes: &[u8]) -> String {
    PeerId::from_bytes(bytes)
        .map(|p| p.to_string())
        .unwrap_or_default()
}

impl<S: Storage> Engine<S> {
    // ----- start, create, join, leave -----

    /// At start: each private room's saved membership; rooms whose epoch moved on are put on
    /// their current key, with their old epochs retired.
    pub(super) fn restore_members(&mut self) {
        let private: Vec<Room> = self
            .book
            .iter()
            .filter(|r| r.private && r.name.direct_peer().is_none())
            .cloned()
            .collect();
        for room in private {
            let saved = match self.store.membership(&room.name) {
                Ok(Some(bytes)) => serde_json::from_slice::<Saved>(&bytes),
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(room = %room.name, "cannot read membership: {e}");
                    continue;
                }
            };
            let Ok(saved) = saved else {
                tracing::warn!(room = %room.name, "saved membership does not decode; ignored");
                continue;
            };
            let mut rules = Membership::new(saved.charter);
            for entry in saved.ops {
                rules.insert(entry);
            }
            let members = RoomMembers {
                rules,
                keys: saved
                    .keys
                    .into_iter()
                    .map(|(e, k)| (e, RoomKey::from_bytes(k)))
                    .collect(),
                on: saved.on,
                announced: saved.announced.into_iter().collect(),
            };
            if let Some(key) = members.keys.get(&members.on) {
                if *key != room.key {
                    let current = Room::new(room.name.clone(), key.clone(), true);
                    self.book.rekey(current.clone());
                    self.rooms
                        .insert(current.chat_topic.clone(), RoomState::new(current));
                }
            }
            for (epoch, key) in &members.keys {
                self.members.add_epoch(&room.name, *epoch, key);
                if *epoch != members.on {
                    let old = Room::new(room.name.clone(), key.clone(), true);
                    self.book.retire(old.clone());
                    self.rooms
                        .entry(old.chat_topic.clone())
                        .or_insert_with(|| RoomState::new(old));
                }
            }
            self.members.rooms.insert(room.name.clone(), members);
        }
    }

    /// At start: listen on the chat topics of old epochs (late messages, members catching up).
    pub(super) fn subscribe_retired(&mut self) {
        let topics: Vec<Topic> = self.book.retired().map(|r| r.chat_topic.clone()).collect();
        for topic in topics {
            self.out.push(Output::Subscribe(topic));
        }
    }

    /// We created `room`: we own it.
    pub(super) fn members_created(&mut self, room: &Room) {
        let charter = Charter {
            owner: PeerBytes(self.me.to_bytes()),
            ..Charter::default()
        };
        self.start_members(room, charter);
    }

    /// We joined a private room with `invite`: a v2 invite names its owner (a v1 invite makes
    /// a room without kicks). We say that we are a member.
    pub(super) fn members_joined(&mut self, room: &Room, invite: &str) {
        if self.members.rooms.contains_key(&room.name) {
            return;
        }
        let text = if Invite::looks_like_one(invite) {
            invite.trim().to_owned()
        } else {
            format!("hark:{}", invite.trim())
        };
        let Ok((_, Some(charter))) = Invite::decode_with_charter(&text) else {
            return;
        };
        self.start_members(room, charter);
        let topic = room.chat_topic.clone();
        if let Err(e) = self.write_op(&topic, MemberOp::Join, None) {
            tracing::warn!(room = %room.name, "cannot say we joined: {e}");
        }
    }

    fn start_members(&mut self, room: &Room, charter: Charter) {
        let epoch = charter.epoch;
        let mut members = RoomMembers {
            rules: Membership::new(charter),
            on: epoch,
            ..RoomMembers::default()
        };
        members.keys.insert(epoch, room.key.clone());
        self.members.add_epoch(&room.name, epoch, &room.key);
        self.members.rooms.insert(room.name.clone(), members);
        self.save_members(&room.name);
    }

    /// We left a room: its old epochs go too.
    pub(super) fn members_left(&mut self, name: &RoomName) {
        let retired: Vec<Room> = self
            .book
            .retired()
            .filter(|r| r.name == *name)
            .cloned()
            .collect();
        for room in retired {
            self.rooms.remove(&room.chat_topic);
            self.delivery.forget_room(&room.chat_topic);
            self.out.push(Output::Unsubscribe(room.chat_topic));
        }
        self.members.topics.retain(|_, (n, _)| n != name);
        if self.members.rooms.remove(name).is_some() {
            if let Err(e) = self.store.set_membership(name, None) {
                tracing::warn!(room = %name, "cannot forget membership: {e}");
            }
        }
    }

    fn save_members(&mut self, name: &RoomName) {
        let Some(m) = self.members.rooms.get(name) else {
            return;
        };
        let saved = Saved {
            charter: m.rules.charter.clone(),
            ops: m.rules.entries().cloned().collect(),
            keys: m.keys.iter().map(|(e, k)| (*e, *k.as_bytes())).collect(),
            on: m.on,
            announced: m.announced.iter().cloned().collect(),
        };
        let result = serde_json::to_vec(&saved)
            .map_err(|e| e.to_string())
            .and_then(|bytes| self.store.set_membership(name, Some(&bytes)));
        if let Err(e) = result {
            tracing::error!(room = %name, "cannot save membership: {e}");
        }
    }

    /// The invite of a private room with membership: its current key and charter.
    pub(super) fn members_invite(&self, name: &RoomName) -> Option<String> {
        let m = self.members.rooms.get(name)?;
        let key = m.keys.get(&m.on)?.clone();
        let number = self.epoch_number(m, m.on);
        // Invite::encode_with keeps the first MAX_CHARTER_ADMINS.
        let admins: Vec<PeerBytes> = m
            .rules
            .admins()
            .into_iter()
            .filter(|a| a.as_slice() != m.rules.owner())
            .map(PeerBytes)
            .collect();
        let charter = Charter {
            owner: PeerBytes(m.rules.owner().to_vec()),
            admins,
            epoch: m.on,
            number,
        };
        Some(
            Invite {
                name: name.clone(),
                key,
            }
            .encode_with(&charter),
        )
    }

    fn epoch_number(&self, m: &RoomMembers, epoch: EpochId) -> u32 {
        let chain = m.rules.chain();
        chain
            .iter()
            .position(|e| EpochId::of(e.id) == epoch)
            .map_or(m.rules.charter.number, |i| {
                let later = u32::try_from(i + 1).unwrap_or(u32::MAX);
                m.rules.charter.number.saturating_add(later)
            })
    }

    // ----- commands -----

    pub(super) fn kick(&mut self, typed: &str, who: &str) -> Result<(), CommandError> {
        let (name, target) = self.members_target(typed, who)?;
        let me = self.me.to_bytes();
        let m = &self.members.rooms[&name];
        m.rules
            .may_kick(&me, &target)
            .map_err(|why| fail("not_allowed", why))?;
        if m.on != m.rules.current().0 {
            return Err(fail(
                "not_allowed",
                "this node does not hold the room's current key",
            ));
        }
        let mut removed: BTreeSet<Vec<u8>> = m.rules.pending();
        removed.insert(target);
        self.rekey(&name, removed.into_iter().collect())
            .map_err(|e| fail("store_failed", e))?;
        self.settle(&name);
        Ok(())
    }

    pub(super) fn promote(&mut self, typed: &str, who: &str) -> Result<(), CommandError> {
        let (name, target) = self.members_target(typed, who)?;
        let m = &self.members.rooms[&name];
        if self.me.to_bytes() != m.rules.owner() {
            return Err(fail("not_allowed", "only the room's owner names admins"));
        }
        if m.rules.removed().contains(&target) {
            return Err(fail("not_allowed", "that peer was kicked"));
        }
        if target == m.rules.owner() {
            return Err(fail("not_allowed", "the owner is an admin already"));
        }
        let topic = self.book.get(&name).map(|r| r.chat_topic.clone());
        if let Some(topic) = topic {
            self.write_op(&topic, MemberOp::Promote { peer: target }, None)
                .map_err(|e| fail("store_failed", e))?;
        }
        self.settle(&name);
        self.members_command(name.as_str())
    }

    /// The members of the private room of `topic` by its membership rules, without us, when
    /// it has rules (delivery marks count them as the room's M).
    pub(super) fn listed_members(&self, topic: &Topic) -> Option<Vec<PeerId>> {
        let name = &self.rooms.get(topic)?.room.name;
        let m = self.members.rooms.get(name)?;
        let mut members: Vec<PeerId> = m
            .rules
            .members()
            .iter()
            .filter_map(|p| PeerId::from_bytes(p).ok())
            .filter(|p| *p != self.me)
            .collect();
        members.sort();
        Some(members)
    }

    pub(super) fn members_command(&mut self, typed: &str) -> Result<(), CommandError> {
        let name = self.members_room(typed)?;
        let m = &self.members.rooms[&name];
        let texts =
            |set: BTreeSet<Vec<u8>>| -> Vec<String> { set.iter().map(|p| peer_text(p)).collect() };
        let event = Event::Members {
            room: name.to_string(),
            owner: peer_text(m.rules.owner()),
            admins: texts(m.rules.admins()),
            members: texts(m.rules.members()),
            epoch: self.epoch_number(m, m.on),
            kicked: texts(m.rules.removed()),
        };
        self.emit(event);
        Ok(())
    }

    fn members_room(&self, typed: &str) -> Result<RoomName, CommandError> {
        let topic = self.room_topic(typed)?;
        let room = &self.rooms[&topic].room;
        let name = room.name.clone();
        if !self.members.rooms.contains_key(&name) {
            let why = if name.as_str().starts_with('@') {
                format!("{name} is a direct message: it has two people and no members list")
            } else if !room.private {
                format!("{name} is a public room: anyone may join it, so it has no members list")
            } else {
                format!("{name} has no owner: only private rooms created by this version can kick")
            };
            return Err(fail("no_members", why));
        }
        Ok(name)
    }

    fn members_target(
        &mut self,
        typed: &str,
        who: &str,
    ) -> Result<(RoomName, Vec<u8>), CommandError> {
        let name = self.members_room(typed)?;
        let peer = self.resolve_peer(who)?;
        Ok((name, peer.to_bytes()))
    }

    // ----- operations in -----

    /// Take the membership records out of what a gossip change or a sync brought to the room
    /// of `topic` (they are never shown as messages), apply them, and drop the messages the
    /// rules do not show (a removed member's, written after its removal).
    pub(super) fn sift_members(&mut self, topic: &Topic, added: &mut [Added]) {
        let Some((name, epoch)) = self.members.topics.get(topic).cloned() else {
            // Not a room with membership: a `Member` record is never shown anywhere.
            for chunk in added.iter_mut() {
                chunk.records.retain(|r| r.kind != MessageKind::Member);
            }
            return;
        };
        let mut changed = false;
        let Some(m) = self.members.rooms.get_mut(&name) else {
            return;
        };
        for chunk in added.iter_mut() {
            for record in chunk
                .records
                .iter()
                .filter(|r| r.kind == MessageKind::Member)
            {
                match MemberOp::from_text(&record.text) {
                    Ok(op) => {
                        changed |= m.rules.insert(Entry {
                            id: record.id,
                            hlc: record.hlc,
                            author: record.author.clone(),
                            epoch,
                            op,
                        });
                    }
                    Err(e) => tracing::debug!(room = %name, "a membership record is bad: {e}"),
                }
            }
            chunk.records.retain(|r| r.kind != MessageKind::Member);
        }
        if changed {
            self.settle(&name);
        }
        let Some(m) = self.members.rooms.get(&name) else {
            return;
        };
        // One scan of the rules for all the records (a catch-up brings thousands).
        let removed_at = m.rules.removal_times();
        if removed_at.is_empty() {
            return;
        }
        let mut hidden = 0;
        for chunk in added.iter_mut() {
            let before = chunk.records.len();
            chunk
                .records
                .retain(|r| removed_at.get(&r.author).is_none_or(|at| r.hlc < *at));
            hidden += before - chunk.records.len();
        }
        if hidden > 0 {
            tracing::info!(room = %name, hidden, "messages a kicked member wrote after the kick were not shown");
        }
    }

    /// After the rules changed: open keys sealed for us, follow the chain as far as we hold
    /// keys, announce kicks, rekey again if a removal is not reflected, and save.
    fn settle(&mut self, name: &RoomName) {
        self.open_keys(name);
        let Some(m) = self.members.rooms.get(name) else {
            return;
        };
        // Follow the winning chain while we hold its keys.
        let mut target = m.rules.charter.epoch;
        for step in m.rules.chain() {
            let next = EpochId::of(step.id);
            if !m.keys.contains_key(&next) {
                break;
            }
            target = next;
        }
        let removals: Vec<(Vec<u8>, Vec<u8>)> = m
            .rules
            .removed()
            .into_iter()
            .filter(|p| !m.announced.contains(p))
            .map(|p| {
                let by = m
                    .rules
                    .entries()
                    .filter(|e| matches!(&e.op, MemberOp::Rekey { removed, .. } if removed.iter().any(|r| r.0 == p)))
                    .filter(|e| m.rules.counts(e))
                    .min_by_key(|e| (e.hlc, e.id))
                    .map(|e| e.author.clone())
                    .unwrap_or_default();
                (p, by)
            })
            .collect();
        let moved = target != m.on;
        for (peer, by) in removals {
            if let Some(m) = self.members.rooms.get_mut(name) {
                m.announced.insert(peer.clone());
            }
            self.emit(Event::Kicked {
                room: name.to_string(),
                peer: peer_text(&peer),
                by: peer_text(&by),
            });
        }
        if moved {
            self.move_to(name, target);
        }
        let me = self.me.to_bytes();
        let again = self.members.rooms.get(name).and_then(|m| {
            (m.on == m.rules.current().0)
                .then(|| m.rules.should_rekey(&me))
                .flatten()
        });
        if let Some(removed) = again {
            tracing::info!(room = %name, "a kick is not reflected in the current key: rekeying");
            match self.rekey(name, removed) {
                Ok(()) => return self.settle(name),
                Err(e) => tracing::warn!(room = %name, "cannot rekey: {e}"),
            }
        }
        self.save_members(name);
    }

    /// Open every key sealed for us in a counting rekey we do not hold yet.
    fn open_keys(&mut self, name: &RoomName) {
        let me = self.me.to_bytes();
        let Some(m) = self.members.rooms.get(name) else {
            return;
        };
        let sealed: Vec<(EpochId, Vec<u8>, Vec<u8>)> = m
            .rules
            .entries()
            .filter(|e| m.rules.counts(e) && !m.keys.contains_key(&EpochId::of(e.id)))
            .filter_map(|e| match &e.op {
                MemberOp::Rekey { keys, .. } => keys
                    .iter()
                    .find(|k| k.peer == me)
                    .map(|k| (EpochId::of(e.id), e.author.clone(), k.sealed.clone())),
                _ => None,
            })
            .collect();
        for (epoch, author, sealed) in sealed {
            let opened = PeerId::from_bytes(&author)
                .ok()
                .and_then(|author| self.pair_key(&author))
                .and_then(|pair| open_epoch_key(&pair, epoch, &me, &sealed).ok());
            match opened {
                Some(key) => {
                    self.members.add_epoch(name, epoch, &key);
                    if let Some(m) = self.members.rooms.get_mut(name) {
                        m.keys.insert(epoch, key);
                    }
                }
                None => tracing::warn!(room = %name, "a key sealed for us does not open"),
            }
        }
    }

    /// The DM key of us and `peer` (what epoch keys are sealed under).
    fn pair_key(&self, peer: &PeerId) -> Option<RoomKey> {
        let theirs = ed25519_key(peer)?;
        let ours = self.identity.clone().try_into_ed25519().ok()?;
        let seed: [u8; 32] = ours.secret().as_ref().try_into().ok()?;
        hark_proto::direct::direct_key(&seed, &theirs).ok()
    }

    /// Move the room to epoch `epoch` (whose key we hold): new topics, the old chat topic
    /// kept as a retired room, the old voice topic left; we say we are a member there.
    fn move_to(&mut self, name: &RoomName, epoch: EpochId) {
        let Some(m) = self.members.rooms.get_mut(name) else {
            return;
        };
        let Some(key) = m.keys.get(&epoch).cloned() else {
            return;
        };
        m.on = epoch;
        let number = {
            let m = &self.members.rooms[name];
            self.epoch_number(m, epoch)
        };
        let room = Room::new(name.clone(), key, true);
        let Some(old) = self.book.rekey(room.clone()) else {
            return;
        };
        let topic = room.chat_topic.clone();
        self.out.push(Output::Subscribe(room.chat_topic.clone()));
        self.out.push(Output::Subscribe(room.voice_topic.clone()));
        self.out.push(Output::Unsubscribe(old.voice_topic.clone()));
        self.rooms
            .entry(topic.clone())
            .or_insert_with(|| RoomState::new(room));
        tracing::info!(room = %name, epoch = number, "moved to a new key epoch");
        self.emit(Event::Epoch {
            room: name.to_string(),
            epoch: number,
        });
        self.sync_new_room(&topic);
        let soon = self.presence_soon();
        self.schedule_presence(&topic, soon);
        if let Err(e) = self.write_op(&topic, MemberOp::Join, None) {
            tracing::warn!(room = %name, "cannot say we are in the new epoch: {e}");
        }
    }

    // ----- operations out -----

    /// Close the current epoch: a fresh key for every member but `removed`, sealed for each.
    fn rekey(&mut self, name: &RoomName, removed: Vec<Vec<u8>>) -> Result<(), String> {
        let me = self.me.to_bytes();
        let m = self
            .members
            .rooms
            .get(name)
            .ok_or_else(|| "no membership".to_owned())?;
        let gone: BTreeSet<Vec<u8>> = m
            .rules
            .removed()
            .into_iter()
            .chain(removed.clone())
            .collect();
        let mut recipients: BTreeSet<Vec<u8>> = m.rules.members();
        recipients.insert(me.clone());
        recipients.retain(|p| !gone.contains(p));
        if recipients.len() > MAX_RECIPIENTS {
            return Err(format!(
                "a room of more than {MAX_RECIPIENTS} members cannot be rekeyed"
            ));
        }
        let topic = self
            .book
            .get(name)
            .map(|r| r.chat_topic.clone())
            .ok_or_else(|| "not in the room".to_owned())?;
        let id = MessageId::random(&mut self.rng);
        let epoch = EpochId::of(id);
        let key = RoomKey::random(&mut self.rng);
        let mut keys = Vec::new();
        for peer in recipients {
            let Some(pair) = PeerId::from_bytes(&peer)
                .ok()
                .and_then(|p| self.pair_key(&p))
            else {
                tracing::warn!(room = %name, "a member's id is not an Ed25519 key: left out");
                continue;
            };
            let sealed = seal_epoch_key(&pair, epoch, &peer, &key, &mut self.rng);
            keys.push(SealedKey { peer, sealed });
        }
        let removed = removed.into_iter().map(PeerBytes).collect();
        // We hold the new key before anyone hears of it.
        self.members.add_epoch(name, epoch, &key);
        if let Some(m) = self.members.rooms.get_mut(name) {
            m.keys.insert(epoch, key);
        }
        self.write_op(&topic, MemberOp::Rekey { removed, keys }, Some(id))
    }

    /// Write a membership operation into the history of the epoch of `topic`: stored, then
    /// published like a message, and applied here.
    fn write_op(
        &mut self,
        topic: &Topic,
        op: MemberOp,
        id: Option<MessageId>,
    ) -> Result<(), String> {
        let Some((name, epoch)) = self.members.topics.get(topic).cloned() else {
            return Err("not a room with membership".to_owned());
        };
        let text = op.to_text().map_err(|e| e.to_string())?;
        let now = self.wall_ms();
        let mut record = MessageRecord {
            id: id.unwrap_or_else(|| MessageId::random(&mut self.rng)),
            author: self.me.to_bytes(),
            name: self.name.clone(),
            hlc: self.clock.tick(now),
            kind: MessageKind::Member,
            text,
            signature: Vec::new(),
        };
        authorship::sign(&mut record, &self.identity, topic.as_str());
        let mut added = self
            .history(topic)?
            .add_local(&record)
            .map_err(|e| e.to_string())?;
        added.records.clear();
        let (shard, change) = (added.shard, added.bytes.clone());
        self.persist(topic, vec![added])?;
        self.publish_as(topic, record.id, Body::Change { shard, change });
        if let Some(m) = self.members.rooms.get_mut(&name) {
            m.rules.insert(Entry {
                id: record.id,
                hlc: record.hlc,
                author: record.author,
                epoch,
                op,
            });
        }
        Ok(())
    }

    // ----- reading a room across its epochs -----

    /// Whether `author` was kicked from the private room of `topic`.
    pub(super) fn kicked_from(&self, topic: &Topic, author: &[u8]) -> bool {
        self.members
            .topics
            .get(topic)
            .and_then(|(name, _)| self.members.rooms.get(name))
            .is_some_and(|m| m.rules.removed().contains(author))
    }

    /// Whether `topic` is an old key epoch of a room (read and synced, never written to).
    pub(super) fn is_retired(&self, topic: &Topic) -> bool {
        self.rooms.get(topic).is_some_and(|r| {
            self.book
                .get(&r.room.name)
                .is_some_and(|current| current.chat_topic != *topic)
        })
    }

    /// The chat topics of every epoch of the room of `topic` we hold, current first.
    pub(super) fn epoch_topics(&self, topic: &Topic) -> Vec<Topic> {
        let Some(name) = self.rooms.get(topic).map(|r| r.room.name.clone()) else {
            return vec![topic.clone()];
        };
        let mut topics = vec![topic.clone()];
        topics.extend(
            self.book
                .retired()
                .filter(|r| r.name == name && r.chat_topic != *topic)
                .map(|r| r.chat_topic.clone()),
        );
        topics
    }

    /// The newest `limit` messages of a room across its epochs (`before`: those older than
    /// that message, in every epoch), oldest first; `None` if no epoch holds `before`.
    pub(super) fn room_messages(
        &mut self,
        topic: &Topic,
        limit: usize,
        before: Option<MessageId>,
    ) -> Result<Option<Vec<StoredMessage>>, String> {
        let topics = self.epoch_topics(topic);
        // What was shown is what a reader expects to find.
        for topic in &topics {
            self.save_held(topic);
        }
        let Some(before) = before else {
            let mut all = Vec::new();
            for topic in topics {
                all.extend(self.store.messages(&topic, limit, None)?);
            }
            return Ok(Some(newest(all, limit)));
        };
        let mut clock = None;
        for topic in &topics {
            if let Some(hlc) = self.store.message_clock(topic, before)? {
                clock = Some(hlc);
                break;
            }
        }
        // An id no epoch holds is no place to page back from.
        let Some(hlc) = clock else {
            return Ok(None);
        };
        if topics.len() == 1 {
            return self.store.messages(topic, limit, Some(before)).map(Some);
        }
        let mut all = Vec::new();
        for topic in topics {
            all.extend(self.store.messages_older(&topic, hlc, before, limit)?);
        }
        Ok(Some(newest(all, limit)))
    }

    pub(super) fn room_search(
        &mut self,
        topic: &Topic,
        text: &str,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, String> {
        let mut all = Vec::new();
        for topic in self.epoch_topics(topic) {
            self.save_held(&topic);
            all.extend(self.store.search(&topic, text, limit)?);
        }
        Ok(newest(all, limit))
    }
}

/// The newest `limit` of messages from several epochs, oldest first in (HLC, id) order.
fn newest(mut all: Vec<StoredMessage>, limit: usize) -> Vec<StoredMessage> {
    all.sort_by_key(|m| (m.hlc, m.id));
    let start = all.len().saturating_sub(limit);
    all.split_off(start)
}

#[cfg(test)]
#[path = "membership_tests.rs"]
mod tests;
