//! Direct messages: a two-member room whose key both members derive from their identity keys,
//! so no invite is needed.
//!
//! Each side turns its Ed25519 identity into X25519 (the secret: the first half of SHA-512 of
//! the seed, clamped — the scalar Ed25519 itself signs with; the other's public key: the
//! Edwards point mapped to its Montgomery u-coordinate, as libsodium's
//! `crypto_sign_ed25519_pk_to_curve25519` does), runs Diffie-Hellman, and derives the room key
//! from the shared secret and both public keys with BLAKE3 `derive_key`. Both sides get the
//! same key; nobody else can. The room's topics derive from that key like any room's, so a
//! DM's topic reveals neither member.

use curve25519_dalek::edwards::CompressedEdwardsY;
use sha2::{Digest, Sha512};
use thiserror::Error;

use crate::room::RoomKey;

/// Domain separation for the DM room key. Changing it moves every DM to a new room.
const DIRECT_CONTEXT: &str = "hark 2026-12 direct message room key v1";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DirectError {
    #[error("the peer's identity key is not a valid Ed25519 public key")]
    BadPublicKey,
    #[error("the peer's identity key is a weak (small-order) key")]
    WeakKey,
}

/// The key of the direct-message room of `my_seed` (our Ed25519 secret seed, 32 bytes) and
/// `their_public` (the other side's Ed25519 public key).
pub fn direct_key(my_seed: &[u8; 32], their_public: &[u8; 32]) -> Result<RoomKey, DirectError> {
    let their_point = CompressedEdwardsY(*their_public)
        .decompress()
        .ok_or(DirectError::BadPublicKey)?;
    if their_point.is_small_order() {
        return Err(DirectError::WeakKey);
    }
    let hash = Sha512::digest(my_seed);
    let mut scalar = [0u8; 32];
    scalar.copy_from_slice(&hash[..32]);
    let shared = their_point.to_montgomery().mul_clamped(scalar);
    let my_public = curve25519_dalek::EdwardsPoint::mul_base_clamped(scalar)
        .compress()
        .to_bytes();
    let (low, high) = if my_public <= *their_public {
        (my_public, *their_public)
    } else {
        (*their_public, my_public)
    };
    let mut hasher = blake3::Hasher::new_derive_key(DIRECT_CONTEXT);
    hasher.update(shared.as_bytes());
    hasher.update(&low);
    hasher.update(&high);
    Ok(RoomKey::from_bytes(*hasher.finalize().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Ed25519 public key of a seed (what a peer id carries).
    fn public(seed: &[u8; 32]) -> [u8; 32] {
        let hash = Sha512::digest(seed);
        let mut scalar = [0u8; 32];
        scalar.copy_from_slice(&hash[..32]);
        curve25519_dalek::EdwardsPoint::mul_base_clamped(scalar)
            .compress()
            .to_bytes()
    }

    #[test]
    fn both_sides_derive_the_same_key_and_a_third_another() {
        let (alice, bob, carol) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let ab = direct_key(&alice, &public(&bob)).unwrap();
        assert_eq!(ab, direct_key(&bob, &public(&alice)).unwrap());
        let ac = direct_key(&alice, &public(&carol)).unwrap();
        assert_ne!(ab, ac);
        assert_ne!(ab, direct_key(&carol, &public(&bob)).unwrap());
        assert_ne!(ab.chat_topic(), ac.chat_topic());
    }

    #[test]
    fn known_answer_from_libsodium() {
        // Computed independently: PyNaCl (libsodium) crypto_sign_ed25519_sk_to_curve25519 and
        // _pk_to_curve25519, crypto_scalarmult, then Python's blake3 derive_key over the
        // shared secret and the sorted public keys. Pins the conversion and the layout.
        let key = direct_key(&[1; 32], &public(&[2; 32])).unwrap();
        assert_eq!(
            hex::encode(key.as_bytes()),
            "efc2593ff58be323e32d1eb2e5d99c77bb6d34f6211c18846f3bcd0fda10617a"
        );
    }

    #[test]
    fn bad_and_weak_keys_are_refused() {
        // Not a point on the curve (y = 2 has no x).
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert_eq!(
            direct_key(&[1; 32], &not_a_point),
            Err(DirectError::BadPublicKey)
        );
        // The identity point (y = 1): small order, it would give an all-zero secret.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(direct_key(&[1; 32], &identity), Err(DirectError::WeakKey));
    }

    #[test]
    fn the_public_key_matches_ed25519() {
        // RFC 8032 test 1: this secret key has this public key.
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        assert_eq!(
            hex::encode(public(&seed)),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }
}
