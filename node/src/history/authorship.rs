//! Who wrote a message: the author's ed25519 signature over the record (see
//! `hark_proto::record`), made when the message is sent and checked when it arrives from anyone
//! but its author. Pure: keys in, verdicts out.
//!
//! Every check follows one rule, ZIP-215 (`ed25519-zebra`): cofactored verification, under which
//! a signature checked alone (a gossip message) and the same signature checked in a batch (a
//! catch-up of thousands) get the same verdict. libp2p's own `verify` (cofactorless) would not
//! agree with any batch check on crafted signatures, and then two nodes could show different
//! records (docs/security.md, "Record authorship").

use std::collections::HashMap;

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_zebra::{batch, Signature, VerificationKey, VerificationKeyBytes};
use hark_proto::MessageRecord;
use libp2p::identity::{Keypair, PublicKey};
use libp2p::PeerId;

/// The multihash code of an identity hash: ed25519 peer ids hold the public key itself.
const IDENTITY_MULTIHASH: u64 = 0x00;

/// Sign `record` as its author (our own identity).
pub fn sign(record: &mut MessageRecord, keypair: &Keypair, chat_topic: &str) {
    // Signing with an ed25519 key cannot fail; an empty signature would only make the record
    // unverifiable for others, never wrong.
    record.signature = keypair
        .sign(&record.signed_bytes(chat_topic))
        .unwrap_or_default();
}

/// Below this many records to check, one thread does it; above, every core takes a share.
const PARALLEL_FROM: usize = 256;

/// From this many signatures, a thread checks them together in one batch; fewer are checked one
/// by one. Measured (release, one author, one core of this machine): one by one 36 µs each; in
/// batches of 8, 14 µs; of 64, 10 µs; of 512, 8.1 µs; of 16 384, 7.1 µs. A lone gossip message
/// is checked alone.
const BATCH_FROM: usize = 8;

/// Signatures per batch. A batch that fails is checked again one by one, so that exactly the
/// bad records are refused: one bad record costs at most this many single checks more (≈ 18
/// ms), and a peer that puts a bad record in every batch (or sends only bad ones) makes the
/// check ≈ 1.25 times as costly as single checks alone, not more. Bigger batches gain little.
const BATCH_SIZE: usize = 512;

/// Which of `records` may be shown: those that came straight from their author (the peer
/// `straight_from`, authenticated by the transport), and those whose signature verifies. Each
/// author's key is decoded once.
pub fn accepted(records: &[MessageRecord], chat_topic: &str, straight_from: &[u8]) -> Vec<bool> {
    accepted_on(records, chat_topic, straight_from, true)
}

/// [`accepted`], on this thread alone unless `spread` (the caller may already keep every core
/// busy, one shard per core).
pub fn accepted_on(
    records: &[MessageRecord],
    chat_topic: &str,
    straight_from: &[u8],
    spread: bool,
) -> Vec<bool> {
    let mut keys: HashMap<&[u8], Option<VerificationKey>> = HashMap::new();
    for record in records {
        if record.author != straight_from {
            keys.entry(record.author.as_slice())
                .or_insert_with(|| author_key(&record.author));
        }
    }
    let keys = &keys;
    let check = move |part: &[MessageRecord]| check_share(part, keys, chat_topic, straight_from);
    let to_check = records.iter().filter(|r| r.author != straight_from).count();
    let threads = cores();
    if to_check < PARALLEL_FROM || !spread || threads < 2 {
        return check(records);
    }
    let share = records.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = records
            .chunks(share)
            .map(|part| scope.spawn(move || check(part)))
            .collect();
        parts
            .into_iter()
            // A panicking verifier (it cannot, but) rejects its share rather than the node.
            .zip(records.chunks(share))
            .flat_map(|(part, slice)| part.join().unwrap_or_else(|_| vec![false; slice.len()]))
            .collect()
    })
}

/// Cores to check on, read once: asking the OS reads cgroup files, which cost more than a
/// gossip message's whole handling when done for every one.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// One signature waiting for its check.
struct Pending {
    /// Its record's place in the share.
    at: usize,
    key: VerificationKey,
    signature: Signature,
    signed: Vec<u8>,
}

impl Pending {
    /// The single check, which decides every verdict (a batch only says all of its pass).
    fn verifies(&self) -> bool {
        self.key.verify(&self.signature, &self.signed).is_ok()
    }
}

/// The verdicts for one thread's share of the records, in batches of [`BATCH_SIZE`].
fn check_share(
    part: &[MessageRecord],
    keys: &HashMap<&[u8], Option<VerificationKey>>,
    chat_topic: &str,
    straight_from: &[u8],
) -> Vec<bool> {
    let mut verdicts = vec![false; part.len()];
    let mut pending = Vec::with_capacity(BATCH_SIZE.min(part.len()));
    for (at, record) in part.iter().enumerate() {
        if record.author == straight_from {
            verdicts[at] = true;
            continue;
        }
        // No usable key, or not 64 bytes: refused without a check.
        let Some(key) = keys.get(record.author.as_slice()).copied().flatten() else {
            continue;
        };
        let Ok(signature) = Signature::from_slice(&record.signature) else {
            continue;
        };
        let signed = record.signed_bytes(chat_topic);
        pending.push(Pending {
            at,
            key,
            signature,
            signed,
        });
        if pending.len() == BATCH_SIZE {
            settle(&mut pending, &mut verdicts);
        }
    }
    settle(&mut pending, &mut verdicts);
    verdicts
}

/// Give the `pending` signatures their verdicts, and empty it: together when they are enough
/// to gain from a batch and all pass, else one by one.
fn settle(pending: &mut Vec<Pending>, verdicts: &mut [bool]) {
    let all_pass = pending.len() >= BATCH_FROM && {
        let mut batch = batch::Verifier::new();
        for p in pending.iter() {
            batch.queue((VerificationKeyBytes::from(p.key), p.signature, &p.signed));
        }
        // The coefficients must be unpredictable to whoever made the signatures: a thread-local
        // CSPRNG seeded by the OS.
        batch.verify(rand_batch::rng()).is_ok()
    };
    for p in pending.drain(..) {
        verdicts[p.at] = all_pass || p.verifies();
    }
}

/// The ed25519 key inside a peer id, when the id inlines one (every ed25519 id does) and it is
/// not of small order: for such a "weak" key anyone can make signatures that pass, and no
/// honest node has one.
fn author_key(author: &[u8]) -> Option<VerificationKey> {
    let peer = PeerId::from_bytes(author).ok()?;
    let hash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    if hash.code() != IDENTITY_MULTIHASH {
        return None;
    }
    let bytes = PublicKey::try_decode_protobuf(hash.digest())
        .ok()?
        .try_into_ed25519()
        .ok()?
        .to_bytes();
    if CompressedEdwardsY(bytes).decompress()?.is_small_order() {
        return None;
    }
    VerificationKey::try_from(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hark_proto::{Hlc, MessageId, MessageKind};

    /// Whether `record` is signed by the peer it names as author, for the room of `chat_topic`.
    fn is_authentic(record: &MessageRecord, chat_topic: &str) -> bool {
        accepted(std::slice::from_ref(record), chat_topic, b"")[0]
    }

    fn record(author: &Keypair) -> MessageRecord {
        MessageRecord {
            id: MessageId([1; 16]),
            author: author.public().to_peer_id().to_bytes(),
            name: "alice".into(),
            hlc: Hlc::new(1_000, 0),
            kind: MessageKind::Alert,
            text: "fire on deck 2".into(),
            signature: Vec::new(),
        }
    }

    #[test]
    fn only_the_author_signing_for_this_room_is_authentic() {
        let (alice, mallory) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let mut r = record(&alice);
        assert!(!is_authentic(&r, "ops"), "unsigned");
        sign(&mut r, &alice, "ops");
        assert!(is_authentic(&r, "ops"));
        assert!(!is_authentic(&r, "lobby"), "replayed into another room");
        let mut altered = r.clone();
        altered.text = "all clear".into();
        assert!(!is_authentic(&altered, "ops"));
        let mut forged = record(&alice);
        sign(&mut forged, &mallory, "ops");
        assert!(!is_authentic(&forged, "ops"), "signed by someone else");
        let mut garbage = r.clone();
        garbage.author = vec![0xff; 38];
        assert!(!is_authentic(&garbage, "ops"));
        garbage.signature = vec![0; 3];
        assert!(!is_authentic(&garbage, "ops"));
    }

    #[test]
    fn accepted_checks_all_but_the_senders_own_records_on_every_core() {
        let (alice, bob) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let bob_id = bob.public().to_peer_id().to_bytes();
        let mut records = Vec::new();
        for n in 0..600u32 {
            let mut r = record(if n % 2 == 0 { &alice } else { &bob });
            r.text = format!("message {n}");
            // Bob's records are unsigned; alice's signed, but every 7th badly.
            if n % 2 == 0 {
                sign(&mut r, &alice, "ops");
                if n % 7 == 0 {
                    r.text.push('!');
                }
            }
            records.push(r);
        }
        let expected: Vec<bool> = (0..600u32).map(|n| n % 2 == 1 || n % 7 != 0).collect();
        assert_eq!(accepted(&records, "ops", &bob_id), expected);
        let small = &records[..10];
        assert_eq!(accepted(small, "ops", &bob_id), expected[..10].to_vec());
        // From a third peer, bob's unsigned records are refused too.
        let expected: Vec<bool> = (0..600u32).map(|n| n % 2 == 0 && n % 7 != 0).collect();
        assert_eq!(accepted(&records, "ops", b"someone else"), expected);
    }

    /// `n` records by `author`, each with its own text, all validly signed for "ops".
    fn signed_many(author: &Keypair, n: usize) -> Vec<MessageRecord> {
        (0..n)
            .map(|i| {
                let mut r = record(author);
                r.text = format!("message {i}");
                sign(&mut r, author, "ops");
                r
            })
            .collect()
    }

    /// The verdicts on each record of `odd` when checked alone, and when in the middle of 600
    /// valid records (batches), on one thread and on every core: all must agree.
    fn alone_and_in_batches(odd: &[MessageRecord]) -> Vec<[bool; 3]> {
        let alice = Keypair::ed25519_from_bytes([1; 32]).expect("32 bytes make a key");
        let mut records = signed_many(&alice, 600);
        let at = 300;
        records.splice(at..at, odd.iter().cloned());
        let one_thread = accepted_on(&records, "ops", b"", false);
        let every_core = accepted_on(&records, "ops", b"", true);
        let in_batch = |verdicts: &[bool]| {
            assert!(
                verdicts[..at]
                    .iter()
                    .chain(&verdicts[at + odd.len()..])
                    .all(|ok| *ok),
                "the valid records around are all accepted"
            );
            verdicts[at..at + odd.len()].to_vec()
        };
        let (one_thread, every_core) = (in_batch(&one_thread), in_batch(&every_core));
        odd.iter()
            .enumerate()
            .map(|(i, r)| [is_authentic(r, "ops"), one_thread[i], every_core[i]])
            .collect()
    }

    #[test]
    fn a_batch_with_one_altered_or_forged_record_refuses_exactly_that_one() {
        let (alice, mallory) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        for bad in [0, 1, 511, 512, 1023, 2999] {
            let mut records = signed_many(&alice, 3000);
            if bad % 2 == 0 {
                records[bad].text.push('!');
            } else {
                sign(&mut records[bad], &mallory, "ops");
            }
            let expected: Vec<bool> = (0..3000).map(|i| i != bad).collect();
            assert_eq!(accepted_on(&records, "ops", b"", false), expected);
            assert_eq!(accepted_on(&records, "ops", b"", true), expected);
        }
    }

    #[test]
    fn unsigned_and_garbage_signatures_are_refused_in_a_batch() {
        let alice = Keypair::ed25519_from_bytes([1; 32]).expect("32 bytes make a key");
        let valid = signed_many(&alice, 1).remove(0);
        let mut odd = Vec::new();
        for signature in [vec![], vec![0; 3], vec![0; 64], vec![0xff; 64], vec![7; 65]] {
            odd.push(MessageRecord {
                signature,
                ..valid.clone()
            });
        }
        // Another record's signature; this one's, for another room.
        let mut other = valid.clone();
        other.signature = signed_many(&alice, 2).remove(1).signature;
        odd.push(other);
        let mut lobby = valid.clone();
        sign(&mut lobby, &alice, "lobby");
        odd.push(lobby);
        // Authors without a usable key: garbage, and an id that is a hash, not a key.
        odd.push(MessageRecord {
            author: vec![0xff; 38],
            ..valid.clone()
        });
        odd.push(MessageRecord {
            author: PeerId::random().to_bytes(),
            ..valid.clone()
        });
        for verdicts in alone_and_in_batches(&odd) {
            assert_eq!(verdicts, [false; 3]);
        }
    }

    /// The crafted signatures below are made by hand from the secret scalar of a key seeded
    /// with `seed` (as ed25519 derives it), so R and s can be chosen freely.
    mod crafted {
        use super::*;
        use curve25519_dalek::constants::EIGHT_TORSION;
        use curve25519_dalek::edwards::EdwardsPoint;
        use curve25519_dalek::scalar::{clamp_integer, Scalar};
        use sha2::{Digest, Sha512};

        const SEED: [u8; 32] = [1; 32];

        /// ℓ, the order of the base point, little-endian.
        const ORDER: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];

        fn secret() -> (Scalar, [u8; 32]) {
            let expanded: [u8; 64] = Sha512::digest(SEED).into();
            let mut lower = [0; 32];
            lower.copy_from_slice(&expanded[..32]);
            let a = Scalar::from_bytes_mod_order(clamp_integer(lower));
            let public = EdwardsPoint::mul_base(&a).compress().to_bytes();
            (a, public)
        }

        fn hash(parts: &[&[u8]]) -> Scalar {
            let mut h = Sha512::new();
            for part in parts {
                h.update(part);
            }
            Scalar::from_bytes_mod_order_wide(&h.finalize().into())
        }

        /// A record by the key of [`SEED`] with the signature (R bytes, s) that `make` builds
        /// from the secret scalar, the public key and the signed bytes.
        fn record_with(
            make: impl Fn(Scalar, &[u8; 32], &[u8]) -> ([u8; 32], Scalar),
        ) -> MessageRecord {
            let alice = Keypair::ed25519_from_bytes(SEED).expect("32 bytes make a key");
            let (a, public) = secret();
            let raw = alice
                .public()
                .try_into_ed25519()
                .expect("ed25519")
                .to_bytes();
            assert_eq!(public, raw, "the secret scalar is the key's");
            let mut r = record(&alice);
            let (big_r, s) = make(a, &public, &r.signed_bytes("ops"));
            r.signature = [big_r, s.to_bytes()].concat();
            r
        }

        /// Whether libp2p's ed25519 (`ed25519-dalek`'s cofactorless `verify`, what Hark used
        /// before ZIP-215) accepts `record`.
        fn libp2p_accepts(record: &MessageRecord) -> bool {
            let alice = Keypair::ed25519_from_bytes(SEED).expect("32 bytes make a key");
            alice
                .public()
                .verify(&record.signed_bytes("ops"), &record.signature)
        }

        #[test]
        fn an_honest_signature_made_by_hand_passes_everywhere() {
            // The check of the construction itself: R = r·B, s = r + k·a.
            let honest = record_with(|a, public, signed| {
                let r = hash(&[b"nonce", signed]);
                let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
                (big_r, r + hash(&[&big_r, public, signed]) * a)
            });
            assert!(libp2p_accepts(&honest));
            assert_eq!(alone_and_in_batches(&[honest]), vec![[true; 3]]);
        }

        #[test]
        fn a_torsion_tweaked_or_non_canonical_r_gets_one_verdict_alone_and_in_a_batch() {
            // R = r·B + T, T of order 8: the equation holds only up to T, which the cofactored
            // check (ZIP-215) ignores and libp2p's check does not.
            let torsion = record_with(|a, public, signed| {
                let r = hash(&[b"nonce", signed]);
                let big_r = (EdwardsPoint::mul_base(&r) + EIGHT_TORSION[1])
                    .compress()
                    .to_bytes();
                (big_r, r + hash(&[&big_r, public, signed]) * a)
            });
            // R = the identity written as y = p + 1 (not reduced), s = k·a: [s]B - [k]A is the
            // identity, but its canonical encoding differs from R's bytes.
            let non_canonical = record_with(|a, public, signed| {
                let mut big_r = [0xff; 32];
                big_r[0] = 0xee;
                big_r[31] = 0x7f;
                (big_r, hash(&[&big_r, public, signed]) * a)
            });
            for crafted in [&torsion, &non_canonical] {
                assert!(!libp2p_accepts(crafted), "what an older Hark node refuses");
            }
            // Only the key holder can make them: ZIP-215 accepts both, alone and in batches.
            assert_eq!(
                alone_and_in_batches(&[torsion, non_canonical]),
                vec![[true; 3], [true; 3]]
            );
        }

        #[test]
        fn a_non_canonical_s_is_refused_alone_and_in_a_batch() {
            let mut record = record_with(|a, public, signed| {
                let r = hash(&[b"nonce", signed]);
                let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
                (big_r, r + hash(&[&big_r, public, signed]) * a)
            });
            // s + ℓ: the same scalar, not reduced (it still fits in 32 bytes).
            let s: [u8; 32] = record.signature[32..].try_into().expect("64 bytes");
            let mut sum = [0u8; 32];
            let mut carry = 0u16;
            for (i, l) in ORDER.iter().enumerate() {
                let total = u16::from(s[i]) + u16::from(*l) + carry;
                sum[i] = total as u8;
                carry = total >> 8;
            }
            assert_eq!(carry, 0);
            record.signature[32..].copy_from_slice(&sum);
            assert!(!libp2p_accepts(&record));
            assert_eq!(alone_and_in_batches(&[record]), vec![[false; 3]]);
        }

        #[test]
        fn a_weak_author_key_is_refused_though_anyone_can_sign_for_it() {
            // The identity point as a key: with A of small order, R = s·B passes for any message.
            let weak = libp2p::identity::ed25519::PublicKey::try_from_bytes(
                &EdwardsPoint::default().compress().to_bytes(),
            )
            .expect("a point on the curve");
            let weak = PublicKey::from(weak);
            let mut r = record(&Keypair::generate_ed25519());
            r.author = weak.to_peer_id().to_bytes();
            let s = Scalar::from(5u8);
            r.signature = [
                EdwardsPoint::mul_base(&s).compress().to_bytes(),
                s.to_bytes(),
            ]
            .concat();
            assert!(
                weak.verify(&r.signed_bytes("ops"), &r.signature),
                "the forgery"
            );
            assert_eq!(alone_and_in_batches(&[r]), vec![[false; 3]]);
        }
    }
}
