//! Which peers hold a message of ours, learned from what sync already tells: no peer ever
//! sends anything to acknowledge a message.
//!
//! A `/hark/sync/1` session with a room peer that began after a message was stored, and
//! completed, means that peer holds it: the session's first exchange compared digests that
//! included it (equal digests: the peer holds everything we had), and a session ends only
//! when neither side has anything left to send. So every completed session — whoever started
//! it and why: a peer subscribing, anti-entropy, onward spread, the chase below — marks the
//! peer as a holder of each of our messages stored before it began. Gossip alone proves
//! nothing.
//!
//! For each message this node wrote during this run (the newest [`MAX_TRACKED`] per room,
//! [`MAX_TRACKED_ALL`] in all) the engine keeps the holders learned so far and raises
//! [`Event::Delivered`] when that set grows, with the whole list and the room's member count
//! (growths less than [`FLUSH_EVERY`] apart come together in one event). Holders are not
//! stored: after a restart our messages of the last [`RESTORE_WINDOW_MS`] found in the store
//! are followed again from no holder, and every session completed from then on marks its
//! peer (they were stored before any session of the new run began).
//!
//! Chasing: shortly after we store a message ([`DEBOUNCE`]; one round covers every message
//! written meanwhile) we sync with the room's connected peers that are not known to hold it,
//! at most [`CHASE_PEERS`] sessions a round, a round every [`CHASE_EVERY`], for [`CHASE_FOR`]
//! after the newest message was stored. A peer that comes later gets it through the session
//! its subscription starts, which marks it then. A client that must know (a one-shot
//! `hark-node`, [`Input::ConfirmDelivery`](super::Input::ConfirmDelivery)) has each of its
//! messages chased until some peer holds it, however long that takes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use hark_proto::{MessageId, Topic};
use libp2p::PeerId;
use rand::seq::IteratorRandom;

use super::{Engine, Storage, Timer};
use crate::api::Event;

/// Our messages whose holders are followed, per room (the oldest are forgotten past this).
pub(super) const MAX_TRACKED: usize = 128;
/// And in all rooms together.
pub(super) const MAX_TRACKED_ALL: usize = 1_024;
/// Holders remembered per message.
pub(super) const MAX_HOLDERS: usize = 256;
/// Members remembered per room (see [`Engine::members`]).
pub(super) const MAX_MEMBERS: usize = 1_024;
/// The first chase round waits this long after a message is stored, so a burst costs one.
pub(super) const DEBOUNCE: Duration = Duration::from_secs(1);
/// Chase rounds come at most this often.
pub(super) const CHASE_EVERY: Duration = Duration::from_secs(1);
/// A message is chased for this long after it was stored (unless a client must know).
pub(super) const CHASE_FOR: Duration = Duration::from_secs(30);
/// Sync sessions started per chase round, at most.
pub(super) const CHASE_PEERS: usize = 8;
/// `delivered` events for one message come at most this often.
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// At start, our stored messages this recent are followed again…
pub(super) const RESTORE_WINDOW_MS: u64 = 24 * 60 * 60 * 1000;
/// …looked for among each room's newest this many.
const RESTORE_SCAN: usize = 512;

/// What the engine knows about who holds our messages, and who is in each room.
#[derive(Default)]
pub(super) struct Delivery {
    rooms: HashMap<Topic, RoomDelivery>,
    /// Messages tracked in all rooms.
    tracked: usize,
    /// A client must know: chase every message until some peer holds it.
    confirming: bool,
    /// When the next chase round is due (its timer is set).
    chase_at: Option<Instant>,
    /// When grown holder sets are next reported (its timer is set), and when they last were.
    flush_at: Option<Instant>,
    last_flush: Option<Instant>,
}

#[derive(Default)]
struct RoomDelivery {
    /// Our messages, oldest first.
    messages: VecDeque<Tracked>,
    /// Peers heard in the room under its key (see [`Engine::members`]).
    heard: HashSet<PeerId>,
}

struct Tracked {
    id: MessageId,
    /// Its place in the engine's `stored_seq`, to compare with the start of sessions.
    seq: u64,
    stored: Instant,
    /// In the order they were learned.
    holders: Vec<PeerId>,
    /// Grown since the last `delivered` for it.
    dirty: bool,
}

impl Delivery {
    /// Messages tracked, in all rooms (bounded by [`MAX_TRACKED_ALL`]).
    #[cfg(test)]
    pub(super) fn tracked(&self) -> usize {
        self.tracked
    }

    /// Members remembered, in all rooms.
    #[cfg(test)]
    pub(super) fn heard(&self) -> usize {
        self.rooms.values().map(|r| r.heard.len()).sum()
    }

    /// Forget the oldest tracked message of all rooms.
    fn forget_oldest(&mut self) {
        let oldest = self
            .rooms
            .iter()
            .filter_map(|(topic, room)| room.messages.front().map(|m| (m.seq, topic)))
            .min()
            .map(|(_, topic)| topic.clone());
        if let Some(room) = oldest.and_then(|topic| self.rooms.get_mut(&topic)) {
            room.messages.pop_front();
            self.tracked -= 1;
        }
    }

    /// We left the room of `topic`: its marks go with it.
    pub(super) fn forget_room(&mut self, topic: &Topic) {
        if let Some(room) = self.rooms.remove(topic) {
            self.tracked -= room.messages.len();
        }
    }
}

impl<S: Storage> Engine<S> {
    /// The room's members this node knows of, itself excluded: the M of `✓✓ N/M`.
    ///
    /// A direct-message room has one, the other side. Any other room: the peers heard in it
    /// during this run — whatever arrives sealed under the room key (a message, presence,
    /// typing) proves its author holds the key — and those that completed a sync session of it
    /// with us (sealed the same way). A subscription to the room's topic alone does not count:
    /// a blind relay subscribes without the key, and anyone who learns a topic can.
    /// This is the one place that decides; explicit member lists (private rooms with owners
    /// and kicks) take over here.
    pub(super) fn members(&self, topic: &Topic) -> Vec<PeerId> {
        let direct = self
            .rooms
            .get(topic)
            .and_then(|r| r.room.name.direct_peer())
            .and_then(|peer| peer.parse::<PeerId>().ok());
        if let Some(peer) = direct {
            return vec![peer];
        }
        if let Some(listed) = self.listed_members(topic) {
            return listed;
        }
        let mut members: Vec<PeerId> = self
            .delivery
            .rooms
            .get(topic)
            .map(|r| r.heard.iter().copied().collect())
            .unwrap_or_default();
        members.sort();
        members
    }

    /// `peer` showed it holds the key of the room of `topic` (see [`Self::members`]).
    pub(super) fn heard_in(&mut self, topic: &Topic, peer: PeerId) {
        if peer == self.me {
            return;
        }
        // No allocation on the usual path: most messages come from someone already heard.
        let room = match self.delivery.rooms.get_mut(topic) {
            Some(room) => room,
            None if self.rooms.contains_key(topic) => {
                self.delivery.rooms.entry(topic.clone()).or_default()
            }
            None => return,
        };
        if room.heard.contains(&peer) || room.heard.len() >= MAX_MEMBERS {
            return;
        }
        room.heard.insert(peer);
        // M changed: the marks of messages someone holds are reported again with it.
        let mut changed = false;
        for message in room.messages.iter_mut().filter(|m| !m.holders.is_empty()) {
            message.dirty = true;
            changed = true;
        }
        if changed {
            self.report_soon();
        }
    }

    /// At start: follow again our messages of the last [`RESTORE_WINDOW_MS`] in the store, the
    /// newest [`MAX_TRACKED`] per room. Their place in `stored_seq` is 0, before any session.
    pub(super) fn restore_own(&mut self) {
        let me = self.me.to_string();
        let since = self.wall_ms().saturating_sub(RESTORE_WINDOW_MS);
        let now = self.now.at;
        let mut topics: Vec<Topic> = self.rooms.keys().cloned().collect();
        topics.sort();
        for topic in topics {
            // Oldest first.
            let stored = match self.store.messages(&topic, RESTORE_SCAN, None) {
                Ok(stored) => stored,
                Err(e) => {
                    tracing::debug!("delivery marks: cannot read our recent messages: {e}");
                    continue;
                }
            };
            let own: Vec<MessageId> = stored
                .into_iter()
                .filter(|m| m.author == me && m.hlc.wall_ms() >= since)
                .map(|m| m.id)
                .collect();
            if own.is_empty() {
                continue;
            }
            let room = self.delivery.rooms.entry(topic).or_default();
            for id in &own[own.len().saturating_sub(MAX_TRACKED)..] {
                room.messages.push_back(Tracked {
                    id: *id,
                    seq: 0,
                    stored: now,
                    holders: Vec::new(),
                    dirty: false,
                });
                self.delivery.tracked += 1;
            }
        }
        while self.delivery.tracked > MAX_TRACKED_ALL {
            self.delivery.forget_oldest();
        }
    }

    /// A message of ours was stored: follow who holds it, and chase it shortly.
    pub(super) fn stored_own(&mut self, topic: &Topic, id: MessageId) {
        self.stored_seq += 1;
        let room = self.delivery.rooms.entry(topic.clone()).or_default();
        room.messages.push_back(Tracked {
            id,
            seq: self.stored_seq,
            stored: self.now.at,
            holders: Vec::new(),
            dirty: false,
        });
        self.delivery.tracked += 1;
        if room.messages.len() > MAX_TRACKED {
            room.messages.pop_front();
            self.delivery.tracked -= 1;
        }
        while self.delivery.tracked > MAX_TRACKED_ALL {
            self.delivery.forget_oldest();
        }
        self.plan_chase(DEBOUNCE);
    }

    /// The client wants to know: sync with room peers until every message is held by one.
    pub(super) fn confirm_delivery(&mut self) {
        self.delivery.confirming = true;
        self.chase_round();
    }

    /// The delivery timer: report grown holder sets, and chase, whichever is due.
    pub(super) fn chase_due(&mut self) {
        let now = self.now.at;
        if self.delivery.flush_at.is_some_and(|at| at <= now) {
            self.flush_delivered();
        }
        if self.delivery.chase_at.is_some_and(|at| at <= now) {
            self.chase_round();
        }
    }

    /// A chase round within `after`, unless one is planned sooner.
    fn plan_chase(&mut self, after: Duration) {
        let at = self.now.at + after;
        if self.delivery.chase_at.is_some_and(|planned| planned <= at) {
            return;
        }
        self.delivery.chase_at = Some(at);
        self.set_timer(after, Timer::Deliver);
    }

    /// Sync with room peers not known to hold a message still chased; plan the next round
    /// while any is left.
    fn chase_round(&mut self) {
        self.delivery.chase_at = None;
        let now = self.now.at;
        let confirming = self.delivery.confirming;
        let chased = |m: &Tracked| {
            now.saturating_duration_since(m.stored) < CHASE_FOR
                || (confirming && m.holders.is_empty())
        };
        let mut topics: Vec<&Topic> = self
            .delivery
            .rooms
            .iter()
            .filter(|(topic, room)| {
                self.rooms.contains_key(*topic) && room.messages.iter().any(chased)
            })
            .map(|(topic, _)| topic)
            .collect();
        // Hash maps iterate in a random order; the simulator needs the same run every time.
        topics.sort();
        let mut lacking: Vec<(Topic, PeerId)> = Vec::new();
        // A client that must know waits for a message no peer holds yet, even with no peer in
        // reach now: keep looking.
        let mut waiting = false;
        for topic in topics {
            let Some(room) = self.delivery.rooms.get(topic) else {
                continue;
            };
            waiting |= confirming && room.messages.iter().any(|m| m.holders.is_empty());
            for peer in self.room_peers(topic) {
                // Newest first: the likeliest to lack, so the search ends early.
                let lacks = room
                    .messages
                    .iter()
                    .rev()
                    .any(|m| chased(m) && !m.holders.contains(&peer));
                if lacks {
                    lacking.push((topic.clone(), peer));
                }
            }
        }
        if lacking.is_empty() && !waiting {
            return;
        }
        let picked = lacking
            .into_iter()
            .choose_multiple(&mut self.rng, CHASE_PEERS);
        for (topic, peer) in picked {
            // A session already running is left to finish; it marks the peer when it does.
            self.start_sync(peer, &topic);
        }
        self.plan_chase(CHASE_EVERY);
    }

    /// A session with `peer` that began when `seq` messages of ours were stored completed: the
    /// peer holds every one of them, and holds the room's key.
    pub(super) fn session_completed(&mut self, topic: &Topic, peer: PeerId, seq: u64) {
        self.heard_in(topic, peer);
        self.mark_held(topic, peer, |m| m.seq <= seq);
    }

    /// `peer` (a member, or a relay that keeps the room's sealed traffic) is known to hold our
    /// message `id`.
    pub(super) fn held_by(&mut self, topic: &Topic, peer: PeerId, id: MessageId) {
        self.mark_held(topic, peer, |m| m.id == id);
    }

    fn mark_held(&mut self, topic: &Topic, peer: PeerId, held: impl Fn(&Tracked) -> bool) {
        let Some(room) = self.delivery.rooms.get_mut(topic) else {
            return;
        };
        let mut grown = false;
        for message in room.messages.iter_mut().filter(|m| held(m)) {
            if message.holders.len() < MAX_HOLDERS && !message.holders.contains(&peer) {
                message.holders.push(peer);
                message.dirty = true;
                grown = true;
            }
        }
        if grown {
            self.report_soon();
        }
    }

    /// Report grown holder sets now, or when [`FLUSH_EVERY`] has passed since the last report.
    fn report_soon(&mut self) {
        let now = self.now.at;
        let due = self
            .delivery
            .last_flush
            .map_or(now, |last| last + FLUSH_EVERY);
        if due <= now {
            self.flush_delivered();
        } else if self.delivery.flush_at.is_none_or(|at| at > due) {
            self.delivery.flush_at = Some(due);
            self.set_timer(due - now, Timer::Deliver);
        }
    }

    /// One `delivered` for each message whose holders grew since it was last reported.
    fn flush_delivered(&mut self) {
        self.delivery.flush_at = None;
        self.delivery.last_flush = Some(self.now.at);
        let mut topics: Vec<Topic> = self.delivery.rooms.keys().cloned().collect();
        topics.sort();
        for topic in topics {
            let members: HashSet<PeerId> = self.members(&topic).into_iter().collect();
            let room = self.room_name(&topic);
            let Some(state) = self.delivery.rooms.get_mut(&topic) else {
                continue;
            };
            let mut events = Vec::new();
            for message in state.messages.iter_mut().filter(|m| m.dirty) {
                message.dirty = false;
                events.push(Event::Delivered {
                    room: room.clone(),
                    id: message.id.to_hex(),
                    peers: message.holders.iter().map(ToString::to_string).collect(),
                    members: members.len(),
                    members_holding: message
                        .holders
                        .iter()
                        .filter(|p| members.contains(p))
                        .count(),
                });
            }
            for event in events {
                self.emit(event);
            }
        }
    }
}
