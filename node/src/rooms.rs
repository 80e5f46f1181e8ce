//! The rooms this node is in: name ↔ key ↔ topic. Pure state, no IO.

use std::collections::{BTreeMap, HashMap};

use hark_proto::{Invite, InviteError, NameError, RoomKey, RoomName, Topic};
use thiserror::Error;

use crate::store::StoredRoom;

/// A joined room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Room {
    pub name: RoomName,
    pub key: RoomKey,
    pub private: bool,
    pub chat_topic: Topic,
    pub voice_topic: Topic,
}

impl Room {
    pub fn new(name: RoomName, key: RoomKey, private: bool) -> Self {
        let chat_topic = key.chat_topic();
        let voice_topic = key.voice_topic();
        Self {
            name,
            key,
            private,
            chat_topic,
            voice_topic,
        }
    }

    pub fn public(name: RoomName) -> Self {
        let key = RoomKey::public(&name);
        Self::new(name, key, false)
    }

    pub fn stored(&self) -> StoredRoom {
        StoredRoom {
            name: self.name.clone(),
            key: self.key.clone(),
            private: self.private,
        }
    }
}

impl From<StoredRoom> for Room {
    fn from(stored: StoredRoom) -> Self {
        Room::new(stored.name, stored.key, stored.private)
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum JoinError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Invite(#[from] InviteError),
    #[error("already in a room named {0} with another key; leave it first")]
    NameTaken(RoomName),
    #[error("join needs a room name or an invite")]
    Nothing,
}

/// What the user asked to join: a name (public room) or an invite (private room).
pub fn parse_join_target(text: &str) -> Result<Room, JoinError> {
    let text = text.trim();
    if Invite::looks_like_one(text) {
        return parse_invite(text);
    }
    match RoomName::parse(text) {
        Ok(name) => Ok(Room::public(name)),
        // Not a room name, but a whole invite that lost its `hark:` on the way (a copy from
        // a wrapped line, a chat that ate it): take it as the invite it is.
        // One that is also mistyped says what is wrong with it as an invite.
        Err(e) => parse_invite(&format!("hark:{text}")).map_err(|invite_error| {
            let long_base58 = text.len() > hark_proto::limits::MAX_ROOM_NAME_BYTES
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() && !"0OIl".contains(c));
            if long_base58 {
                invite_error
            } else {
                JoinError::Name(e)
            }
        }),
    }
}

/// A private room from its invite; anything else is an invite error, never a public room.
pub fn parse_invite(text: &str) -> Result<Room, JoinError> {
    let invite = Invite::decode(text)?;
    Ok(Room::new(invite.name, invite.key, true))
}

#[derive(Default)]
pub struct RoomBook {
    by_name: BTreeMap<RoomName, Room>,
    by_topic: HashMap<String, RoomName>,
    by_voice_topic: HashMap<String, RoomName>,
    /// Old key epochs of private rooms (by chat topic): still read, synced and shown, never
    /// written to (`engine/membership.rs`).
    retired: HashMap<String, Room>,
}

impl RoomBook {
    /// Add a room. Joining the same room twice is fine (returns false); a different room under
    /// a name we already use is refused, so a name always means one key.
    pub fn insert(&mut self, room: Room) -> Result<bool, JoinError> {
        match self.by_name.get(&room.name) {
            Some(existing) if existing.key == room.key => return Ok(false),
            Some(_) => return Err(JoinError::NameTaken(room.name)),
            None => {}
        }
        self.by_topic
            .insert(room.chat_topic.as_str().to_owned(), room.name.clone());
        self.by_voice_topic
            .insert(room.voice_topic.as_str().to_owned(), room.name.clone());
        self.by_name.insert(room.name.clone(), room);
        Ok(true)
    }

    /// Move the room of `room.name` to another key (a new epoch); the old one is returned and
    /// kept as retired.
    pub fn rekey(&mut self, room: Room) -> Option<Room> {
        let old = self.by_name.remove(&room.name)?;
        self.by_topic.remove(old.chat_topic.as_str());
        self.by_voice_topic.remove(old.voice_topic.as_str());
        self.retired.remove(room.chat_topic.as_str());
        self.retired
            .insert(old.chat_topic.as_str().to_owned(), old.clone());
        self.by_topic
            .insert(room.chat_topic.as_str().to_owned(), room.name.clone());
        self.by_voice_topic
            .insert(room.voice_topic.as_str().to_owned(), room.name.clone());
        self.by_name.insert(room.name.clone(), room);
        Some(old)
    }

    /// Keep an old epoch of a room (read, synced, never written to).
    pub fn retire(&mut self, room: Room) {
        self.retired
            .insert(room.chat_topic.as_str().to_owned(), room);
    }

    /// The retired epochs of every room.
    pub fn retired(&self) -> impl Iterator<Item = &Room> {
        self.retired.values()
    }

    pub fn remove(&mut self, name: &RoomName) -> Option<Room> {
        self.retired.retain(|_, room| room.name != *name);
        let room = self.by_name.remove(name)?;
        self.by_topic.remove(room.chat_topic.as_str());
        self.by_voice_topic.remove(room.voice_topic.as_str());
        Some(room)
    }

    pub fn get(&self, name: &RoomName) -> Option<&Room> {
        self.by_name.get(name)
    }

    /// Look a room up by what a user typed (`ops`, `#ops`).
    pub fn find(&self, typed: &str) -> Option<&Room> {
        RoomName::parse(typed)
            .ok()
            .or_else(|| RoomName::parse_direct(typed))
            .and_then(|name| self.by_name.get(&name))
    }

    pub fn by_topic(&self, topic: &str) -> Option<&Room> {
        // Gossipsub hands us the topic hash; for identity-hashed topics that is the string.
        self.by_topic
            .get(topic)
            .and_then(|name| self.by_name.get(name))
            .or_else(|| self.retired.get(topic))
    }

    pub fn by_voice_topic(&self, topic: &str) -> Option<&Room> {
        self.by_voice_topic
            .get(topic)
            .and_then(|name| self.by_name.get(name))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Room> {
        self.by_name.values()
    }

    pub fn invite(&self, name: &RoomName) -> Option<String> {
        self.by_name
            .get(name)
            .filter(|room| room.private)
            .map(|room| {
                Invite {
                    name: room.name.clone(),
                    key: room.key.clone(),
                }
                .encode()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_one_key() {
        let mut book = RoomBook::default();
        let lobby = parse_join_target("#lobby").unwrap();
        assert!(book.insert(lobby.clone()).unwrap());
        assert!(!book.insert(lobby.clone()).unwrap());
        let impostor = Room::new(lobby.name.clone(), RoomKey::from_bytes([1; 32]), true);
        assert_eq!(
            book.insert(impostor),
            Err(JoinError::NameTaken(lobby.name.clone()))
        );
        assert_eq!(book.by_topic(lobby.chat_topic.as_str()), Some(&lobby));
        assert_eq!(book.find("LOBBY"), Some(&lobby));
        book.remove(&lobby.name);
        assert!(book.by_topic(lobby.chat_topic.as_str()).is_none());
    }

    #[test]
    fn invites_join_private_rooms_and_bad_ones_say_why() {
        let key = RoomKey::from_bytes([8; 32]);
        let text = Invite {
            name: RoomName::parse("ops").unwrap(),
            key: key.clone(),
        }
        .encode();
        let room = parse_join_target(&text).unwrap();
        assert!(room.private);
        assert_eq!(room.key, key);
        assert!(matches!(
            parse_join_target("hark:zzz"),
            Err(JoinError::Invite(_))
        ));
        assert!(matches!(
            parse_join_target("no spaces"),
            Err(JoinError::Name(_))
        ));
        // The prefix in capitals, or lost on the way: still the private room.
        let shouted = text.replacen("hark:", "HARK:", 1);
        assert_eq!(parse_join_target(&shouted).unwrap().key, key);
        let bare = text.strip_prefix("hark:").unwrap();
        assert_eq!(parse_join_target(bare).unwrap().key, key);
        // A bare invite with a typo is a bad invite; an invite field is never a room.
        let typo = format!("{}x", &bare[..bare.len() - 1]);
        assert!(matches!(
            parse_join_target(&typo),
            Err(JoinError::Invite(_))
        ));
        assert!(matches!(parse_invite("nothark"), Err(JoinError::Invite(_))));
        assert!(matches!(parse_invite(bare), Err(JoinError::Invite(_))));
    }
}
