//! Hybrid logical clock: the order of a room's history.
//!
//! A timestamp is one `u64`: wall-clock milliseconds in the high 48 bits, a counter in the low 16.
//! A node's clock never goes backwards and always moves past every timestamp it has seen, so a
//! reply sorts after the message it answers even when the replier's wall clock is behind. Every
//! node orders a room by `(Hlc, MessageId)`, which is the same total order everywhere.

use serde::{Deserialize, Serialize};

const COUNTER_BITS: u32 = 16;
const COUNTER_MASK: u64 = (1 << COUNTER_BITS) - 1;

/// One hybrid-logical-clock timestamp.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Hlc(pub u64);

impl Hlc {
    pub fn new(wall_ms: u64, counter: u16) -> Self {
        Self((wall_ms << COUNTER_BITS) | counter as u64)
    }

    /// The wall-clock part, milliseconds since the Unix epoch.
    pub fn wall_ms(self) -> u64 {
        self.0 >> COUNTER_BITS
    }

    pub fn counter(self) -> u16 {
        (self.0 & COUNTER_MASK) as u16
    }

    /// The UTC day (days since the Unix epoch) this timestamp falls in.
    pub fn day(self) -> u32 {
        (self.wall_ms() / 86_400_000).min(u32::MAX as u64) as u32
    }
}

/// A node's clock. Pure: the caller passes the wall-clock time in.
#[derive(Clone, Debug, Default)]
pub struct HlcClock {
    last: Hlc,
}

/// A remote timestamp further ahead of our wall clock than this does not pull our clock along:
/// one node with a clock set years ahead must not drag every other node's timestamps with it.
pub const MAX_FORWARD_DRIFT_MS: u64 = 24 * 60 * 60 * 1000;

impl HlcClock {
    /// A timestamp for a new local event at wall time `now_ms`.
    pub fn tick(&mut self, now_ms: u64) -> Hlc {
        let now = Hlc::new(now_ms, 0);
        self.last = if now > self.last {
            now
        } else {
            // Counter overflow carries into the millisecond part, which is still monotonic.
            Hlc(self.last.0 + 1)
        };
        self.last
    }

    /// Move past a timestamp seen in a message, unless it is implausibly far in the future.
    pub fn observe(&mut self, seen: Hlc, now_ms: u64) {
        if seen.wall_ms() > now_ms.saturating_add(MAX_FORWARD_DRIFT_MS) {
            return;
        }
        if seen > self.last {
            self.last = seen;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_increasing_even_when_the_wall_clock_stalls_or_steps_back() {
        let mut clock = HlcClock::default();
        let a = clock.tick(1_000);
        let b = clock.tick(1_000);
        let c = clock.tick(900);
        assert!(a < b && b < c);
        assert_eq!(a.wall_ms(), 1_000);
        assert_eq!(c.wall_ms(), 1_000);
        assert_eq!(c.counter(), 2);
    }

    #[test]
    fn a_reply_sorts_after_what_it_answers_when_the_replier_is_behind() {
        let mut ahead = HlcClock::default();
        let mut behind = HlcClock::default();
        let question = ahead.tick(10_000_000 + 5 * 60_000);
        behind.observe(question, 10_000_000);
        let answer = behind.tick(10_000_000);
        assert!(answer > question);
    }

    #[test]
    fn absurd_future_timestamps_do_not_drag_the_clock() {
        let mut clock = HlcClock::default();
        clock.observe(Hlc::new(u64::MAX >> 16, 0), 1_000);
        assert_eq!(clock.tick(1_000).wall_ms(), 1_000);
        assert_eq!(Hlc::new(86_400_000 * 3 + 5, 0).day(), 3);
    }
}
