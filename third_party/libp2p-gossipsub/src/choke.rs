//! Hark's fork: which mesh links are choked, per topic (HARK.md).
//!
//! Upstream, every mesh peer pushes every message to every other, so a node receives each
//! message up to once per mesh link. Here a mesh link that brings [`DUPLICATES_BEFORE_CHOKE`]
//! duplicates in a row is *choked*, on both sides (as Plumtree prunes its eager links):
//! neither end pushes that topic's messages over it any more, and each tells the other at
//! each heartbeat the ids it has (IHAVE). A configured number of links per topic stays
//! unchoked, so each message reaches each node about that many times. A gap (a lost link,
//! or links choked at once) is noticed through IHAVE: the message comes by IWANT and the link
//! that brought it is unchoked. A link is unchoked whenever it joins or leaves the mesh
//! (GRAFT, PRUNE). The rules that use this state are in `behaviour.rs`.

use std::collections::{HashMap, HashSet};

use libp2p_identity::PeerId;
use web_time::{Duration, Instant};

use crate::{MessageId, TopicHash};

/// How many duplicates in a row, with no first copy between them, a link must bring before
/// it is choked. One is not enough: while a room's meshes form, and whenever several people
/// write at once, a link that is redundant for one sender's message is the fastest path for
/// another's; choking it on one duplicate choked and unchoked links by the hundred in the
/// first seconds of a 50-node run and left gaps of up to 0.4 s.
pub(crate) const DUPLICATES_BEFORE_CHOKE: u8 = 3;

/// How long a link the peer asked to keep (UNCHOKE) is not choked again by us. Without it a
/// refused choke comes back every three duplicates, and so does the refusal.
pub(crate) const HOLD_OPEN: Duration = Duration::from_secs(30);

/// How many relayed first copies in a row may reach us by other links, with no copy at all
/// from an unchoked link between them, before that link stops counting as one that pushes
/// to us.
/// A link is unchoked by *state*; whether the far end pushes over it is another matter (it
/// may not have us in its mesh, or may be slow, or we may be the one that brings it
/// everything): the floor of pushing links counts only links that have shown it.
pub(crate) const MISSED_BEFORE_SILENT: u8 = 3;

/// Ids of pushes that never went out to one peer on one topic, kept for its next IHAVE at
/// most (gossipsub's default `max_ihave_length`).
pub(crate) const MAX_UNSENT: usize = 5000;

#[derive(Default)]
pub(crate) struct Chokes {
    /// Topics on whose mesh the link to a peer is choked.
    choked: HashMap<PeerId, HashSet<TopicHash>>,
    /// Duplicates a peer brought in a row on a topic since its last first copy.
    streaks: HashMap<PeerId, HashMap<TopicHash, u8>>,
    /// Links the peer asked to keep, until when (see [`HOLD_OPEN`]).
    held_open: HashMap<PeerId, HashMap<TopicHash, Instant>>,
    /// First copies on a topic that reached us by other links since a peer last brought us
    /// any copy on it (see [`MISSED_BEFORE_SILENT`]).
    missed: HashMap<PeerId, HashMap<TopicHash, u8>>,
    /// Messages we meant to push to a peer that never went out (its queue was full, or they
    /// waited there past their deadline): named in its next IHAVE (see [`Self::unsent`]).
    unsent: HashMap<PeerId, HashMap<TopicHash, Vec<MessageId>>>,
}

impl Chokes {
    /// `peer` brought a copy of a message on `topic`: a first copy (`first`) or a duplicate.
    /// Returns whether the link has now brought enough duplicates in a row to be choked.
    pub(crate) fn brought(&mut self, peer: PeerId, topic: &TopicHash, first: bool) -> bool {
        self.heard_from(&peer, topic);
        if first {
            if let Some(topics) = self.streaks.get_mut(&peer) {
                topics.remove(topic);
                if topics.is_empty() {
                    self.streaks.remove(&peer);
                }
            }
            return false;
        }
        let streak = self
            .streaks
            .entry(peer)
            .or_default()
            .entry(topic.clone())
            .or_default();
        *streak = streak.saturating_add(1);
        *streak >= DUPLICATES_BEFORE_CHOKE
    }

    /// `peer` brought a copy on `topic` (or was just unchoked): it counts as pushing again.
    pub(crate) fn heard_from(&mut self, peer: &PeerId, topic: &TopicHash) {
        if let Some(topics) = self.missed.get_mut(peer) {
            topics.remove(topic);
            if topics.is_empty() {
                self.missed.remove(peer);
            }
        }
    }

    /// A first copy on `topic`, relayed, came by some link other than the links to `others`
    /// (the other mesh links): each unchoked one missed it.
    pub(crate) fn missed_by<'a>(
        &mut self,
        others: impl IntoIterator<Item = &'a PeerId>,
        topic: &TopicHash,
    ) {
        for peer in others {
            if self.is_choked(peer, topic) {
                continue;
            }
            // The topic is cloned only for a link's first miss: this runs for every relayed
            // first copy, once per other mesh link.
            let topics = self.missed.entry(*peer).or_default();
            match topics.get_mut(topic) {
                Some(missed) => *missed = missed.saturating_add(1),
                None => {
                    topics.insert(topic.clone(), 1);
                }
            }
        }
    }

    /// Whether the link to `peer` is choked on `topic`: no messages pushed either way.
    pub(crate) fn is_choked(&self, peer: &PeerId, topic: &TopicHash) -> bool {
        self.choked.get(peer).is_some_and(|t| t.contains(topic))
    }

    /// Chokes (`true`) or unchokes the link to `peer` on `topic`. Returns whether that changed
    /// anything.
    pub(crate) fn set(&mut self, peer: PeerId, topic: &TopicHash, choked: bool) -> bool {
        self.brought(peer, topic, true);
        if choked {
            return self.choked.entry(peer).or_default().insert(topic.clone());
        }
        let Some(topics) = self.choked.get_mut(&peer) else {
            return false;
        };
        let changed = topics.remove(topic);
        if topics.is_empty() {
            self.choked.remove(&peer);
        }
        changed
    }

    /// `peer` asked us to keep the link on `topic` (it sent UNCHOKE): we do not choke it for
    /// [`HOLD_OPEN`].
    pub(crate) fn hold_open(&mut self, peer: PeerId, topic: &TopicHash) {
        let until = Instant::now() + HOLD_OPEN;
        self.held_open
            .entry(peer)
            .or_default()
            .insert(topic.clone(), until);
    }

    /// Whether the link to `peer` on `topic` is held open (and forgets a hold that is over).
    pub(crate) fn held_open(&mut self, peer: &PeerId, topic: &TopicHash) -> bool {
        let Some(topics) = self.held_open.get_mut(peer) else {
            return false;
        };
        let open = topics
            .get(topic)
            .is_some_and(|until| Instant::now() < *until);
        if !open {
            topics.remove(topic);
            if topics.is_empty() {
                self.held_open.remove(peer);
            }
        }
        open
    }

    /// `peer` disconnected.
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.choked.remove(peer);
        self.streaks.remove(peer);
        self.held_open.remove(peer);
        self.missed.remove(peer);
        self.unsent.remove(peer);
    }

    /// A push of message `id` on `topic` to `peer` never went out. With one link pushing to
    /// each node, a push dropped under load is a gap for everything behind that link, and
    /// nothing else would tell the peer: an unchoked link carries no IHAVE. Bounded by
    /// [`MAX_UNSENT`] per peer and topic.
    pub(crate) fn unsent(&mut self, peer: PeerId, topic: &TopicHash, id: MessageId) {
        let ids = self
            .unsent
            .entry(peer)
            .or_default()
            .entry(topic.clone())
            .or_default();
        if ids.len() < MAX_UNSENT {
            ids.push(id);
        }
    }

    /// Every push that never went out, by peer and topic, forgotten here: the heartbeat
    /// names them in an IHAVE.
    pub(crate) fn take_unsent(&mut self) -> HashMap<PeerId, HashMap<TopicHash, Vec<MessageId>>> {
        std::mem::take(&mut self.unsent)
    }

    /// How many of `mesh`'s links are not choked on `topic` (the tests' view; the rules count
    /// [`Self::pushing`]).
    #[cfg(test)]
    pub(crate) fn unchoked<'a>(
        &self,
        mesh: impl IntoIterator<Item = &'a PeerId>,
        topic: &TopicHash,
    ) -> usize {
        mesh.into_iter()
            .filter(|p| !self.is_choked(p, topic))
            .count()
    }

    /// Whether the link to `peer` pushes to us on `topic`: not choked, and not silent while
    /// [`MISSED_BEFORE_SILENT`] relayed first copies came by other links. In a room with no
    /// relayed traffic every unchoked link counts.
    pub(crate) fn is_pushing(&self, peer: &PeerId, topic: &TopicHash) -> bool {
        !self.is_choked(peer, topic)
            && self
                .missed
                .get(peer)
                .and_then(|t| t.get(topic))
                .is_none_or(|missed| *missed < MISSED_BEFORE_SILENT)
    }

    /// How many of `mesh`'s links push to us on `topic` ([`Self::is_pushing`]): what the
    /// floor of `keep_unchoked` counts.
    pub(crate) fn pushing<'a>(
        &self,
        mesh: impl IntoIterator<Item = &'a PeerId>,
        topic: &TopicHash,
    ) -> usize {
        mesh.into_iter()
            .filter(|p| self.is_pushing(p, topic))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_choked_per_peer_and_topic_until_unchoked_or_forgotten() {
        let mut chokes = Chokes::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let (room, other) = (TopicHash::from_raw("room"), TopicHash::from_raw("other"));
        assert!(chokes.set(a, &room, true));
        assert!(!chokes.set(a, &room, true), "already choked");
        assert!(chokes.is_choked(&a, &room));
        assert!(!chokes.is_choked(&a, &other) && !chokes.is_choked(&b, &room));
        assert_eq!(chokes.unchoked([&a, &b], &room), 1);
        assert!(chokes.set(a, &room, false));
        assert!(!chokes.set(a, &room, false), "already unchoked");
        assert!(chokes.choked.is_empty(), "nothing left behind");
        chokes.set(b, &other, true);
        chokes.forget(&b);
        assert!(!chokes.is_choked(&b, &other));
    }

    #[test]
    fn only_duplicates_in_a_row_with_no_first_copy_between_make_a_link_choke_worthy() {
        let mut chokes = Chokes::default();
        let peer = PeerId::random();
        let room = TopicHash::from_raw("room");
        for _ in 1..DUPLICATES_BEFORE_CHOKE {
            assert!(!chokes.brought(peer, &room, false));
        }
        assert!(
            !chokes.brought(peer, &room, true),
            "a first copy starts the count again"
        );
        for _ in 1..DUPLICATES_BEFORE_CHOKE {
            assert!(!chokes.brought(peer, &room, false));
        }
        assert!(chokes.brought(peer, &room, false));
        assert!(
            !chokes.brought(peer, &TopicHash::from_raw("other"), false),
            "per topic"
        );
        chokes.set(peer, &room, true);
        assert!(
            !chokes.brought(peer, &room, false),
            "choking starts the count again"
        );
        chokes.forget(&peer);
        assert!(chokes.streaks.is_empty() && chokes.choked.is_empty());
    }

    #[test]
    fn a_link_held_open_stays_open_for_a_while_and_is_then_forgotten() {
        let mut chokes = Chokes::default();
        let peer = PeerId::random();
        let room = TopicHash::from_raw("room");
        assert!(!chokes.held_open(&peer, &room));
        chokes.hold_open(peer, &room);
        assert!(chokes.held_open(&peer, &room));
        assert!(!chokes.held_open(&peer, &TopicHash::from_raw("other")));
        // Over: as if HOLD_OPEN had passed.
        chokes
            .held_open
            .get_mut(&peer)
            .unwrap()
            .insert(room.clone(), Instant::now());
        assert!(!chokes.held_open(&peer, &room));
        assert!(
            chokes.held_open.is_empty(),
            "a hold that is over is forgotten"
        );
        chokes.hold_open(peer, &room);
        chokes.forget(&peer);
        assert!(chokes.held_open.is_empty());
    }
}
