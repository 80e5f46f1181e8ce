//! A talker's jitter buffer: frames in, one playout decision per frame slot out.
//!
//! Pure: the caller passes the time in. Playout of a talk-spurt starts once the first frame has
//! waited the target delay; from then on every call to [`JitterBuffer::pop`] plays the next
//! frame in sequence, recovers a missing one from a later frame's redundancy (the next frame's
//! in-band FEC; with deep redundancy, any of the next few), or conceals it (Opus PLC). Frames that come after their slot are dropped (late), repeats are dropped
//! (duplicate), and sequence numbers wrap around. A spurt ends after its last frame, or when no
//! frame has arrived for [`END_TIMEOUT_MS`] (the last frame was lost, or the talker vanished).
//!
//! The target delay adapts between [`MIN_TARGET_MS`] and [`MAX_TARGET_MS`]: it follows the
//! measured jitter (RFC 3550 style, from arrival versus capture times), so it grows when the
//! network is rough and shrinks back when it is calm. It is fixed for the length of a spurt, so
//! a spurt is never cut or stretched; the next spurt starts with the new target.

use std::collections::BTreeMap;

pub const MIN_TARGET_MS: u64 = 40;
pub const MAX_TARGET_MS: u64 = 120;
/// Silence that ends a spurt whose last frame never came.
pub const END_TIMEOUT_MS: u64 = 200;
/// Frames further ahead than this (≈ 2 s at 20 ms) are refused: memory stays bounded whatever
/// sequence numbers a peer sends.
const WINDOW: u64 = 100;

/// What to do with the next frame slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Playout {
    /// Nothing to play yet: the spurt is still buffering.
    Wait,
    /// Decode this Opus frame.
    Frame(Vec<u8>),
    /// The frame is missing but a later one is here, `ahead` frames on (1: the next one):
    /// rebuild it from that packet's redundancy (in-band FEC for the frame just before it,
    /// deep redundancy further back).
    Recover { packet: Vec<u8>, ahead: u32 },
    /// Missing with nothing to recover it from: conceal (PLC).
    Conceal,
    /// The spurt is over. `trim` slots at the end were concealment after the last frame heard
    /// (a lost last frame, or a vanished talker): drop them from a recording.
    End { trim: u32 },
}

/// The jitter estimate, kept per talker across spurts.
#[derive(Clone, Debug, Default)]
pub struct JitterEstimate {
    jitter_ms: f64,
    last_transit: Option<i64>,
}

impl JitterEstimate {
    /// Feed one arrival: `now_ms` on our clock, `captured_ms` on the talker's.
    pub fn observe(&mut self, now_ms: u64, captured_ms: u64) {
        let transit = now_ms as i64 - captured_ms as i64;
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs() as f64;
            self.jitter_ms += (d - self.jitter_ms) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// The playout delay for the next spurt: two frames plus three times the jitter.
    pub fn target_ms(&self, frame_ms: u64) -> u64 {
        let wanted = 2 * frame_ms + (3.0 * self.jitter_ms).ceil() as u64;
        wanted.clamp(MIN_TARGET_MS, MAX_TARGET_MS)
    }

    pub fn jitter_ms(&self) -> f64 {
        self.jitter_ms
    }

    /// A new spurt: the talker's clock-to-ours offset may have moved, keep only the jitter.
    pub fn new_spurt(&mut self) {
        self.last_transit = None;
    }
}

/// Counters for one spurt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpurtStats {
    pub received: u32,
    pub played: u32,
    /// Missing frames rebuilt from a later frame's redundancy (FEC or DRED).
    pub recovered: u32,
    /// Missing frames concealed by PLC.
    pub concealed: u32,
    pub late: u32,
    pub duplicate: u32,
    /// Capture-to-playout latency of every played frame, ms.
    pub latencies_ms: Vec<u32>,
}

impl SpurtStats {
    /// Frames that did not arrive in time.
    pub fn lost(&self) -> u32 {
        self.recovered + self.concealed
    }
}

struct Waiting {
    captured_ms: u64,
    opus: Vec<u8>,
}

pub struct JitterBuffer {
    target_ms: u64,
    /// How far ahead a frame's redundancy reaches back, in frames (1: in-band FEC only).
    reach: u32,
    waiting: BTreeMap<u64, Waiting>,
    /// Highest sequence number seen, unwrapped to 64 bits.
    highest: Option<u64>,
    /// The next slot to play; set when playout starts.
    next: Option<u64>,
    first_arrival_ms: Option<u64>,
    last_arrival_ms: u64,
    last_seq: Option<u64>,
    trailing_concealed: u32,
    ended: bool,
    pub stats: SpurtStats,
}

impl JitterBuffer {
    /// A buffer whose missing frames are rebuilt from the next frame's in-band FEC only.
    pub fn new(target_ms: u64) -> Self {
        Self::with_reach(target_ms, 1)
    }

    /// A buffer that rebuilds a missing frame from any of the next `reach` frames (their deep
    /// redundancy covers that far back).
    pub fn with_reach(target_ms: u64, reach: u32) -> Self {
        Self {
            target_ms: target_ms.clamp(MIN_TARGET_MS, MAX_TARGET_MS),
            reach: reach.clamp(1, WINDOW as u32),
            waiting: BTreeMap::new(),
            highest: None,
            next: None,
            first_arrival_ms: None,
            last_arrival_ms: 0,
            last_seq: None,
            trailing_concealed: 0,
            ended: false,
            stats: SpurtStats::default(),
        }
    }

    pub fn target_ms(&self) -> u64 {
        self.target_ms
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The newest sequence number taken in, as sent (16 bits), if any.
    pub fn newest_seq(&self) -> Option<u16> {
        self.highest.map(|h| h as u16)
    }

    /// Put an arrived frame in.
    pub fn push(&mut self, seq: u16, captured_ms: u64, last: bool, opus: Vec<u8>, now_ms: u64) {
        if self.ended {
            self.stats.late += 1;
            return;
        }
        let ext = match self.highest {
            None => (1u64 << 32) + seq as u64,
            Some(highest) => unwrap_seq(highest, seq),
        };
        let floor = self
            .next
            .or(self.waiting.keys().next().copied())
            .unwrap_or(ext);
        if self.next.is_some_and(|next| ext < next) {
            self.stats.late += 1;
            return;
        }
        if ext > floor + WINDOW || floor > ext + WINDOW {
            self.stats.late += 1;
            return;
        }
        if self.waiting.contains_key(&ext) {
            self.stats.duplicate += 1;
            return;
        }
        self.stats.received += 1;
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        self.first_arrival_ms.get_or_insert(now_ms);
        self.last_arrival_ms = now_ms;
        if last {
            self.last_seq = Some(ext);
        }
        self.waiting.insert(ext, Waiting { captured_ms, opus });
    }

    /// The decision for the next frame slot.
    pub fn pop(&mut self, now_ms: u64) -> Playout {
        if self.ended {
            return Playout::End { trim: 0 };
        }
        let next = match self.next {
            Some(next) => next,
            None => {
                let Some(first) = self.first_arrival_ms else {
                    return Playout::Wait;
                };
                if now_ms < first + self.target_ms {
                    return Playout::Wait;
                }
                match self.waiting.keys().next() {
                    Some(&lowest) => lowest,
                    None => return Playout::Wait,
                }
            }
        };
        if self.last_seq.is_some_and(|last| next > last) {
            return self.end(0);
        }
        self.next = Some(next + 1);
        if let Some(frame) = self.waiting.remove(&next) {
            self.stats.played += 1;
            self.stats.latencies_ms.push(
                now_ms
                    .saturating_sub(frame.captured_ms)
                    .min(u32::MAX as u64) as u32,
            );
            self.trailing_concealed = 0;
            if self.last_seq == Some(next) {
                self.ended = true;
            }
            return Playout::Frame(frame.opus);
        }
        let silent_for = now_ms.saturating_sub(self.last_arrival_ms);
        if self.waiting.is_empty() && silent_for >= END_TIMEOUT_MS {
            let trim = self.trailing_concealed;
            return self.end(trim);
        }
        let later = (1..=u64::from(self.reach))
            .find_map(|ahead| self.waiting.get(&(next + ahead)).map(|w| (ahead, w)));
        if let Some((ahead, after)) = later {
            self.stats.recovered += 1;
            self.trailing_concealed = 0;
            return Playout::Recover {
                packet: after.opus.clone(),
                ahead: ahead as u32,
            };
        }
        self.stats.concealed += 1;
        self.trailing_concealed += 1;
        Playout::Conceal
    }

    /// The decoder could not rebuild the frame of the last [`Playout::Recover`] (the packet
    /// had no redundancy for it) and concealed it instead: count it so.
    pub fn recovery_failed(&mut self) {
        if self.stats.recovered > 0 {
            self.stats.recovered -= 1;
            self.stats.concealed += 1;
        }
    }

    fn end(&mut self, trim: u32) -> Playout {
        self.ended = true;
        // Slots concealed after the last frame heard were counted as concealed; they were
        // not frames of the spurt.
        self.stats.concealed = self.stats.concealed.saturating_sub(trim);
        Playout::End { trim }
    }
}

/// The 64-bit sequence number closest to `highest` whose low 16 bits are `seq`.
fn unwrap_seq(highest: u64, seq: u16) -> u64 {
    let base = highest & !0xffff;
    [
        base.wrapping_sub(0x1_0000),
        base,
        base.wrapping_add(0x1_0000),
    ]
    .into_iter()
    .map(|b| b | seq as u64)
    .min_by_key(|candidate| candidate.abs_diff(highest))
    .unwrap_or(base | seq as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u16) -> Vec<u8> {
        n.to_be_bytes().to_vec()
    }

    /// Pop every 20 ms from `start` until the spurt ends; return the decisions.
    fn drain(buffer: &mut JitterBuffer, start: u64) -> Vec<Playout> {
        let mut out = Vec::new();
        for slot in 0..1000 {
            let decision = buffer.pop(start + slot * 20);
            let done = matches!(decision, Playout::End { .. });
            if decision != Playout::Wait {
                out.push(decision);
            }
            if done {
                return out;
            }
        }
        panic!("never ended")
    }

    #[test]
    fn waits_the_target_then_plays_in_order_despite_reordering() {
        let mut b = JitterBuffer::new(40);
        b.push(10, 0, false, frame(10), 100);
        assert_eq!(b.pop(120), Playout::Wait, "still buffering");
        b.push(12, 40, true, frame(12), 125);
        b.push(11, 20, false, frame(11), 130);
        assert_eq!(b.pop(140), Playout::Frame(frame(10)));
        assert_eq!(b.pop(160), Playout::Frame(frame(11)));
        assert_eq!(b.pop(180), Playout::Frame(frame(12)));
        assert!(b.is_ended());
        assert_eq!(b.pop(200), Playout::End { trim: 0 });
        assert_eq!(b.stats.played, 3);
        assert_eq!(b.stats.latencies_ms, vec![140, 140, 140]);
    }

    #[test]
    fn duplicates_and_late_frames_are_dropped() {
        let mut b = JitterBuffer::new(40);
        b.push(1, 0, false, frame(1), 0);
        b.push(1, 0, false, frame(1), 5);
        assert_eq!(b.stats.duplicate, 1);
        b.push(3, 40, true, frame(3), 10);
        assert_eq!(b.pop(40), Playout::Frame(frame(1)));
        assert_eq!(
            b.pop(60),
            Playout::Recover {
                packet: frame(3),
                ahead: 1
            },
            "2 is missing, 3's FEC covers it"
        );
        b.push(2, 20, false, frame(2), 65);
        assert_eq!(b.stats.late, 1, "2 came after its slot");
        assert_eq!(b.pop(80), Playout::Frame(frame(3)));
        assert_eq!(b.pop(100), Playout::End { trim: 0 });
        assert_eq!(
            (b.stats.recovered, b.stats.concealed, b.stats.lost()),
            (1, 0, 1)
        );
    }

    #[test]
    fn with_deep_redundancy_a_burst_is_rebuilt_from_the_frame_after_it() {
        let mut reach3 = JitterBuffer::with_reach(40, 3);
        let mut fec_only = JitterBuffer::new(40);
        for b in [&mut reach3, &mut fec_only] {
            b.push(1, 0, false, frame(1), 0);
            b.push(4, 60, true, frame(4), 10);
            assert_eq!(b.pop(40), Playout::Frame(frame(1)));
        }
        let rebuilt = |ahead| Playout::Recover {
            packet: frame(4),
            ahead,
        };
        assert_eq!(reach3.pop(60), rebuilt(2), "2 from 4, two back");
        assert_eq!(reach3.pop(80), rebuilt(1), "3 from 4, one back");
        assert_eq!(
            fec_only.pop(60),
            Playout::Conceal,
            "FEC reaches one back only"
        );
        assert_eq!(fec_only.pop(80), rebuilt(1));
        reach3.recovery_failed();
        assert_eq!((reach3.stats.recovered, reach3.stats.concealed), (1, 1));
    }

    #[test]
    fn sequence_numbers_wrap_around() {
        let mut b = JitterBuffer::new(40);
        b.push(65534, 0, false, frame(65534), 0);
        b.push(65535, 20, false, frame(65535), 1);
        b.push(0, 40, false, frame(0), 2);
        b.push(1, 60, true, frame(1), 3);
        let played = drain(&mut b, 40);
        assert_eq!(
            played,
            vec![
                Playout::Frame(frame(65534)),
                Playout::Frame(frame(65535)),
                Playout::Frame(frame(0)),
                Playout::Frame(frame(1)),
                Playout::End { trim: 0 },
            ]
        );
        assert_eq!(unwrap_seq((1 << 32) + 2, 65535), (1 << 32) - 1);
    }

    #[test]
    fn a_spurt_without_its_last_frame_ends_by_timeout_and_trims_the_concealment() {
        let mut b = JitterBuffer::new(40);
        for n in 0..5u16 {
            b.push(n, n as u64 * 20, false, frame(n), n as u64 * 20);
        }
        let played = drain(&mut b, 40);
        let frames = played
            .iter()
            .filter(|p| matches!(p, Playout::Frame(_)))
            .count();
        assert_eq!(frames, 5);
        let Some(Playout::End { trim }) = played.last() else {
            panic!("ends")
        };
        let concealed = played.iter().filter(|p| **p == Playout::Conceal).count() as u32;
        assert_eq!(*trim, concealed, "all trailing concealment is trimmed");
        assert!(concealed >= 1);
        assert_eq!(b.stats.concealed, 0);
    }

    #[test]
    fn a_hostile_sequence_jump_is_refused() {
        let mut b = JitterBuffer::new(40);
        b.push(0, 0, false, frame(0), 0);
        b.push(30_000, 0, false, frame(1), 1);
        assert_eq!(b.stats.late, 1);
        assert_eq!(b.waiting.len(), 1);
    }

    #[test]
    fn the_target_grows_with_jitter_and_shrinks_when_calm() {
        let mut estimate = JitterEstimate::default();
        for i in 0..50u64 {
            estimate.observe(i * 20, i * 20);
        }
        assert_eq!(estimate.target_ms(20), MIN_TARGET_MS);
        for i in 0..50u64 {
            let wobble = if i % 2 == 0 { 0 } else { 30 };
            estimate.observe(1000 + i * 20 + wobble, 1000 + i * 20);
        }
        let rough = estimate.target_ms(20);
        assert!(rough > 80, "rough network: {rough}");
        for i in 0..200u64 {
            estimate.observe(5000 + i * 20, 5000 + i * 20);
        }
        assert!(estimate.target_ms(20) < rough, "calm again: shrinks");
        assert!(estimate.target_ms(20) <= MAX_TARGET_MS);
    }
}
