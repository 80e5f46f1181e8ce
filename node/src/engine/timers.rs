//! Timers are outputs of the engine: it asks to be woken with a [`Timer`] at an instant, and
//! whoever runs it (the driver, the simulator) keeps them in a [`TimerQueue`] and hands each
//! back as an input when it is due. The engine never scans maps for what is due; a timer that
//! is no longer wanted (a room left, a session that ended) is simply ignored when it fires,
//! because the engine checks its own state then.

use std::collections::BTreeMap;
use std::time::Instant;

use hark_proto::Topic;
use libp2p::PeerId;

/// What a timer is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Static peers due for a (re)dial.
    Redial,
    /// mDNS: the peer with the larger id dials if the other has not within the grace period.
    MdnsFallback(PeerId),
    /// Announce ourselves in a room.
    Presence(Topic),
    /// Changes that waited for their dependencies by gossip: sync for them if still waiting.
    Dependencies(Topic),
    /// An onward sync that had to wait for its turn.
    Spread(Topic),
    /// Every room syncs with one random room peer.
    AntiEntropy,
    /// A sync session with this peer in this room may have run too long.
    SessionTimeout(Topic, PeerId),
    /// Index stored messages for search while idle.
    SearchIndex,
    /// Delivery marks: a chase round (sync with room peers not known to hold our recent
    /// messages) or grown holder sets to report, whichever is due (`delivery.rs`).
    Deliver,
    /// Blind relays: fetch from each connected one, and hand it what none holds yet.
    Blind,
    /// Store a room's gossip messages shown and held (`held.rs`).
    SaveHeld(Topic),
}

/// Timers waiting to fire, earliest first; equal instants fire in the order they were set.
#[derive(Default)]
pub struct TimerQueue {
    queue: BTreeMap<(Instant, u64), Timer>,
    next_seq: u64,
}

impl TimerQueue {
    pub fn set(&mut self, at: Instant, timer: Timer) {
        self.queue.insert((at, self.next_seq), timer);
        self.next_seq += 1;
    }

    /// When the earliest timer is due.
    pub fn next_at(&self) -> Option<Instant> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// The earliest timer if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let (&(at, seq), _) = self.queue.iter().next()?;
        if at > now {
            return None;
        }
        self.queue.remove(&(at, seq))
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timers_fire_in_order_of_time_then_of_setting() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        q.set(t0 + Duration::from_secs(2), Timer::AntiEntropy);
        q.set(t0 + Duration::from_secs(1), Timer::Redial);
        q.set(t0 + Duration::from_secs(1), Timer::SearchIndex);
        assert_eq!(q.next_at(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(q.pop_due(t0), None);
        let now = t0 + Duration::from_secs(1);
        assert_eq!(q.pop_due(now), Some(Timer::Redial));
        assert_eq!(q.pop_due(now), Some(Timer::SearchIndex));
        assert_eq!(q.pop_due(now), None);
        assert_eq!(q.len(), 1);
    }
}
