//! A room's chat topic: what we publish on it, and the verdict on what arrives.

use hark_proto::{seal, Body, Envelope, MessageId, Topic};
use libp2p::gossipsub::{MessageAcceptance, MessageId as GossipId};
use libp2p::PeerId;

use super::history::Taken;
use super::{Engine, Output, Storage, MAX_NAMES};
use crate::api::Event;
use crate::validate::{self, Drop};

impl<S: Storage> Engine<S> {
    /// Seal and publish `body` in the room of `topic` under a fresh envelope id.
    pub(super) fn publish(&mut self, topic: &Topic, body: Body) {
        let id = MessageId::random(&mut self.rng);
        self.publish_as(topic, id, body);
    }

    /// Seal and publish `body` under envelope id `id`. With no room peer reachable the swarm
    /// sends nothing: typing and presence are ephemeral, and history reaches peers by sync.
    pub(super) fn publish_as(&mut self, topic: &Topic, id: MessageId, body: Body) {
        let Some(room) = self.rooms.get(topic).map(|r| r.room.clone()) else {
            return;
        };
        // History (private rooms and DMs) is also handed to blind relays, sealed as published.
        let for_relays = room.private && matches!(body, Body::Change { .. });
        let envelope = Envelope {
            author: self.me.to_bytes(),
            name: self.name.clone(),
            id,
            sent_at_ms: self.wall_ms(),
            body,
        };
        let plain = match envelope.encode() {
            Ok(plain) => plain,
            Err(e) => {
                self.emit(Event::error("too_long", e.to_string()));
                return;
            }
        };
        let data = seal::seal(&room.key, &room.chat_topic, &plain, &mut self.rng);
        if for_relays {
            self.offer_to_relays(&room.chat_topic, id, data.clone());
        }
        self.out.push(Output::Publish {
            topic: room.chat_topic,
            data,
        });
    }

    pub(super) fn on_gossip(
        &mut self,
        id: GossipId,
        from: PeerId,
        source: Option<PeerId>,
        topic: &str,
        data: &[u8],
    ) {
        let Some(room) = self.book.by_topic(topic).cloned() else {
            let acceptance = match self.book.by_voice_topic(topic).cloned() {
                Some(room) => self.on_voice_gossip(&room, source, from, data),
                None => MessageAcceptance::Ignore,
            };
            self.out.push(Output::Verdict {
                id,
                from,
                acceptance,
            });
            return;
        };
        let source_bytes = source.map(|p| p.to_bytes());
        let delivered = validate::check(&room, source_bytes.as_deref(), data, &mut self.seen)
            .and_then(|envelope| self.deliver(&room.chat_topic, envelope, from));
        // The verdict goes out before the message is stored or shown, so that gossipsub
        // forwards it first: the store's work is this hop's own business.
        let (acceptance, to_store) = match delivered {
            Ok(to_store) => (MessageAcceptance::Accept, to_store),
            Err(drop) => {
                self.count_drop(drop, from, room.name.as_str());
                let acceptance = if drop.penalise() {
                    MessageAcceptance::Reject
                } else {
                    MessageAcceptance::Ignore
                };
                (acceptance, None)
            }
        };
        self.out.push(Output::Verdict {
            id,
            from,
            acceptance,
        });
        match to_store {
            Some((Taken::Now(added), author)) => {
                self.take_in(&room.chat_topic, vec![added], &author);
            }
            Some((Taken::Held(added), author)) => self.show_held(&room.chat_topic, added, &author),
            None => {}
        }
    }

    pub(super) fn count_drop(&mut self, drop: Drop, from: PeerId, room: &str) {
        *self.drops.entry(drop).or_default() += 1;
        if self.drop_warned.len() > 1_024 {
            self.drop_warned.clear();
        }
        if self.drop_warned.insert((from, drop)) {
            tracing::warn!(peer = %from, room, reason = drop.as_str(), "dropped a message (further drops of this kind from this peer are counted quietly)");
        }
    }

    /// Act on a checked envelope. A history change that does not apply is the sender's fault
    /// and comes back as a drop reason (gossipsub then penalises the sender); one that applies
    /// comes back with its author, to be stored and shown after the verdict.
    fn deliver(
        &mut self,
        topic: &Topic,
        envelope: Envelope,
        from: PeerId,
    ) -> Result<Option<(Taken, Vec<u8>)>, Drop> {
        let Ok(author) = PeerId::from_bytes(&envelope.author) else {
            return Err(Drop::Malformed);
        };
        if self.names.len() >= MAX_NAMES && !self.names.contains_key(&author) {
            self.names.clear();
        }
        let newly_heard = self.names.insert(author, envelope.name.clone()).is_none();
        let Some(room_name) = self.rooms.get(topic).map(|r| r.room.name.to_string()) else {
            return Ok(None);
        };
        // It opened under the room key: its author is a member (delivery marks' M).
        self.heard_in(topic, author);
        if newly_heard && author != self.me {
            // Someone we may never meet directly (behind a relay) may write to us: ask relays
            // for our DM with them too.
            self.note_met(author);
        }
        let name = envelope.name;
        let event = match envelope.body {
            Body::Change { shard, change } => {
                let taken = self.on_gossip_change(topic, shard, &change, &envelope.author, from)?;
                return Ok(taken.map(|taken| (taken, envelope.author)));
            }
            // A member kicked from a private room is not shown typing or present in it.
            _ if self.kicked_from(topic, &envelope.author) => return Ok(None),
            Body::Typing => Event::Typing {
                room: room_name,
                from: self.peer_text(&envelope.author),
                name,
            },
            Body::Presence => {
                // Someone we are not connected to, forwarded by a peer we are (behind a
                // relay, on another segment), whom we had not heard: tell them we are here
                // too, as we do for a peer that subscribes over a connection; otherwise they
                // would wait for our next regular announcement (a minute or more) to see us.
                let relayed = from != author && !self.peers.contains_key(&author);
                if newly_heard && relayed && author != self.me {
                    let soon = self.presence_soon();
                    self.schedule_presence_answer(topic, soon);
                }
                Event::Presence {
                    room: room_name,
                    from: self.peer_text(&envelope.author),
                    name,
                }
            }
        };
        self.emit(event);
        Ok(None)
    }
}
