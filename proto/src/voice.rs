//! One push-to-talk voice frame as it travels on a room's voice topic.
//!
//! Voice is not an [`Envelope`](crate::Envelope): at 50 frames a second the envelope's author,
//! name and id would cost more than the audio. The author is the gossip message's signed
//! source; a talk-spurt is identified by a random id, frames within it by a sequence number.
//!
//! Encoding: one version byte, then postcard. Sealed under the room key with the voice topic as
//! associated data, like everything else.

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const VOICE_VERSION: u8 = 1;
/// Largest Opus payload accepted: far above what 24 kbit/s in 20 ms produces (≈ 60 bytes).
pub const MAX_OPUS_BYTES: usize = 1275;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceFrame {
    /// Random per talk-spurt (one press of the PTT key).
    pub spurt: u32,
    /// Frame number within the spurt; starts anywhere and wraps.
    pub seq: u16,
    /// The talker's wall clock when the frame was captured, ms since the Unix epoch.
    pub captured_ms: u64,
    /// Frame length in ms: 10 or 20.
    pub frame_ms: u8,
    /// The last frame of the spurt (the key was released).
    pub last: bool,
    #[serde(with = "serde_bytes")]
    pub opus: Vec<u8>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum VoiceDecodeError {
    #[error("voice frame is empty")]
    Empty,
    #[error("voice frame version {0} is not supported")]
    UnsupportedVersion(u8),
    #[error("voice frame is malformed: {0}")]
    Malformed(String),
    #[error("{0}")]
    Limit(&'static str),
}

impl VoiceFrame {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_extend(self, vec![VOICE_VERSION]).unwrap_or_else(|_| vec![VOICE_VERSION])
    }

    /// Decode bytes from the network. Never panics; checks every limit.
    pub fn decode(bytes: &[u8]) -> Result<Self, VoiceDecodeError> {
        let (&version, rest) = bytes.split_first().ok_or(VoiceDecodeError::Empty)?;
        if version != VOICE_VERSION {
            return Err(VoiceDecodeError::UnsupportedVersion(version));
        }
        if rest.len() > MAX_OPUS_BYTES + 64 {
            return Err(VoiceDecodeError::Limit("voice frame is too large"));
        }
        let (frame, trailing): (VoiceFrame, _) = postcard::take_from_bytes(rest)
            .map_err(|e| VoiceDecodeError::Malformed(e.to_string()))?;
        if !trailing.is_empty() {
            return Err(VoiceDecodeError::Malformed("bytes after the frame".into()));
        }
        if !matches!(frame.frame_ms, 10 | 20) {
            return Err(VoiceDecodeError::Limit("frame length must be 10 or 20 ms"));
        }
        if frame.opus.is_empty() || frame.opus.len() > MAX_OPUS_BYTES {
            return Err(VoiceDecodeError::Limit(
                "Opus payload is empty or too large",
            ));
        }
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_rejects_bad_input() {
        let frame = VoiceFrame {
            spurt: 7,
            seq: u16::MAX,
            captured_ms: 1_790_000_000_000,
            frame_ms: 20,
            last: true,
            opus: vec![0xfc; 60],
        };
        let bytes = frame.encode();
        assert!(bytes.len() < 80, "small on the wire: {}", bytes.len());
        assert_eq!(VoiceFrame::decode(&bytes).unwrap(), frame);
        assert_eq!(VoiceFrame::decode(&[]), Err(VoiceDecodeError::Empty));
        let mut bad = bytes.clone();
        bad[0] = 2;
        assert!(VoiceFrame::decode(&bad).is_err());
        let mut long = bytes;
        long.push(1);
        assert!(VoiceFrame::decode(&long).is_err());
        let odd = VoiceFrame {
            frame_ms: 30,
            ..frame.clone()
        };
        assert!(VoiceFrame::decode(&odd.encode()).is_err());
        let empty = VoiceFrame {
            opus: Vec::new(),
            ..frame
        };
        assert!(VoiceFrame::decode(&empty.encode()).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = VoiceFrame::decode(&bytes);
        }
    }
}
