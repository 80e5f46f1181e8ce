//! Sealing payloads under a room key (XChaCha20-Poly1305, random 24-byte nonce).
//!
//! Wire form: `nonce (24) || ciphertext || tag (16)`. The topic string is the associated data,
//! so a payload sealed for one room or channel cannot be replayed onto another.

use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::{CryptoRng, RngCore};
use thiserror::Error;

use crate::limits::{MAX_SEALED_BYTES, SEAL_OVERHEAD};
use crate::room::{RoomKey, Topic};

const NONCE_BYTES: usize = 24;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed payload is {0} bytes, shorter than nonce and tag")]
    TooShort(usize),
    #[error("sealed payload is {0} bytes, over the {MAX_SEALED_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("payload does not open under this room key (wrong key, wrong topic or tampered)")]
    Unauthentic,
}

/// Seal `plaintext` for `topic` under `key`.
pub fn seal<R: RngCore + CryptoRng>(
    key: &RoomKey,
    topic: &Topic,
    plaintext: &[u8],
    rng: &mut R,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_BYTES];
    rng.fill_bytes(&mut nonce);
    let cipher = XChaCha20Poly1305::new(key.as_bytes().into());
    // Encrypted where it will be sent: one copy of the plaintext, not two (a catch-up's sync
    // body is 11 MB).
    let mut sealed = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(plaintext);
    // Encryption with a valid key and in-memory buffers cannot fail.
    let tag = cipher
        .encrypt_in_place_detached(
            XNonce::from_slice(&nonce),
            topic.as_str().as_bytes(),
            &mut sealed[NONCE_BYTES..],
        )
        .expect("XChaCha20-Poly1305 encryption is infallible for in-memory input");
    sealed.extend_from_slice(&tag);
    sealed
}

/// Open a payload sealed by [`seal`]; fails on any truncation, bit flip, wrong key or topic.
/// Gossip payloads are bounded by [`MAX_SEALED_BYTES`].
pub fn open(key: &RoomKey, topic: &Topic, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    open_bounded(key, topic, sealed, MAX_SEALED_BYTES)
}

/// [`open`] with another size bound (history sync bodies are far larger than gossip payloads).
pub fn open_bounded(
    key: &RoomKey,
    topic: &Topic,
    sealed: &[u8],
    max_bytes: usize,
) -> Result<Vec<u8>, SealError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(SealError::TooShort(sealed.len()));
    }
    if sealed.len() > max_bytes {
        return Err(SealError::TooLarge(sealed.len()));
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
    let cipher = XChaCha20Poly1305::new(key.as_bytes().into());
    let payload = Payload {
        msg: ciphertext,
        aad: topic.as_str().as_bytes(),
    };
    cipher
        .decrypt(XNonce::from_slice(nonce), payload)
        .map_err(|_| SealError::Unauthentic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::RoomName;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn lobby() -> RoomKey {
        RoomKey::public(&RoomName::parse("lobby").unwrap())
    }

    #[test]
    fn round_trip_and_wrong_key_or_topic() {
        let mut rng = StdRng::seed_from_u64(1);
        let key = lobby();
        let sealed = seal(&key, &key.chat_topic(), b"hello", &mut rng);
        assert_eq!(open(&key, &key.chat_topic(), &sealed).unwrap(), b"hello");
        assert_eq!(
            open(&key, &key.voice_topic(), &sealed),
            Err(SealError::Unauthentic)
        );
        let other = RoomKey::random(&mut rng);
        assert_eq!(
            open(&other, &key.chat_topic(), &sealed),
            Err(SealError::Unauthentic)
        );
        assert_eq!(
            open(&key, &key.chat_topic(), &[0; 10]),
            Err(SealError::TooShort(10))
        );
    }

    #[test]
    fn the_wire_form_is_nonce_then_ciphertext_and_tag() {
        let key = lobby();
        let topic = key.chat_topic();
        let sealed = seal(&key, &topic, b"same bytes", &mut StdRng::seed_from_u64(7));
        let mut nonce = [0u8; NONCE_BYTES];
        rand::RngCore::fill_bytes(&mut StdRng::seed_from_u64(7), &mut nonce);
        let payload = Payload {
            msg: b"same bytes",
            aad: topic.as_str().as_bytes(),
        };
        let ciphertext = XChaCha20Poly1305::new(key.as_bytes().into())
            .encrypt(XNonce::from_slice(&nonce), payload)
            .unwrap();
        assert_eq!(sealed, [nonce.as_slice(), &ciphertext].concat());
    }

    proptest! {
        #[test]
        fn every_truncation_and_bit_flip_is_rejected(
            msg in proptest::collection::vec(any::<u8>(), 0..300),
            seed in any::<u64>(),
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            let key = lobby();
            let topic = key.chat_topic();
            let sealed = seal(&key, &topic, &msg, &mut rng);
            prop_assert_eq!(open(&key, &topic, &sealed).unwrap(), msg);
            for len in 0..sealed.len() {
                prop_assert!(open(&key, &topic, &sealed[..len]).is_err());
            }
            for bit in 0..sealed.len() * 8 {
                let mut flipped = sealed.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                prop_assert!(open(&key, &topic, &flipped).is_err());
            }
        }
    }
}
