//! The simulated network: who can reach whom, and how long and how lossy each hop is.
//!
//! Gossip is modelled at the room level, not hop by hop: a published message reaches each
//! other room member over `copies` independent paths (gossipsub's mesh and its gossip give
//! every node several chances), each one or two link hops long, each lost with the link's loss
//! rate; the first copy that survives is the one delivered (gossipsub drops duplicates before
//! Hark sees them). Sync runs point to point over a connection, which is reliable while both
//! ends are up and on the same side of a partition (TCP retransmits what a link loses).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;

/// Link behaviour, the same for every link.
#[derive(Clone, Debug)]
pub struct LinkModel {
    /// One hop's latency: `base` plus uniform jitter in `0..jitter`.
    pub base: Duration,
    pub jitter: Duration,
    /// Probability that one copy of a gossip message is lost on one hop.
    pub loss: f64,
    /// Independent paths a gossip message takes to each member.
    pub copies: usize,
}

impl Default for LinkModel {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(2),
            jitter: Duration::from_millis(8),
            loss: 0.01,
            copies: 3,
        }
    }
}

impl LinkModel {
    /// One hop's latency.
    pub fn hop(&self, rng: &mut StdRng) -> Duration {
        let jitter = self.jitter.as_micros() as u64;
        let extra = if jitter == 0 {
            0
        } else {
            rng.gen_range(0..jitter)
        };
        self.base + Duration::from_micros(extra)
    }

    /// When a gossip message reaches one member, if any of its copies does.
    pub fn gossip(&self, rng: &mut StdRng) -> Option<Duration> {
        let mut best: Option<Duration> = None;
        for _ in 0..self.copies.max(1) {
            let hops = rng.gen_range(1..=2u32);
            let mut lost = false;
            let mut took = Duration::ZERO;
            for _ in 0..hops {
                lost |= rng.gen_bool(self.loss.clamp(0.0, 1.0));
                took += self.hop(rng);
            }
            if !lost {
                best = Some(best.map_or(took, |b| b.min(took)));
            }
        }
        best
    }
}
