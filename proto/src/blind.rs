//! `/hark/blind/1`: what room members and blind relays say to each other.
//!
//! A blind relay keeps sealed chat envelopes of rooms it cannot open (DMs, private rooms) and
//! hands them to whoever asks for the topic. Members *store* the sealed bytes of their own
//! messages (exactly what they published on the room's chat topic) and *fetch* what is held
//! for their topics after a cursor. The relay sees topic strings, sizes and the peer ids of
//! the connections, never a key: the items are opaque to it.
//!
//! The messages travel as CBOR (libp2p request-response, like `/hark/sync/1`); the codec
//! bounds a frame at [`MAX_FRAME_BYTES`] before it allocates, and [`BlindRequest::check`] /
//! [`BlindResponse::check`] bound counts and sizes before anything is used.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::limits::{MAX_SEALED_BYTES, SEAL_OVERHEAD};

pub const PROTOCOL: &str = "/hark/blind/1";
/// Most items in one store request.
pub const MAX_STORE_ITEMS: usize = 64;
/// Most sealed bytes in one store request or one fetch response.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Most topics one fetch request asks about.
pub const MAX_FETCH_TOPICS: usize = 1024;
/// Most items in one fetch response.
pub const MAX_FETCH_ITEMS: usize = 512;
/// Largest request or response frame on the wire (a full batch, topics and CBOR framing).
pub const MAX_FRAME_BYTES: usize = MAX_BATCH_BYTES + MAX_SEALED_BYTES + 256 * 1024;
/// A refusal's reason is cut to this length.
pub const MAX_REASON_BYTES: usize = 200;

const CHAT_TOPIC_PREFIX: &str = "hark/1/chat/";
/// A chat topic's hex digest (16 bytes).
const TOPIC_HEX_LEN: usize = 32;

/// One sealed envelope for a topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub topic: String,
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// Items of `topic` held after `after` (a relay's sequence number; 0 for everything).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Want {
    pub topic: String,
    pub after: u64,
}

/// One item a relay holds, with its place in the relay's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub topic: String,
    pub seq: u64,
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlindRequest {
    /// Keep these (a member's own messages).
    Store { items: Vec<Sealed> },
    /// What is held for these topics, oldest first.
    Fetch { wants: Vec<Want> },
}

/// What became of one stored item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreResult {
    /// Held now.
    Stored,
    /// Held already (the same sealed bytes).
    Known,
    /// Not kept (not a chat topic, too large).
    Refused,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlindResponse {
    /// One result per stored item, in order.
    Stored { results: Vec<StoreResult> },
    /// Items for the fetched topics in the relay's order; `more` when the response was full.
    Items { items: Vec<Held>, more: bool },
    /// The request was not served (not a relay, malformed).
    Refused { reason: String },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BlindError {
    #[error("{0} is not a chat topic")]
    BadTopic(String),
    #[error("too many items ({0})")]
    TooMany(usize),
    #[error("a sealed item of {0} bytes is outside the limits")]
    BadItem(usize),
    #[error("{0} sealed bytes in one message, over the limit")]
    TooLarge(usize),
    #[error("a store answer with {got} results for {sent} items")]
    Mismatch { got: usize, sent: usize },
}

/// Whether `topic` is a room's chat topic (`hark/1/chat/` and 32 lower-case hex digits).
pub fn is_chat_topic(topic: &str) -> bool {
    topic.strip_prefix(CHAT_TOPIC_PREFIX).is_some_and(|hex| {
        hex.len() == TOPIC_HEX_LEN
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The relay's dedup key of an item: BLAKE3 of its sealed bytes.
pub fn item_hash(sealed: &[u8]) -> [u8; 32] {
    *blake3::hash(sealed).as_bytes()
}

fn check_item(topic: &str, sealed: &[u8]) -> Result<(), BlindError> {
    if !is_chat_topic(topic) {
        return Err(BlindError::BadTopic(topic.chars().take(80).collect()));
    }
    if sealed.len() <= SEAL_OVERHEAD || sealed.len() > MAX_SEALED_BYTES {
        return Err(BlindError::BadItem(sealed.len()));
    }
    Ok(())
}

impl BlindRequest {
    /// Counts, sizes and topic shapes; a store request's bad items are the relay's to refuse
    /// one by one, so only the batch limits fail it here.
    pub fn check(&self) -> Result<(), BlindError> {
        match self {
            BlindRequest::Store { items } => {
                if items.len() > MAX_STORE_ITEMS {
                    return Err(BlindError::TooMany(items.len()));
                }
                let bytes: usize = items.iter().map(|i| i.sealed.len()).sum();
                if bytes > MAX_BATCH_BYTES {
                    return Err(BlindError::TooLarge(bytes));
                }
                Ok(())
            }
            BlindRequest::Fetch { wants } => {
                if wants.len() > MAX_FETCH_TOPICS {
                    return Err(BlindError::TooMany(wants.len()));
                }
                match wants.iter().find(|w| !is_chat_topic(&w.topic)) {
                    Some(bad) => Err(BlindError::BadTopic(bad.topic.chars().take(80).collect())),
                    None => Ok(()),
                }
            }
        }
    }

    /// Whether one stored item may be kept.
    pub fn check_item(item: &Sealed) -> Result<(), BlindError> {
        check_item(&item.topic, &item.sealed)
    }
}

impl BlindResponse {
    pub fn refused(why: &str) -> Self {
        let mut reason = why.to_owned();
        if reason.len() > MAX_REASON_BYTES {
            let mut cut = MAX_REASON_BYTES;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        BlindResponse::Refused { reason }
    }

    /// What a member checks before it uses a relay's answer to a request of `sent_items`
    /// store items (`None` for a fetch).
    pub fn check(&self, sent_items: Option<usize>) -> Result<(), BlindError> {
        match self {
            BlindResponse::Stored { results } => match sent_items {
                Some(sent) if results.len() == sent => Ok(()),
                _ => Err(BlindError::Mismatch {
                    got: results.len(),
                    sent: sent_items.unwrap_or(0),
                }),
            },
            BlindResponse::Items { items, .. } => {
                if items.len() > MAX_FETCH_ITEMS {
                    return Err(BlindError::TooMany(items.len()));
                }
                let bytes: usize = items.iter().map(|i| i.sealed.len()).sum();
                if bytes > MAX_BATCH_BYTES + MAX_SEALED_BYTES {
                    return Err(BlindError::TooLarge(bytes));
                }
                items
                    .iter()
                    .try_for_each(|item| check_item(&item.topic, &item.sealed))
            }
            BlindResponse::Refused { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::RoomKey;

    fn topic() -> String {
        RoomKey::from_bytes([7; 32])
            .chat_topic()
            .as_str()
            .to_owned()
    }

    #[test]
    fn only_chat_topics_pass() {
        let key = RoomKey::from_bytes([7; 32]);
        assert!(is_chat_topic(key.chat_topic().as_str()));
        assert!(!is_chat_topic(key.voice_topic().as_str()));
        assert!(!is_chat_topic("hark/1/chat/"));
        assert!(!is_chat_topic(&format!("{}0", key.chat_topic())));
        assert!(!is_chat_topic(
            "hark/1/chat/0123456789ABCDEF0123456789abcdef"
        ));
    }

    #[test]
    fn requests_are_bounded() {
        let item = Sealed {
            topic: topic(),
            sealed: vec![1; 100],
        };
        let ok = BlindRequest::Store {
            items: vec![item.clone(); MAX_STORE_ITEMS],
        };
        assert_eq!(ok.check(), Ok(()));
        let many = BlindRequest::Store {
            items: vec![item.clone(); MAX_STORE_ITEMS + 1],
        };
        assert!(matches!(many.check(), Err(BlindError::TooMany(_))));
        let big = Sealed {
            topic: topic(),
            sealed: vec![1; MAX_SEALED_BYTES],
        };
        let heavy = BlindRequest::Store {
            items: vec![big; 17],
        };
        assert!(matches!(heavy.check(), Err(BlindError::TooLarge(_))));
        let tiny = Sealed {
            topic: topic(),
            sealed: vec![1; SEAL_OVERHEAD],
        };
        assert!(BlindRequest::check_item(&tiny).is_err());
        let fetch = BlindRequest::Fetch {
            wants: vec![Want {
                topic: "lobby".into(),
                after: 0,
            }],
        };
        assert!(matches!(fetch.check(), Err(BlindError::BadTopic(_))));
    }

    #[test]
    fn answers_are_checked_against_what_was_asked() {
        let stored = BlindResponse::Stored {
            results: vec![StoreResult::Stored],
        };
        assert_eq!(stored.check(Some(1)), Ok(()));
        assert!(stored.check(Some(2)).is_err());
        assert!(stored.check(None).is_err());
        let items = BlindResponse::Items {
            items: vec![Held {
                topic: "nope".into(),
                seq: 1,
                sealed: vec![0; 100],
            }],
            more: false,
        };
        assert!(items.check(None).is_err());
        let long = BlindResponse::refused(&"é".repeat(300));
        assert!(
            matches!(long, BlindResponse::Refused { reason } if reason.len() <= MAX_REASON_BYTES)
        );
    }
}
