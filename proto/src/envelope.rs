//! The versioned envelope: what one sealed gossip payload carries.
//!
//! Encoding: one version byte, then the postcard encoding of [`Envelope`]. Postcard encodes an
//! enum variant as its index, so new [`Body`] kinds are appended at the end and older nodes
//! reject them with [`DecodeError::Malformed`] instead of misreading them.

use std::fmt;

use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::limits::{MAX_AUTHOR_BYTES, MAX_ENVELOPE_BYTES, MAX_NICK_BYTES, MAX_TEXT_BYTES};

/// The envelope version this build writes and reads.
/// Version 2 carries chat messages as Automerge changes (room history).
pub const ENVELOPE_VERSION: u8 = 2;

/// A message id: 16 random bytes chosen by the author, unique per envelope.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageId(pub [u8; 16]);

impl MessageId {
    pub fn random<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        Self(id)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", self.to_hex())
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// What an envelope says. Append new kinds at the end only (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// A chat message (text, action or alert): the Automerge change that adds its
    /// [`MessageRecord`](crate::record::MessageRecord) to the room's history shard `shard`.
    Change {
        shard: u32,
        #[serde(with = "serde_bytes")]
        change: Vec<u8>,
    },
    /// The author is typing in this room. Ephemeral.
    Typing,
    /// The author is in this room, under the envelope's name. Ephemeral.
    Presence,
    // Reserved for later kinds: voice frames.
}

impl Body {
    /// The lower-case kind name used in logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Change { .. } => "change",
            Body::Typing => "typing",
            Body::Presence => "presence",
        }
    }
}

/// One unit of room traffic, signed at the gossip layer and sealed under the room key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The author's libp2p peer id, as bytes. Must equal the gossip message's signed source.
    pub author: Vec<u8>,
    /// The author's display name when it sent this.
    pub name: String,
    pub id: MessageId,
    /// The author's wall clock, milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
    pub body: Body,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("envelope is empty")]
    Empty,
    #[error("envelope is {0} bytes, over the {MAX_ENVELOPE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error(
        "envelope version {0} is not supported (this build speaks version {ENVELOPE_VERSION})"
    )]
    UnsupportedVersion(u8),
    #[error("envelope is malformed: {0}")]
    Malformed(String),
    #[error("envelope has {0} bytes after its end")]
    TrailingBytes(usize),
    #[error("{0}")]
    Limit(&'static str),
}

impl Envelope {
    /// Encode with the version byte in front. Fails only when the result would break a limit.
    pub fn encode(&self) -> Result<Vec<u8>, DecodeError> {
        self.check_limits()?;
        let out = postcard::to_extend(self, vec![ENVELOPE_VERSION])
            .map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if out.len() > MAX_ENVELOPE_BYTES {
            return Err(DecodeError::TooLarge(out.len()));
        }
        Ok(out)
    }

    /// Decode bytes from the network. Never panics; checks size, version and every limit.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (&version, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        if version != ENVELOPE_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let (envelope, trailing): (Envelope, _) =
            postcard::take_from_bytes(rest).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if !trailing.is_empty() {
            return Err(DecodeError::TrailingBytes(trailing.len()));
        }
        envelope.check_limits()?;
        Ok(envelope)
    }

    fn check_limits(&self) -> Result<(), DecodeError> {
        if self.author.is_empty() || self.author.len() > MAX_AUTHOR_BYTES {
            return Err(DecodeError::Limit("author id is empty or too long"));
        }
        check_nick(&self.name).map_err(DecodeError::Limit)?;
        if let Body::Change { change, .. } = &self.body {
            if change.len() > MAX_TEXT_BYTES + 2048 {
                return Err(DecodeError::Limit("change is over the size limit"));
            }
        }
        Ok(())
    }
}

/// A nick is 1–32 bytes of printable text: no control characters (they could drive a
/// terminal) and no whitespace at its ends.
/// A nick this node (or a web user it serves) takes: [`check_nick`], and nothing invisible,
/// so that `carol` followed by a zero-width space cannot pass for `carol`. Names from the
/// network are held only to [`check_nick`] (a stricter rule there would refuse records that
/// peers already hold); screens show their invisible characters ([`is_invisible`]).
pub fn check_own_nick(nick: &str) -> Result<(), &'static str> {
    check_nick(nick)?;
    if show_invisible(nick) != nick {
        return Err("nick may not hold invisible characters (zero-width, direction marks)");
    }
    Ok(())
}

/// `name` as a screen should draw it: each invisible character ([`is_invisible`]) becomes
/// U+FFFD, except an emoji's own joiner or variation selector (after a character that is
/// neither ASCII nor a letter or digit: `❤️`, `👩‍🚒` stay as they are).
pub fn show_invisible(name: &str) -> String {
    let mut shown = String::with_capacity(name.len());
    let mut previous: Option<char> = None;
    for c in name.chars() {
        let emoji_part = matches!(c, '\u{200D}' | '\u{FE00}'..='\u{FE0F}')
            && previous.is_some_and(|p| !p.is_ascii() && !p.is_alphanumeric());
        shown.push(if is_invisible(c) && !emoji_part {
            '\u{FFFD}'
        } else {
            c
        });
        previous = Some(c);
    }
    shown
}

/// Characters a screen draws as nothing, or that reorder what follows: zero-width spaces and
/// joiners, direction marks and overrides, word joiners, variation selectors, fillers, tags.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

pub fn check_nick(nick: &str) -> Result<(), &'static str> {
    if nick.is_empty() || nick.len() > MAX_NICK_BYTES {
        return Err("nick must be 1 to 32 bytes long");
    }
    if nick
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '#' || c == '@')
    {
        return Err("nick may not hold spaces, control characters, '#' or '@'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_nick_taken_here_has_nothing_invisible_but_one_from_the_network_may() {
        for sneaky in [
            "carol\u{200b}",
            "\u{202e}lorac",
            "ca\u{2060}rol",
            "carol\u{fe0f}",
        ] {
            assert!(check_own_nick(sneaky).is_err(), "{sneaky:?}");
            // Records peers already hold stay valid.
            assert_eq!(check_nick(sneaky), Ok(()), "{sneaky:?}");
        }
        for fine in [
            "carol",
            "Zoë",
            "渡辺",
            "ops-1",
            "bob❤\u{fe0f}",
            "👩\u{200d}🚒",
        ] {
            assert_eq!(check_own_nick(fine), Ok(()), "{fine:?}");
        }
    }

    fn sample(body: Body) -> Envelope {
        Envelope {
            author: vec![7; 38],
            name: "alice".into(),
            id: MessageId([9; 16]),
            sent_at_ms: 1_790_000_000_000,
            body,
        }
    }

    #[test]
    fn every_kind_round_trips() {
        for body in [
            Body::Change {
                shard: 20_400,
                change: vec![1, 2, 3],
            },
            Body::Typing,
            Body::Presence,
        ] {
            let env = sample(body);
            assert_eq!(Envelope::decode(&env.encode().unwrap()).unwrap(), env);
        }
    }

    #[test]
    fn unknown_version_and_trailing_bytes_are_rejected() {
        let mut bytes = sample(Body::Typing).encode().unwrap();
        bytes.push(0);
        assert_eq!(Envelope::decode(&bytes), Err(DecodeError::TrailingBytes(1)));
        bytes[0] = 3;
        assert_eq!(
            Envelope::decode(&bytes),
            Err(DecodeError::UnsupportedVersion(3))
        );
        assert_eq!(Envelope::decode(&[]), Err(DecodeError::Empty));
    }

    #[test]
    fn limits_hold_both_ways() {
        let big = sample(Body::Change {
            shard: 1,
            change: vec![0; MAX_TEXT_BYTES + 2049],
        });
        assert!(big.encode().is_err());
        let ok = sample(Body::Change {
            shard: 1,
            change: vec![0; MAX_TEXT_BYTES],
        });
        assert!(ok.encode().is_ok());
        let mut bad_name = sample(Body::Typing);
        bad_name.name = "evil\x1b[2J".into();
        assert!(bad_name.encode().is_err());
        assert!(Envelope::decode(&vec![1; MAX_ENVELOPE_BYTES + 1]).is_err());
    }

    fn any_body() -> impl Strategy<Value = Body> {
        prop_oneof![
            (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..200))
                .prop_map(|(shard, change)| Body::Change { shard, change }),
            Just(Body::Typing),
            Just(Body::Presence),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(
            author in proptest::collection::vec(any::<u8>(), 1..=64),
            name in "[a-zA-Z0-9_.-]{1,32}",
            id in any::<[u8; 16]>(),
            sent_at_ms in any::<u64>(),
            body in any_body(),
        ) {
            let env = Envelope { author, name, id: MessageId(id), sent_at_ms, body };
            let bytes = env.encode().unwrap();
            prop_assert_eq!(Envelope::decode(&bytes).unwrap(), env);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Envelope::decode(&bytes);
        }
    }
}
