//! When to dial whom: static peers are redialled with exponential backoff while they are away.
//! Pure: callers pass `now` and act on [`Redialer::due`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};

const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);

struct StaticPeer {
    addr: Multiaddr,
    connected: bool,
    failures: u32,
    next_dial: Option<Instant>,
}

/// Backoff after `failures` consecutive failed attempts: 0.5 s, 1 s, 2 s, … capped at 30 s.
pub fn backoff(failures: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1u32 << failures.min(16))
        .min(MAX_RETRY)
}

#[derive(Default)]
pub struct Redialer {
    peers: HashMap<PeerId, StaticPeer>,
}

impl Redialer {
    /// Register a static peer; it is due at once.
    pub fn add(&mut self, peer: PeerId, addr: Multiaddr, now: Instant) {
        self.peers.insert(
            peer,
            StaticPeer {
                addr,
                connected: false,
                failures: 0,
                next_dial: Some(now),
            },
        );
    }

    pub fn on_connected(&mut self, peer: &PeerId) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.connected = true;
            p.failures = 0;
            p.next_dial = None;
        }
    }

    /// The last connection to `peer` closed: try again soon.
    pub fn on_disconnected(&mut self, peer: &PeerId, now: Instant) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.connected = false;
            p.next_dial = Some(now + backoff(p.failures));
        }
    }

    /// A dial to `peer` failed: back off further.
    pub fn on_dial_failed(&mut self, peer: &PeerId, now: Instant) {
        if let Some(p) = self.peers.get_mut(peer) {
            if p.connected {
                return;
            }
            p.failures = p.failures.saturating_add(1);
            p.next_dial = Some(now + backoff(p.failures));
        }
    }

    /// When the next static peer is due for a dial, if any is.
    pub fn next_due(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter(|p| !p.connected)
            .filter_map(|p| p.next_dial)
            .min()
    }

    /// Peers to dial now. Each is returned once; the next chance comes from a failure or a drop.
    pub fn due(&mut self, now: Instant) -> Vec<(PeerId, Multiaddr)> {
        let mut due = Vec::new();
        for (peer, p) in &mut self.peers {
            if !p.connected && p.next_dial.is_some_and(|at| at <= now) {
                p.next_dial = None;
                due.push((*peer, p.addr.clone()));
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(40), MAX_RETRY);
    }

    #[test]
    fn a_dropped_peer_is_redialled_with_backoff() {
        let t0 = Instant::now();
        let peer = PeerId::random();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let mut dialer = Redialer::default();
        dialer.add(peer, addr.clone(), t0);
        assert_eq!(dialer.due(t0), vec![(peer, addr.clone())]);
        assert!(dialer.due(t0).is_empty(), "one dial at a time");

        dialer.on_dial_failed(&peer, t0);
        assert!(dialer.due(t0 + Duration::from_millis(900)).is_empty());
        assert_eq!(dialer.due(t0 + Duration::from_secs(1)).len(), 1);
        dialer.on_dial_failed(&peer, t0 + Duration::from_secs(1));
        assert!(dialer.due(t0 + Duration::from_millis(2900)).is_empty());
        assert_eq!(dialer.due(t0 + Duration::from_secs(3)).len(), 1);

        dialer.on_connected(&peer);
        assert!(dialer.due(t0 + Duration::from_secs(100)).is_empty());
        let t1 = t0 + Duration::from_secs(200);
        dialer.on_disconnected(&peer, t1);
        assert!(dialer.due(t1).is_empty());
        assert_eq!(
            dialer.due(t1 + Duration::from_millis(500)).len(),
            1,
            "failures reset on connect"
        );
    }
}
