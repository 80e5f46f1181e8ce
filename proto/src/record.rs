//! One chat message as room history stores it.
//!
//! A record is the value of one key in a room's Automerge document (the key is the message id
//! in hex). Records are immutable: a message is written once and never edited, so the document
//! is a grow-only map and the CRDT's job is to merge and sync sets of records.
//!
//! Encoding: one version byte, then postcard.
//!
//! Every record is signed by its author's identity key over [`MessageRecord::signed_bytes`]:
//! the record without its signature, bound to the room's chat topic. A message that reaches a
//! node by sync, through peers other than its author, is thereby as authentic as one the author
//! gossiped, and a member cannot replay another member's words into a different room. This
//! crate only lays out the bytes; the node signs and verifies them (it holds the keys).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::envelope::check_nick;
use crate::hlc::Hlc;
use crate::limits::{MAX_AUTHOR_BYTES, MAX_TEXT_BYTES};
use crate::MessageId;

pub const RECORD_VERSION: u8 = 2;
/// An ed25519 signature is 64 bytes; a little room for other key types.
pub const MAX_SIGNATURE_BYTES: usize = 128;
const SIGNING_DOMAIN: &[u8] = b"hark/record/2";

/// What kind of line a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageKind {
    Text,
    Me,
    Alert,
    /// A membership operation (`membership.rs`): never shown as a message, and never accepted
    /// from a client as a kind to send.
    Member,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Me => "me",
            MessageKind::Alert => "alert",
            MessageKind::Member => "member",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "text" => Some(MessageKind::Text),
            "me" => Some(MessageKind::Me),
            "alert" => Some(MessageKind::Alert),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: MessageId,
    /// The author's libp2p peer id as bytes.
    pub author: Vec<u8>,
    pub name: String,
    pub hlc: Hlc,
    pub kind: MessageKind,
    pub text: String,
    /// The author's signature over [`MessageRecord::signed_bytes`].
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record is empty")]
    Empty,
    #[error("record version {0} is not supported")]
    UnsupportedVersion(u8),
    #[error("record is malformed: {0}")]
    Malformed(String),
    #[error("{0}")]
    Limit(&'static str),
}

impl MessageRecord {
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        self.check()?;
        postcard::to_extend(self, vec![RECORD_VERSION])
            .map_err(|e| RecordError::Malformed(e.to_string()))
    }

    /// Decode bytes that came from a peer. Never panics; checks every limit.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let (&version, rest) = bytes.split_first().ok_or(RecordError::Empty)?;
        if version != RECORD_VERSION {
            return Err(RecordError::UnsupportedVersion(version));
        }
        if rest.len() > MAX_TEXT_BYTES + MAX_SIGNATURE_BYTES + 1024 {
            return Err(RecordError::Limit("record is too large"));
        }
        let (record, trailing): (MessageRecord, _) =
            postcard::take_from_bytes(rest).map_err(|e| RecordError::Malformed(e.to_string()))?;
        if !trailing.is_empty() {
            return Err(RecordError::Malformed("bytes after the record".into()));
        }
        record.check()?;
        Ok(record)
    }

    /// What the author signs: a domain tag, the room's chat topic, and every field but the
    /// signature, in the record's own encoding.
    pub fn signed_bytes(&self, chat_topic: &str) -> Vec<u8> {
        let fields = (
            &self.id,
            &self.author,
            &self.name,
            &self.hlc,
            &self.kind,
            &self.text,
        );
        let mut out = SIGNING_DOMAIN.to_vec();
        out.extend_from_slice(&(chat_topic.len() as u32).to_be_bytes());
        out.extend_from_slice(chat_topic.as_bytes());
        // Serialising plain fields into a Vec cannot fail.
        postcard::to_extend(&fields, out).unwrap_or_default()
    }

    fn check(&self) -> Result<(), RecordError> {
        if self.signature.len() > MAX_SIGNATURE_BYTES {
            return Err(RecordError::Limit("signature is too long"));
        }
        if self.author.is_empty() || self.author.len() > MAX_AUTHOR_BYTES {
            return Err(RecordError::Limit("author id is empty or too long"));
        }
        check_nick(&self.name).map_err(RecordError::Limit)?;
        if self.text.len() > MAX_TEXT_BYTES {
            return Err(RecordError::Limit("text is over the 16 KiB limit"));
        }
        if self.text.trim().is_empty() {
            return Err(RecordError::Limit("text is empty"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> MessageRecord {
        MessageRecord {
            id: MessageId([5; 16]),
            author: vec![1; 38],
            name: "alice".into(),
            hlc: Hlc::new(1_790_000_000_000, 3),
            kind: MessageKind::Me,
            text: "waves".into(),
            signature: vec![7; 64],
        }
    }

    #[test]
    fn signed_bytes_bind_every_field_and_the_room_but_not_the_signature() {
        let base = sample().signed_bytes("topic-a");
        assert_ne!(base, sample().signed_bytes("topic-b"));
        let mut other = sample();
        other.signature = vec![1; 64];
        assert_eq!(other.signed_bytes("topic-a"), base);
        for change in [
            |r: &mut MessageRecord| r.text.push('!'),
            |r: &mut MessageRecord| r.name.push('x'),
            |r: &mut MessageRecord| r.hlc = Hlc::new(1, 0),
            |r: &mut MessageRecord| r.kind = MessageKind::Alert,
            |r: &mut MessageRecord| r.author[0] ^= 1,
            |r: &mut MessageRecord| r.id.0[0] ^= 1,
        ] {
            let mut r = sample();
            change(&mut r);
            assert_ne!(r.signed_bytes("topic-a"), base);
        }
    }

    #[test]
    fn round_trips_and_rejects_bad_input() {
        let bytes = sample().encode().unwrap();
        assert_eq!(MessageRecord::decode(&bytes).unwrap(), sample());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(MessageRecord::decode(&trailing).is_err());
        let mut version = bytes;
        version[0] = 9;
        assert_eq!(
            MessageRecord::decode(&version),
            Err(RecordError::UnsupportedVersion(9))
        );
        assert_eq!(MessageRecord::decode(&[]), Err(RecordError::Empty));
        let mut empty = sample();
        empty.text = "  ".into();
        assert!(empty.encode().is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = MessageRecord::decode(&bytes);
        }
    }
}
