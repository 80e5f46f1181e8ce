//! Invite strings: a private room's name and key, to be shared out of band.
//!
//! Form: `hark:` followed by base58 of
//! `version (1) || name length (1) || name || key (32) || checksum (4)`, where the checksum is
//! the first four bytes of BLAKE3 over everything before it, so a mangled paste is caught.
//!
//! Version 2 adds the room's [`Charter`] after the key (the room can take members back, see
//! `membership.rs`): `epoch (16) || epoch number (4, BE) || owner length (1) || owner ||
//! admin count (1) || (length (1) || admin)*`. A v2 reader takes v1 invites (no charter).

use thiserror::Error;

use crate::membership::{Charter, EpochId, PeerBytes};
use crate::room::{NameError, RoomKey, RoomName};

const PREFIX: &str = "hark:";
const INVITE_VERSION: u8 = 1;
const CHARTER_VERSION: u8 = 2;
const CHECKSUM_BYTES: usize = 4;
/// Admins an invite names besides the owner (the rest learn of later ones by sync).
pub const MAX_CHARTER_ADMINS: usize = 8;
/// Bounds the base58 decoder's work on hostile input (a v1 invite is ≈ 120 characters, a v2
/// one with a full charter ≈ 500).
const MAX_INVITE_CHARS: usize = 1024;

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

    /// A version-2 invite: this room's name and key, and the charter a joiner starts from.
    pub fn encode_with(&self, charter: &Charter) -> String {
        let name = self.name.as_str().as_bytes();
        let mut bytes = vec![CHARTER_VERSION, name.len() as u8];
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(self.key.as_bytes());
        bytes.extend_from_slice(&charter.epoch.0);
        bytes.extend_from_slice(&charter.number.to_be_bytes());
        let owner = &charter.owner.0[..charter.owner.0.len().min(255)];
        bytes.push(owner.len() as u8);
        bytes.extend_from_slice(owner);
        let admins = &charter.admins[..charter.admins.len().min(MAX_CHARTER_ADMINS)];
        bytes.push(admins.len() as u8);
        for admin in admins {
            let admin = &admin.0[..admin.0.len().min(255)];
            bytes.push(admin.len() as u8);
            bytes.extend_from_slice(admin);
        }
        let checksum = blake3::hash(&bytes);
        bytes.extend_from_slice(&checksum.as_bytes()[..CHECKSUM_BYTES]);
        format!("{PREFIX}{}", bs58::encode(bytes).into_string())
    }

    pub fn decode(text: &str) -> Result<Self, InviteError> {
        Self::decode_with_charter(text).map(|(invite, _)| invite)
    }

    /// Decode an invite of either version; a version-2 one comes with its charter.
    pub fn decode_with_charter(text: &str) -> Result<(Self, Option<Charter>), InviteError> {
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
        if version != INVITE_VERSION && version != CHARTER_VERSION {
            return Err(InviteError::UnsupportedVersion(version));
        }
        if payload.len() < 2 + name_len + 32
            || (version == INVITE_VERSION && payload.len() != 2 + name_len + 32)
        {
            return Err(InviteError::Truncated);
        }
        let name = std::str::from_utf8(&payload[2..2 + name_len])
            .map_err(|_| InviteError::BadName(NameError::BadChar('\u{fffd}')))?;
        let name = RoomName::parse(name)?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&payload[2 + name_len..2 + name_len + 32]);
        let charter = match version {
            INVITE_VERSION => None,
            _ => Some(decode_charter(&payload[2 + name_len + 32..])?),
        };
        let invite = Self {
            name,
            key: RoomKey::from_bytes(key),
        };
        Ok((invite, charter))
    }
}

/// The charter after a v2 invite's key; every length is checked before it is used.
fn decode_charter(mut rest: &[u8]) -> Result<Charter, InviteError> {
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], InviteError> {
        if rest.len() < n {
            return Err(InviteError::Truncated);
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head)
    }
    let mut epoch = [0u8; 16];
    epoch.copy_from_slice(take(&mut rest, 16)?);
    let mut number = [0u8; 4];
    number.copy_from_slice(take(&mut rest, 4)?);
    let owner_len = take(&mut rest, 1)?[0] as usize;
    let owner = take(&mut rest, owner_len)?.to_vec();
    let count = take(&mut rest, 1)?[0] as usize;
    let mut admins = Vec::with_capacity(count.min(MAX_CHARTER_ADMINS));
    for _ in 0..count {
        let len = take(&mut rest, 1)?[0] as usize;
        admins.push(PeerBytes(take(&mut rest, len)?.to_vec()));
    }
    if !rest.is_empty() || owner.is_empty() {
        return Err(InviteError::Truncated);
    }
    Ok(Charter {
        owner: PeerBytes(owner),
        admins,
        epoch: EpochId(epoch),
        number: u32::from_be_bytes(number),
    })
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
            Invite::decode(&format!("hark:{}", "2".repeat(1100))),
            Err(InviteError::TooLong)
        );
    }

    #[test]
    fn a_charter_rides_in_a_version_2_invite() {
        let inv = invite("ops", [5; 32]);
        let charter = Charter {
            owner: PeerBytes(vec![1; 38]),
            admins: vec![PeerBytes(vec![2; 38]), PeerBytes(vec![3; 38])],
            epoch: EpochId([9; 16]),
            number: 3,
        };
        let text = inv.encode_with(&charter);
        assert_eq!(
            Invite::decode_with_charter(&text).unwrap(),
            (inv.clone(), Some(charter))
        );
        assert_eq!(Invite::decode(&text).unwrap(), inv);
        assert_eq!(
            Invite::decode_with_charter(&inv.encode()).unwrap(),
            (inv, None)
        );
        for cut in 1..text.len() - PREFIX.len() {
            assert!(Invite::decode(&text[..text.len() - cut]).is_err());
        }
    }

    proptest! {
        #[test]
        fn any_invite_round_trips(name in "[a-z0-9_.-]{1,48}", key in any::<[u8; 32]>()) {
            let inv = invite(&name, key);
            prop_assert_eq!(Invite::decode(&inv.encode()).unwrap(), inv);
        }

        #[test]
        fn any_string_is_an_error_not_a_panic(text in "hark:.{0,1100}") {
            let _ = Invite::decode(&text);
        }
    }
}
