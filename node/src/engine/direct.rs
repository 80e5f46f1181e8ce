//! Direct messages: a two-member room `@PEER` whose key both members derive from their
//! identity keys ([`hark_proto::direct`]), with the history, sync and voice of any room.
//!
//! The receiver must be subscribed to the room's topic before the first message can reach
//! it, yet it cannot know that a DM exists. So while connected to a peer, a node listens on
//! the chat topic of the DM it would have with that peer (one subscription per connection,
//! derived from a secret: it reveals nothing to others). The room becomes real — stored,
//! shown, `joined {room:"@PEER"}` — the moment the other side uses it: a message arrives on
//! it, the peer asks to sync it, or the peer subscribes to its voice topic (which only a node
//! that has the room does). Then the two sync like any room members, so a DM written while
//! the other was away arrives when they next meet.

use std::collections::HashMap;

#[cfg(test)]
use hark_proto::Topic;
use hark_proto::{MessageKind, RoomName};
use libp2p::PeerId;

use super::identities::ed25519_key;
use super::{fail, CommandError, Engine, Input, Storage};
use crate::api::Event;
use crate::rooms::Room;

/// The DM rooms we listen on but do not have yet, by the peer they are with.
#[derive(Default)]
pub struct Listening {
    by_peer: HashMap<PeerId, Room>,
    by_chat: HashMap<String, PeerId>,
    by_voice: HashMap<String, PeerId>,
}

impl Listening {
    fn insert(&mut self, peer: PeerId, room: Room) {
        self.by_chat
            .insert(room.chat_topic.as_str().to_owned(), peer);
        self.by_voice
            .insert(room.voice_topic.as_str().to_owned(), peer);
        self.by_peer.insert(peer, room);
    }

    fn remove(&mut self, peer: &PeerId) -> Option<Room> {
        let room = self.by_peer.remove(peer)?;
        self.by_chat.remove(room.chat_topic.as_str());
        self.by_voice.remove(room.voice_topic.as_str());
        Some(room)
    }
}

impl<S: Storage> Engine<S> {
    /// The DM room with `peer`.
    pub(super) fn direct_room(&self, peer: &PeerId) -> Result<Room, CommandError> {
        let bad = || fail("bad_peer", format!("{peer} is not an Ed25519 identity"));
        let theirs = ed25519_key(peer).ok_or_else(bad)?;
        let ours = self
            .identity
            .clone()
            .try_into_ed25519()
            .map_err(|_| fail("bad_peer", "this node's identity is not Ed25519"))?;
        let seed: [u8; 32] = ours
            .secret()
            .as_ref()
            .try_into()
            .map_err(|_| fail("bad_peer", "this node's identity key has an odd length"))?;
        let key = hark_proto::direct::direct_key(&seed, &theirs).map_err(|_| bad())?;
        let name = RoomName::direct(&peer.to_string()).map_err(|_| bad())?;
        Ok(Room::new(name, key, true))
    }

    fn has_direct(&self, peer: &PeerId) -> bool {
        RoomName::direct(&peer.to_string()).is_ok_and(|name| self.book.get(&name).is_some())
    }

    /// A connection to `peer` is up: listen for a DM from it.
    pub(super) fn listen_direct(&mut self, peer: PeerId) {
        if peer == self.me || self.has_direct(&peer) || self.listening.by_peer.contains_key(&peer) {
            return;
        }
        let Ok(room) = self.direct_room(&peer) else {
            return;
        };
        self.out
            .push(super::Output::Subscribe(room.chat_topic.clone()));
        self.listening.insert(peer, room);
    }

    /// The last connection to `peer` closed: stop listening (a DM we have stays).
    pub(super) fn unlisten_direct(&mut self, peer: &PeerId) {
        if let Some(room) = self.listening.remove(peer) {
            self.out.push(super::Output::Unsubscribe(room.chat_topic));
        }
    }

    /// Before an input is handled: does it show that a peer uses the DM room we only listen
    /// on? Then the room becomes ours, so the input finds it.
    pub(super) fn wake_direct(&mut self, input: &Input) {
        let peer = match input {
            Input::Gossip { topic, .. } => self.listening.by_chat.get(topic.as_str()),
            Input::SyncRequest { request, .. } => self.listening.by_chat.get(&request.room),
            Input::Subscribed { topic, .. } => self.listening.by_voice.get(topic.as_str()),
            _ => None,
        };
        if let Some(peer) = peer.copied() {
            match self.open_direct(peer) {
                Ok(Some(room)) => self.emit(Event::Joined { room }),
                Ok(None) => {}
                Err(CommandError { code, detail }) => {
                    tracing::warn!(%peer, code, "cannot open the direct-message room: {detail}");
                }
            }
        }
    }

    /// Make the DM room with `peer` ours (stored, subscribed, `joined`), if it is not yet.
    /// Returns the room's name when it was opened now, for the caller to announce.
    pub(super) fn open_direct(&mut self, peer: PeerId) -> Result<Option<String>, CommandError> {
        if self.has_direct(&peer) {
            return Ok(None);
        }
        let room = match self.listening.remove(&peer) {
            Some(room) => room,
            None => self.direct_room(&peer)?,
        };
        let (name, topic) = (room.name.to_string(), room.chat_topic.clone());
        self.add_room(room)?;
        tracing::info!(%peer, "direct-message room open");
        // The other side may have asked to sync before the room was ours here: whichever of
        // us would start the session (the smaller id, see sync_new_room), start one now too.
        if self.me > peer && self.room_peers(&topic).contains(&peer) {
            self.start_sync(peer, &topic);
        }
        Ok(Some(name))
    }

    /// `dm {to,text}`: a direct message to a peer (id, or a name heard), in room `@PEER`.
    pub(super) fn direct_message(&mut self, to: &str, text: String) -> Result<(), CommandError> {
        let peer = self.resolve_peer(to)?;
        if peer == self.me {
            return Err(fail(
                "bad_peer",
                "a direct message to yourself goes nowhere",
            ));
        }
        let opened = self.open_direct(peer)?;
        let room = format!("@{peer}");
        let sent = self.send_message_at_once(&room, MessageKind::Text, text);
        // `sent` (or the error) first: it is the answer to `dm`; `joined` follows.
        if let Err(CommandError { code, detail }) = sent {
            self.emit(Event::error(code, detail));
        }
        if let Some(room) = opened {
            self.emit(Event::Joined { room });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use libp2p::identity::Keypair;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::super::{EngineConfig, MemoryStore, Now, Output};
    use super::*;

    fn now() -> Now {
        Now {
            at: Instant::now(),
            wall_ms: 1_796_083_200_000,
        }
    }

    fn engine(seed: u8) -> Engine<MemoryStore> {
        Engine::new(
            EngineConfig::for_test(seed),
            MemoryStore::default(),
            StdRng::seed_from_u64(u64::from(seed)),
            now(),
        )
    }

    fn peer(seed: u8) -> PeerId {
        Keypair::ed25519_from_bytes([seed; 32])
            .unwrap()
            .public()
            .to_peer_id()
    }

    fn room_of(engine: &Engine<MemoryStore>, peer: &PeerId) -> Room {
        match engine.direct_room(peer) {
            Ok(room) => room,
            Err(e) => panic!("no DM room: {}", e.detail),
        }
    }

    fn joined(out: &[Output]) -> Vec<String> {
        out.iter()
            .filter_map(|o| match o {
                Output::Event(Event::Joined { room }) => Some(room.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_dm_room_is_listened_on_per_connection_and_opens_only_when_the_peer_uses_it() {
        let mut a = engine(1);
        let b = peer(2);
        let room = room_of(&a, &b);
        // The same room, seen from b's side, has the same topics.
        assert_eq!(room_of(&engine(2), &a.me).key, room.key);

        let connected = Input::Connected {
            peer: b,
            addr: "/memory/2".parse().unwrap(),
            first: true,
        };
        let out = a.handle(connected, now());
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Subscribe(t) if *t == room.chat_topic)),
            "listening on the DM topic"
        );
        // b only listening too (its chat-topic subscription): nothing opens.
        let out = a.handle(
            Input::Subscribed {
                peer: b,
                topic: room.chat_topic.as_str().to_owned(),
            },
            now(),
        );
        assert!(joined(&out).is_empty());
        assert!(a.store().rooms().is_empty());
        // b has the room (its voice-topic subscription): it opens here, stored.
        let out = a.handle(
            Input::Subscribed {
                peer: b,
                topic: room.voice_topic.as_str().to_owned(),
            },
            now(),
        );
        assert_eq!(joined(&out), vec![format!("@{b}")]);
        assert_eq!(a.store().rooms().len(), 1);
        // An open room outlives the connection; a room only listened on does not.
        let c = peer(3);
        let c_topic = room_of(&a, &c).chat_topic;
        a.handle(
            Input::Connected {
                peer: c,
                addr: "/memory/3".parse().unwrap(),
                first: true,
            },
            now(),
        );
        for gone in [b, c] {
            let out = a.handle(
                Input::Disconnected {
                    peer: gone,
                    addr: format!("/memory/{}", if gone == b { 2 } else { 3 })
                        .parse()
                        .unwrap(),
                    remaining: 0,
                },
                now(),
            );
            let dropped: Vec<&Topic> = out
                .iter()
                .filter_map(|o| match o {
                    Output::Unsubscribe(t) => Some(t),
                    _ => None,
                })
                .collect();
            if gone == b {
                assert!(dropped.is_empty(), "the open DM stays: {dropped:?}");
            } else {
                assert_eq!(dropped, vec![&c_topic]);
            }
        }
    }

    #[test]
    fn a_dm_to_yourself_or_a_stranger_is_refused() {
        let mut a = engine(1);
        let me = a.me.to_string();
        let out = a.handle(
            Input::Command(crate::api::Command::Dm {
                to: me,
                text: "hi".into(),
            }),
            now(),
        );
        assert!(out
            .iter()
            .any(|o| matches!(o, Output::Event(Event::Error { code, .. }) if code == "bad_peer")));
        let out = a.handle(
            Input::Command(crate::api::Command::Dm {
                to: "nobody".into(),
                text: "hi".into(),
            }),
            now(),
        );
        assert!(out.iter().any(
            |o| matches!(o, Output::Event(Event::Error { code, .. }) if code == "unknown_peer")
        ));
    }
}
