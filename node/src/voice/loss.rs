//! The voice loss this node hears, which its own talk-spurts plan their redundancy for.
//!
//! Receivers do not report loss to talkers (a voice frame has no room for it: protocol.md,
//! "Voice"), so a talker goes by the loss on the voice it received itself in the same mesh:
//! every finished spurt adds its lost and played frames, older spurts fading with a half-life
//! of [`HALF_LIFE_FRAMES`]. Shared by the playout task (writes) and talk-spurt threads (read).

use std::sync::{Arc, Mutex};

/// Frames after which a spurt's weight in the estimate has halved (20 s of 20 ms frames).
pub const HALF_LIFE_FRAMES: f64 = 1_000.0;

#[derive(Clone, Debug, Default)]
pub struct LossMeter(Arc<Mutex<Faded>>);

#[derive(Debug, Default)]
struct Faded {
    lost: f64,
    frames: f64,
}

impl LossMeter {
    /// A spurt of `frames` frames was played, `lost` of them missing (rebuilt or concealed).
    pub fn record(&self, lost: u32, frames: u32) {
        let frames = frames.max(lost);
        if frames == 0 {
            return;
        }
        let mut faded = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let keep = 0.5f64.powf(f64::from(frames) / HALF_LIFE_FRAMES);
        faded.lost = faded.lost * keep + f64::from(lost);
        faded.frames = faded.frames * keep + f64::from(frames);
    }

    /// The loss heard lately, percent of frames; `None` before any voice was heard.
    pub fn percent(&self) -> Option<f64> {
        let faded = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (faded.frames >= 1.0).then(|| 100.0 * faded.lost / faded.frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_what_was_heard_lately() {
        let meter = LossMeter::default();
        assert_eq!(meter.percent(), None);
        meter.record(0, 0);
        assert_eq!(meter.percent(), None, "an empty spurt says nothing");
        meter.record(10, 100);
        assert!((meter.percent().unwrap() - 10.0).abs() < 1e-9);
        let shared = meter.clone();
        for _ in 0..20 {
            shared.record(0, 500);
        }
        let now = meter.percent().unwrap();
        assert!(now < 0.1, "a long clean stretch: old loss fades ({now})");
        meter.record(200, 1_000);
        let rough = meter.percent().unwrap();
        assert!(rough > 8.0 && rough < 20.0, "rough again: {rough}");
    }
}
