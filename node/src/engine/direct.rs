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
    fn direct_room(&self, peer: &PeerId) -> Result<Room, CommandError> {
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
            if let Err(CommandError { code, detail }) = self.open_direct(peer) {
                tracing::warn!(%peer, code, "cannot open the direct-message room: {detail}");
            }
        }
    }

    /// Make the DM room with `peer` ours (stored, subscribed, `joined`), if it is not yet.
    fn open_direct(&mut self, peer: PeerId) -> Result<(), CommandError> {
        if self.has_direct(&peer) {
            return Ok(());
        }
        let room = match self.listening.remove(&peer) {
            Some(room) => room,
            None => self.direct_room(&peer)?,
        };
        let (name, topic) = (room.name.to_string(), room.chat_topic.clone());
        self.add_room(room)?;
        tracing::info!(%peer, "direct-message room open");
        self.emit(Event::Joined { room: name });
        // The other side may have asked to sync before the room was ours here: whichever of
        // us would start the session (the smaller id, see sync_new_room), start one now too.
        if self.me > peer && self.room_peers(&topic).contains(&peer) {
            self.start_sync(peer, &topic);
        }
        Ok(())
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
        self.open_direct(peer)?;
        let room = format!("@{peer}");
        self.send_message(&room, MessageKind::Text, text)
    }
}
