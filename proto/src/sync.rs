//! The body of one `/hark/sync/1` exchange, sealed under the room key.
//!
//! A room's history is sharded into Automerge documents, one per UTC day. A sync session starts
//! with each side's digest of every shard's heads, so shards that already agree cost nothing;
//! for the others the two sides trade Automerge sync messages until neither has more to say.
//!
//! Encoding: one version byte, then postcard. The decoder checks counts and sizes before it
//! allocates, and never panics (fuzzed: `fuzz/fuzz_targets/sync_body.rs`).

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const SYNC_VERSION: u8 = 1;
/// Largest sealed sync request or response.
pub const MAX_SYNC_BYTES: usize = 32 * 1024 * 1024;
/// Most shards one room may have in a summary (one per day: over eleven years).
pub const MAX_SHARDS: usize = 4096;

/// The digest of one shard's Automerge heads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardDigest {
    pub shard: u32,
    pub heads: [u8; 32],
}

/// One Automerge sync message for one shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMessage {
    pub shard: u32,
    pub message: Vec<u8>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncBody {
    /// The sender's shard digests: sent in the first request and its response only.
    pub digests: Option<Vec<ShardDigest>>,
    pub messages: Vec<ShardMessage>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SyncDecodeError {
    #[error("sync body is empty")]
    Empty,
    #[error("sync body version {0} is not supported")]
    UnsupportedVersion(u8),
    #[error("sync body is {0} bytes, over the limit")]
    TooLarge(usize),
    #[error("sync body is malformed: {0}")]
    Malformed(String),
    #[error("sync body names more than {MAX_SHARDS} shards")]
    TooManyShards,
}

impl SyncBody {
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain structs into a Vec cannot fail.
        postcard::to_extend(self, vec![SYNC_VERSION]).unwrap_or_else(|_| vec![SYNC_VERSION])
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, SyncDecodeError> {
        let (&version, rest) = bytes.split_first().ok_or(SyncDecodeError::Empty)?;
        if bytes.len() > MAX_SYNC_BYTES {
            return Err(SyncDecodeError::TooLarge(bytes.len()));
        }
        if version != SYNC_VERSION {
            return Err(SyncDecodeError::UnsupportedVersion(version));
        }
        // Postcard reads lengths before allocating, and every length is bounded by the input,
        // so a forged count cannot make it reserve more than the input's size.
        let (body, trailing): (SyncBody, _) = postcard::take_from_bytes(rest)
            .map_err(|e| SyncDecodeError::Malformed(e.to_string()))?;
        if !trailing.is_empty() {
            return Err(SyncDecodeError::Malformed("bytes after the body".into()));
        }
        let digests = body.digests.as_ref().map_or(0, Vec::len);
        if digests > MAX_SHARDS || body.messages.len() > MAX_SHARDS {
            return Err(SyncDecodeError::TooManyShards);
        }
        Ok(body)
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_none() && self.messages.is_empty()
    }
}

/// The digest of a set of Automerge change hashes (order does not matter).
pub fn heads_digest(mut heads: Vec<[u8; 32]>) -> [u8; 32] {
    heads.sort_unstable();
    let mut hasher = blake3::Hasher::new();
    for head in &heads {
        hasher.update(head);
    }
    *hasher.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_rejects_bad_input() {
        let body = SyncBody {
            digests: Some(vec![ShardDigest {
                shard: 20_400,
                heads: [7; 32],
            }]),
            messages: vec![ShardMessage {
                shard: 20_400,
                message: vec![1, 2, 3],
            }],
        };
        let bytes = body.encode();
        assert_eq!(SyncBody::decode(&bytes).unwrap(), body);
        assert_eq!(SyncBody::decode(&[]), Err(SyncDecodeError::Empty));
        assert_eq!(
            SyncBody::decode(&[2, 0, 0]),
            Err(SyncDecodeError::UnsupportedVersion(2))
        );
        // A forged huge count must fail, not allocate.
        assert!(SyncBody::decode(&[1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert_eq!(
            heads_digest(vec![[1; 32], [2; 32]]),
            heads_digest(vec![[2; 32], [1; 32]])
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let _ = SyncBody::decode(&bytes);
        }
    }
}
