//! Peers: connections, gossipsub subscriptions, mDNS discovery, redial of static peers, and
//! presence announcements in rooms.

use std::time::Duration;

use hark_proto::{Body, Topic};
use libp2p::{Multiaddr, PeerId};
use rand::Rng;

use super::{Engine, Output, Storage, Timer};
use crate::api::Event;

/// Presence is re-announced this often at least, and soon after a peer joins one of our rooms.
/// Every announcement reaches the whole room, so a room of N costs N² deliveries per interval:
/// past 60 peers heard, the interval grows by [`PRESENCE_PER_PEER`] for each (one
/// announcement per second in the whole room), and every interval is jittered by ±25 % so that
/// nodes started together do not announce in waves. Answers to newcomers are limited the same
/// way in a big mesh.
pub(super) const PRESENCE_INTERVAL: Duration = Duration::from_secs(60);
const PRESENCE_PER_PEER: Duration = Duration::from_secs(1);
/// Up to this many peers heard, every newcomer is answered at once.
const PRESENCE_SMALL_MESH: usize = 60;
const PRESENCE_ANSWER_GAP: Duration = Duration::from_secs(30);
pub(super) const PRESENCE_SOON: Duration = Duration::from_millis(500);
/// mDNS: only the peer with the smaller id dials, so a pair ends up with one connection;
/// the other dials after this grace period if still unconnected.
const MDNS_DIAL_GRACE: Duration = Duration::from_secs(2);

impl<S: Storage> Engine<S> {
    pub(super) fn on_connected(&mut self, peer: PeerId, addr: Multiaddr, first: bool) {
        self.redial.on_connected(&peer);
        self.mdns_waiting.remove(&peer);
        self.peers.entry(peer).or_default().addrs.push(addr);
        if first {
            self.listen_direct(peer);
            tracing::info!(%peer, "peer connected");
            self.emit(Event::PeerConnected {
                peer_id: peer.to_string(),
            });
        }
    }

    pub(super) fn on_disconnected(&mut self, peer: PeerId, addr: Multiaddr, remaining: u32) {
        if remaining > 0 {
            if let Some(state) = self.peers.get_mut(&peer) {
                if let Some(pos) = state.addrs.iter().position(|a| *a == addr) {
                    state.addrs.remove(pos);
                }
            }
            return;
        }
        self.peers.remove(&peer);
        self.names.remove(&peer);
        self.unlisten_direct(&peer);
        for room in self.rooms.values_mut() {
            room.forget_peer(&peer);
        }
        self.redial.on_disconnected(&peer, self.now.at);
        self.schedule_redial();
        tracing::info!(%peer, "peer disconnected");
        self.emit(Event::PeerDisconnected {
            peer_id: peer.to_string(),
        });
    }

    pub(super) fn on_dial_failed(&mut self, peer: PeerId) {
        self.redial.on_dial_failed(&peer, self.now.at);
        self.schedule_redial();
    }

    pub(super) fn on_discovered(&mut self, found: Vec<(PeerId, Multiaddr)>) {
        for (peer, addr) in found {
            if peer == self.me || self.peers.contains_key(&peer) {
                continue;
            }
            if self.me < peer {
                self.out.push(Output::Dial { peer, addr });
            } else if !self.mdns_waiting.contains_key(&peer) {
                self.mdns_waiting
                    .insert(peer, (addr, self.now.at + MDNS_DIAL_GRACE));
                self.set_timer(MDNS_DIAL_GRACE, Timer::MdnsFallback(peer));
            }
        }
    }

    pub(super) fn mdns_fallback(&mut self, peer: PeerId) {
        let Some((_, at)) = self.mdns_waiting.get(&peer) else {
            return;
        };
        if *at > self.now.at {
            return;
        }
        if let Some((addr, _)) = self.mdns_waiting.remove(&peer) {
            if !self.peers.contains_key(&peer) {
                self.out.push(Output::Dial { peer, addr });
            }
        }
    }

    pub(super) fn redial_due(&mut self) {
        if !self.started {
            return;
        }
        for (peer, addr) in self.redial.due(self.now.at) {
            self.out.push(Output::Dial { peer, addr });
        }
        self.schedule_redial();
    }

    fn schedule_redial(&mut self) {
        if let Some(at) = self.redial.next_due() {
            self.out.push(Output::Timer {
                at: at.max(self.now.at),
                timer: Timer::Redial,
            });
        }
    }

    pub(super) fn on_subscribed(&mut self, peer: PeerId, topic: &str) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        state.topics.insert(topic.to_owned());
        let Some(topic) = self.book.by_topic(topic).map(|r| r.chat_topic.clone()) else {
            return;
        };
        tracing::debug!(%peer, "peer joined a room of ours");
        // One session per pair: the peer with the smaller id starts it (it is two-way, so
        // both sides catch up). Messages written while alone go out here.
        if self.me < peer {
            self.start_sync(peer, &topic);
        }
        let soon = self.presence_soon();
        self.schedule_presence_answer(&topic, soon);
    }

    pub(super) fn on_unsubscribed(&mut self, peer: PeerId, topic: &str) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.topics.remove(topic);
        }
    }

    /// The room's peers, as their subscriptions tell, in a stable order.
    pub(super) fn room_peers(&self, topic: &Topic) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, state)| state.in_room(topic))
            .map(|(peer, _)| *peer)
            .collect();
        // Hash maps iterate in a random order; the simulator needs the same run every time.
        peers.sort();
        peers
    }

    /// Announce ourselves in `topic` within `after` (earlier than planned, never later).
    pub(super) fn schedule_presence(&mut self, topic: &Topic, after: Duration) {
        self.plan_presence(topic, after, false);
    }

    /// The same, to answer a newcomer (see [`Self::presence_due`]). In a big mesh an answer
    /// reaches everyone, so one at most every [`PRESENCE_ANSWER_GAP`]: a newcomer who joins
    /// just after hears us at the next regular announcement.
    pub(super) fn schedule_presence_answer(&mut self, topic: &Topic, after: Duration) {
        let big = self.names.len() > PRESENCE_SMALL_MESH;
        let recent = self
            .rooms
            .get(topic)
            .and_then(|r| r.last_presence)
            .is_some_and(|last| self.now.at.saturating_duration_since(last) < PRESENCE_ANSWER_GAP);
        if big && recent {
            return;
        }
        self.plan_presence(topic, after, true);
    }

    fn plan_presence(&mut self, topic: &Topic, after: Duration, soon: bool) {
        let at = self.now.at + after;
        let Some(room) = self.rooms.get_mut(topic) else {
            return;
        };
        if room.presence_at.is_some_and(|planned| planned <= at) {
            return;
        }
        room.presence_at = Some(at);
        room.presence_soon = soon;
        self.set_timer(after, Timer::Presence(topic.clone()));
    }

    pub(super) fn presence_due(&mut self, topic: &Topic) {
        // An old key epoch is read, never announced in (a kicked member holds its key).
        if self.is_retired(topic) {
            return;
        }
        let Some(room) = self.rooms.get_mut(topic) else {
            return;
        };
        if room.presence_at.is_none_or(|at| at > self.now.at) {
            return;
        }
        let (soon, last) = (room.presence_soon, room.last_presence);
        room.presence_at = None;
        let interval = self.presence_interval();
        // A regular announcement planned while the mesh looked small (at start) waits for
        // the interval the mesh it has grown into calls for.
        if let (false, Some(last)) = (soon, last) {
            let due = last + interval.mul_f64(0.75);
            if due > self.now.at {
                self.schedule_presence(topic, due - self.now.at);
                return;
            }
        }
        if let Some(room) = self.rooms.get_mut(topic) {
            room.last_presence = Some(self.now.at);
        }
        self.publish(topic, Body::Presence);
        self.schedule_presence(topic, interval);
    }

    /// The next regular announcement: see [`PRESENCE_INTERVAL`].
    pub(super) fn presence_interval(&mut self) -> Duration {
        let heard = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        let base = PRESENCE_INTERVAL.max(PRESENCE_PER_PEER.saturating_mul(heard));
        base.mul_f64(self.rng.gen_range(0.75..1.25))
    }

    /// Soon after a peer joins: within [`PRESENCE_SOON`] to three times that, at random, so
    /// that the members a newcomer meets do not all answer at once.
    pub(super) fn presence_soon(&mut self) -> Duration {
        PRESENCE_SOON.mul_f64(self.rng.gen_range(1.0..3.0))
    }

    pub(super) fn peer_list(&self) -> Vec<crate::api::PeerInfo> {
        let mut peers: Vec<crate::api::PeerInfo> = self
            .peers
            .iter()
            .map(|(peer, state)| crate::api::PeerInfo {
                peer_id: peer.to_string(),
                name: self.names.get(peer).cloned().unwrap_or_default(),
                addrs: state.addrs.iter().map(ToString::to_string).collect(),
                // Only gossipsub knows scores: the driver fills them in.
                score: 0.0,
                verified: self.verified.contains(peer),
                same_name: self.same_name(peer, self.names.get(peer).map_or("", String::as_str)),
            })
            .collect();
        peers.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        peers
    }
}
