//! Talk-spurts that ended, per talker: what a later frame of one of them means.
//!
//! A spurt ends at its last frame, or when nothing of it has arrived for the jitter buffer's
//! end timeout. A frame of an ended spurt that is no newer than the newest it had is a
//! straggler (a copy that came the long way round) and is dropped, so it cannot start a
//! phantom spurt. A *newer* one means the talker was only held up — a phone's browser or a
//! Wi-Fi link stalled for longer than the end timeout while the key was still pressed — and
//! the spurt goes on as a new part: dropping it would silently cut the rest of what was said.
//! A frame flagged last never resumes a spurt on its own: it is the release's silent end
//! marker, and a part made of it alone would be a blip of nothing.

use std::collections::{HashMap, VecDeque};

use libp2p::PeerId;

/// Spurts remembered per talker.
const REMEMBERED: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ended {
    spurt: u32,
    /// The newest sequence number the spurt had (`None`: none was taken).
    newest: Option<u16>,
    /// Which part of the spurt it was (0: the first).
    part: u32,
}

/// What to do with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not of an ended spurt: play it as usual.
    Play,
    /// Newer than everything its ended spurt had: play it as part `part` of that spurt.
    Resume { part: u32 },
    /// A straggler of an ended spurt.
    Drop,
}

#[derive(Default)]
pub struct Finished {
    by_talker: HashMap<PeerId, VecDeque<Ended>>,
}

impl Finished {
    /// Part `part` of `spurt` from `from` ended; `newest` is the newest sequence number it had.
    pub fn ended(&mut self, from: PeerId, spurt: u32, newest: Option<u16>, part: u32) {
        let ended = self.by_talker.entry(from).or_default();
        ended.retain(|e| e.spurt != spurt);
        ended.push_back(Ended {
            spurt,
            newest,
            part,
        });
        if ended.len() > REMEMBERED {
            ended.pop_front();
        }
    }

    /// The verdict on frame `seq` of `spurt` from `from` (`last`: flagged the spurt's last).
    /// A resumed spurt is forgotten here until its new part ends.
    pub fn judge(&mut self, from: &PeerId, spurt: u32, seq: u16, last: bool) -> Verdict {
        let Some(ended) = self.by_talker.get_mut(from) else {
            return Verdict::Play;
        };
        let Some(at) = ended.iter().position(|e| e.spurt == spurt) else {
            return Verdict::Play;
        };
        let Some(newest) = ended[at].newest else {
            return Verdict::Drop;
        };
        // Sequence numbers wrap: newer means ahead by less than half the range.
        let ahead = seq.wrapping_sub(newest);
        if ahead == 0 || ahead >= 0x8000 || last {
            return Verdict::Drop;
        }
        let part = ended[at].part + 1;
        ended.remove(at);
        Verdict::Resume { part }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_older_than_an_ended_spurts_newest_is_dropped_and_a_newer_one_resumes_it() {
        let mut finished = Finished::default();
        let talker = PeerId::random();
        assert_eq!(
            finished.judge(&talker, 7, 3, false),
            Verdict::Play,
            "nothing ended"
        );
        finished.ended(talker, 7, Some(40), 0);
        assert_eq!(
            finished.judge(&talker, 7, 12, false),
            Verdict::Drop,
            "a straggler"
        );
        assert_eq!(
            finished.judge(&talker, 7, 40, false),
            Verdict::Drop,
            "the newest again"
        );
        assert_eq!(
            finished.judge(&PeerId::random(), 7, 41, false),
            Verdict::Play
        );
        assert_eq!(
            finished.judge(&talker, 8, 0, false),
            Verdict::Play,
            "another spurt"
        );
        assert_eq!(
            finished.judge(&talker, 7, 41, false),
            Verdict::Resume { part: 1 },
            "the talker was held up"
        );
        assert_eq!(
            finished.judge(&talker, 7, 42, false),
            Verdict::Play,
            "its new part is playing"
        );
        finished.ended(talker, 7, Some(90), 1);
        assert_eq!(finished.judge(&talker, 7, 60, false), Verdict::Drop);
        assert_eq!(
            finished.judge(&talker, 7, 92, true),
            Verdict::Drop,
            "the end marker alone resumes nothing"
        );
        assert_eq!(
            finished.judge(&talker, 7, 91, false),
            Verdict::Resume { part: 2 }
        );
    }

    #[test]
    fn newer_is_judged_across_the_wrap_of_sequence_numbers() {
        let mut finished = Finished::default();
        let talker = PeerId::random();
        finished.ended(talker, 1, Some(65_530), 0);
        assert_eq!(finished.judge(&talker, 1, 65_000, false), Verdict::Drop);
        assert_eq!(
            finished.judge(&talker, 1, 4, false),
            Verdict::Resume { part: 1 }
        );
        finished.ended(talker, 2, None, 0);
        assert_eq!(
            finished.judge(&talker, 2, 9, false),
            Verdict::Drop,
            "an ended spurt that took no frame is not resumed"
        );
    }

    #[test]
    fn only_the_latest_spurts_of_a_talker_are_remembered() {
        let mut finished = Finished::default();
        let talker = PeerId::random();
        for spurt in 0..=REMEMBERED as u32 {
            finished.ended(talker, spurt, Some(10), 0);
        }
        assert_eq!(
            finished.judge(&talker, 0, 5, false),
            Verdict::Play,
            "forgotten"
        );
        assert_eq!(finished.judge(&talker, 1, 5, false), Verdict::Drop);
    }
}
