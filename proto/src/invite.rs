//! Invite strings: a private room's name and key, to be shared out of band.
//!
//! Form: `hark:` followed by base58 of
//! `version (1) || name length (1) || name || key (32) || checksum (4)`, where the checksum is
//! the first four bytes of BLAKE3 over everything before it, so a mangled paste is caught.

use thiserror::Error;

use crate::room::{NameError, RoomKey, RoomName};

const PREFIX: &str = "hark:";
const INVITE_VERSION: u8 = 1;
const CHECKSUM_BYTES: usize = 4;
/// Bounds the base58 decoder's work on hostile input (a real invite is ≈ 120 characters).
const MAX_INVITE_CHARS: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    pub name: RoomName,
    pub key: RoomKey,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum InviteError {
    #[error("an invite starts with \"hark:\"")]
    MissingPrefix,
    #[error("invite is too long to be one")]
    TooLong,
    #[error("invite holds characters that are not base58 (was it cut or mistyped?)")]
    NotBase58,
    #[error("invite is truncated")]
    Truncated,
    #[error("invite version {0} is not supported by this build")]
    UnsupportedVersion(u8),
    #[error("invite checksum does not match (was it cut or mistyped?)")]
    BadChecksum,
    #[error("invite names an invalid room: {0}")]
    BadName(#[from] NameError),
}

/// The text after `hark:`, the prefix in any case (`HARK:` from a shouting chat or a phone).
fn strip_prefix(text: &str) -> Option<&str> {
    let head = text.get(..PREFIX.len())?;
    head.eq_ignore_ascii_case(PREFIX)
        .then(|| &text[PREFIX.len()..])
}

impl Invite {
    /// Whether `text` is meant as an invite (starts with `hark:` in any case).
    pub fn looks_like_one(text: &str) -> bool {
        strip_prefix(text.trim()).is_some()
    }

    pub fn encode(&self) -> String {
        let name = self.name.as_str().as_bytes();
        let mut bytes = vec![INVITE_VERSION, name.len() as u8];
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(self.key.as_bytes());
        let checksum = blake3::hash(&bytes);
        bytes.extend_from_slice(&checksum.as_bytes()[..CHECKSUM_BYTES]);
        format!("{PREFIX}{}", bs58::encode(bytes).into_string())
    }

    pub fn decode(text: &str) -> Result<Self, InviteError> {
        let body = strip_prefix(text.trim()).ok_or(InviteError::MissingPrefix)?;
        if body.len() > MAX_INVITE_CHARS {
            return Err(InviteError::TooLong);
        }
        let bytes = bs58::decode(body)
            .into_vec()
            .map_err(|_| InviteError::NotBase58)?;
        // The smallest invite holds a one-byte name; anything shorter cannot be one.
        if bytes.len() < 2 + 1 + 32 + CHECKSUM_BYTES {
            return Err(InviteError::Truncated);
        }
        let (payload, checksum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
        // Checksum first: base58 spreads a cut or a typo over every byte.
        if blake3::hash(payload).as_bytes()[..CHECKSUM_BYTES] != *checksum {
            return Err(InviteError::BadChecksum);
        }
        let (version, name_len) = (payload[0], payload[1] as usize);
        if version != INVITE_VERSION {
            return Err(InviteError::UnsupportedVersion(version));
        }
        if payload.len() != 2 + name_len + 32 {
            return Err(InviteError::Truncated);
        }
        let name = std::str::from_utf8(&payload[2..2 + name_len])
            .map_err(|_| InviteError::BadName(NameError::BadChar('\u{fffd}')))?;
        let name = RoomName::parse(name)?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&payload[2 + name_len..]);
        Ok(Self {
            name,
            key: RoomKey::from_bytes(key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn invite(name: &str, key: [u8; 32]) -> Invite {
        Invite {
            name: RoomName::parse(name).unwrap(),
            key: RoomKey::from_bytes(key),
        }
    }

    #[test]
    fn round_trip_and_clear_errors() {
        let inv = invite("ops", [5; 32]);
        let text = inv.encode();
        assert!(text.starts_with("hark:"));
        assert_eq!(Invite::decode(&format!("  {text}\n")).unwrap(), inv);
        assert_eq!(Invite::decode("ops"), Err(InviteError::MissingPrefix));
        assert_eq!(Invite::decode("hark:0OIl"), Err(InviteError::NotBase58));
        assert_eq!(Invite::decode("hark:"), Err(InviteError::Truncated));
        for cut in 1..text.len() - PREFIX.len() {
            let err = Invite::decode(&text[..text.len() - cut]).unwrap_err();
            assert!(
                matches!(err, InviteError::Truncated | InviteError::BadChecksum),
                "{err}"
            );
        }
        assert_eq!(Invite::decode(&text[..12]), Err(InviteError::Truncated));
        let mut chars: Vec<char> = text.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == '2' { '3' } else { '2' };
        assert_eq!(
            Invite::decode(&chars.into_iter().collect::<String>()),
            Err(InviteError::BadChecksum)
        );
        assert_eq!(
            Invite::decode(&format!("hark:{}", "2".repeat(300))),
            Err(InviteError::TooLong)
        );
    }

    proptest! {
        #[test]
        fn any_invite_round_trips(name in "[a-z0-9_.-]{1,48}", key in any::<[u8; 32]>()) {
            let inv = invite(&name, key);
            prop_assert_eq!(Invite::decode(&inv.encode()).unwrap(), inv);
        }

        #[test]
        fn any_string_is_an_error_not_a_panic(text in "hark:.{0,300}") {
            let _ = Invite::decode(&text);
        }
    }
}
