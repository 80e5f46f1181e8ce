//! Knowing that a message of ours reached a peer: a `/hark/sync/1` session with a room peer
//! that began after the message was stored, and completed, means that peer holds it (the
//! session's first exchange compared digests that included it, and a session ends only when
//! neither side has anything left to send). The first such session raises
//! [`Event::Delivered`]. Gossip alone proves nothing, so a client that must know (a one-shot
//! `hark-node`) asks with [`Input::ConfirmDelivery`](super::Input::ConfirmDelivery): from then on
//! the engine syncs with the room's peers until each message this run sent is confirmed.

use std::time::Duration;

use hark_proto::{MessageId, Topic};
use libp2p::PeerId;

use super::{Engine, Storage, Timer};
use crate::api::Event;

/// Unconfirmed messages remembered per room (the oldest are forgotten past this).
const MAX_UNDELIVERED: usize = 1_024;
/// While confirming, sessions with room peers are (re)started this often.
const CHASE_EVERY: Duration = Duration::from_millis(500);

impl<S: Storage> Engine<S> {
    /// A message of ours was stored: remember it until a peer is known to hold it.
    pub(super) fn stored_own(&mut self, topic: &Topic, id: MessageId) {
        self.stored_seq += 1;
        let seq = self.stored_seq;
        let list = self.undelivered.entry(topic.clone()).or_default();
        if list.len() >= MAX_UNDELIVERED {
            list.remove(0);
        }
        list.push((id, seq));
        self.chase_delivery();
    }

    /// The client wants to know: sync with room peers until every message is confirmed.
    pub(super) fn confirm_delivery(&mut self) {
        self.confirming = true;
        self.chase_delivery();
    }

    pub(super) fn chase_delivery(&mut self) {
        if !self.confirming || self.chase_timer {
            return;
        }
        let mut topics: Vec<Topic> = self
            .undelivered
            .iter()
            .filter(|(topic, list)| !list.is_empty() && self.rooms.contains_key(*topic))
            .map(|(topic, _)| topic.clone())
            .collect();
        if topics.is_empty() {
            return;
        }
        topics.sort();
        for topic in topics {
            // A session already running is left to finish; the next round starts a new one.
            for peer in self.room_peers(&topic) {
                self.start_sync(peer, &topic);
            }
        }
        self.chase_timer = true;
        self.set_timer(CHASE_EVERY, Timer::Deliver);
    }

    pub(super) fn chase_due(&mut self) {
        self.chase_timer = false;
        self.chase_delivery();
    }

    /// A session with `peer` that began when `seq` messages of ours were stored completed: the
    /// peer holds every one of them.
    pub(super) fn session_completed(&mut self, topic: &Topic, peer: PeerId, seq: u64) {
        let Some(list) = self.undelivered.get_mut(topic) else {
            return;
        };
        let held: Vec<MessageId> = list
            .iter()
            .filter(|(_, stored)| *stored <= seq)
            .map(|(id, _)| *id)
            .collect();
        if held.is_empty() {
            return;
        }
        list.retain(|(_, stored)| *stored > seq);
        if list.is_empty() {
            self.undelivered.remove(topic);
        }
        let room = self.room_name(topic);
        for id in held {
            self.emit(Event::Delivered {
                room: room.clone(),
                id: id.to_hex(),
                peers: vec![peer.to_string()],
            });
        }
    }
}
