//! Room names, room keys and the topics derived from them.

use std::fmt;

use rand::{CryptoRng, RngCore};
use thiserror::Error;

use crate::limits::MAX_ROOM_NAME_BYTES;

/// Domain-separation contexts for BLAKE3 `derive_key`. Changing one is a wire break.
const PUBLIC_ROOM_CONTEXT: &str = "hark 2026-11 public room key v1";
const CHAT_TOPIC_CONTEXT: &str = "hark 2026-11 chat topic v1";
const VOICE_TOPIC_CONTEXT: &str = "hark 2026-11 voice topic v1";
const SYNC_CONTEXT: &str = "hark 2026-11 history sync v1";
const FINGERPRINT_CONTEXT: &str = "hark 2026-11 room key fingerprint v1";
/// The longest peer id text a direct-message room is named after (an Ed25519 id is 52).
const MAX_PEER_ID_CHARS: usize = 64;

/// A validated room name: lowercase, 1–48 bytes of `a-z 0-9 - _ .`; a leading `#` is dropped.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(String);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("room name is empty")]
    Empty,
    #[error("room name is longer than {MAX_ROOM_NAME_BYTES} bytes")]
    TooLong,
    #[error("room name may only hold a-z, 0-9, '-', '_' and '.', not {0:?}")]
    BadChar(char),
}

impl RoomName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let name = raw.trim();
        let name = name.strip_prefix('#').unwrap_or(name).to_lowercase();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_ROOM_NAME_BYTES {
            return Err(NameError::TooLong);
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(*c)))
        {
            return Err(NameError::BadChar(bad));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of the direct-message room with `peer` (a peer id as text): `@PEER`. Never
    /// what [`RoomName::parse`] accepts, so no public room can take a DM's name.
    pub fn direct(peer: &str) -> Result<Self, NameError> {
        if peer.is_empty() {
            return Err(NameError::Empty);
        }
        if peer.len() > MAX_PEER_ID_CHARS {
            return Err(NameError::TooLong);
        }
        if let Some(bad) = peer.chars().find(|c| !c.is_ascii_alphanumeric()) {
            return Err(NameError::BadChar(bad));
        }
        Ok(Self(format!("@{peer}")))
    }

    /// `@PEER` as typed or stored: the direct-message room's name.
    pub fn parse_direct(raw: &str) -> Option<Self> {
        Self::direct(raw.trim().strip_prefix('@')?).ok()
    }

    /// The other member's peer id (text) if this is a direct-message room.
    pub fn direct_peer(&self) -> Option<&str> {
        self.0.strip_prefix('@')
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A room's 32-byte symmetric key. Whoever holds it can read and write the room.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RoomKey([u8; 32]);

impl RoomKey {
    /// The key of a public room: anyone who knows the name can derive it.
    pub fn public(name: &RoomName) -> Self {
        Self(blake3::derive_key(
            PUBLIC_ROOM_CONTEXT,
            name.as_str().as_bytes(),
        ))
    }

    /// A fresh key for a private room.
    pub fn random<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        Self(key)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The gossipsub topic for chat, typing and presence in this room.
    pub fn chat_topic(&self) -> Topic {
        Topic::derive("chat", CHAT_TOPIC_CONTEXT, &self.0)
    }

    /// The gossipsub topic for this room's voice frames.
    pub fn voice_topic(&self) -> Topic {
        Topic::derive("voice", VOICE_TOPIC_CONTEXT, &self.0)
    }

    /// The associated data that binds sealed `/hark/sync/1` bodies to this room.
    pub fn sync_channel(&self) -> Topic {
        Topic::derive("sync", SYNC_CONTEXT, &self.0)
    }

    /// A short, non-secret identifier of the key, safe to log and show.
    pub fn fingerprint(&self) -> String {
        hex::encode(&blake3::derive_key(FINGERPRINT_CONTEXT, &self.0)[..4])
    }
}

impl fmt::Debug for RoomKey {
    // Never print key material, not even in debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomKey({})", self.fingerprint())
    }
}

/// A gossipsub topic string such as `hark/1/chat/3f9a…`. It reveals nothing about the name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(String);

impl Topic {
    fn derive(kind: &str, context: &str, key: &[u8; 32]) -> Self {
        let digest = blake3::derive_key(context, key);
        Self(format!("hark/1/{kind}/{}", hex::encode(&digest[..16])))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_checked() {
        assert_eq!(RoomName::parse(" #Ops ").unwrap().as_str(), "ops");
        assert_eq!(RoomName::parse("#"), Err(NameError::Empty));
        assert_eq!(RoomName::parse("a b"), Err(NameError::BadChar(' ')));
        assert_eq!(RoomName::parse(&"x".repeat(49)), Err(NameError::TooLong));
        assert!(RoomName::parse("deck-2_aft.ops").is_ok());
    }

    #[test]
    fn public_keys_and_topics_are_stable_and_distinct() {
        let lobby = RoomName::parse("lobby").unwrap();
        let ops = RoomName::parse("ops").unwrap();
        assert_eq!(RoomKey::public(&lobby), RoomKey::public(&lobby));
        assert_ne!(RoomKey::public(&lobby), RoomKey::public(&ops));
        let key = RoomKey::public(&lobby);
        assert_ne!(key.chat_topic(), key.voice_topic());
        assert!(!key.chat_topic().as_str().contains("lobby"));
        assert!(key.chat_topic().as_str().starts_with("hark/1/chat/"));
    }

    #[test]
    fn direct_names_are_their_own_kind() {
        let name = RoomName::direct("12D3KooWabc").unwrap();
        assert_eq!(name.as_str(), "@12D3KooWabc");
        assert_eq!(name.direct_peer(), Some("12D3KooWabc"));
        assert_eq!(RoomName::parse_direct(" @12D3KooWabc "), Some(name));
        assert!(
            RoomName::parse("@12D3KooWabc").is_err(),
            "never a public room"
        );
        assert!(RoomName::parse_direct("12D3KooWabc").is_none());
        assert!(RoomName::parse_direct("@a b").is_none());
        assert!(RoomName::parse("ops").unwrap().direct_peer().is_none());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = RoomKey::from_bytes([0xab; 32]);
        assert!(!format!("{key:?}").contains("abab"));
    }
}
