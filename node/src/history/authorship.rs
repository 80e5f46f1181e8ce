//! Who wrote a message: the author's ed25519 signature over the record (see
//! `hark_proto::record`), made when the message is sent and checked when it arrives from anyone
//! but its author. Pure: keys in, verdicts out.

use std::collections::HashMap;

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

/// Below this many records to check, one thread does it; above, every core takes a share (a
/// catch-up from a relay checks one signature per message, ≈ 42 µs each here).
const PARALLEL_FROM: usize = 256;

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
    let mut keys: HashMap<&[u8], Option<PublicKey>> = HashMap::new();
    for record in records {
        if record.author != straight_from {
            keys.entry(record.author.as_slice())
                .or_insert_with(|| author_key(&record.author));
        }
    }
    let check = |record: &MessageRecord| {
        record.author == straight_from
            || keys
                .get(record.author.as_slice())
                .and_then(Option::as_ref)
                .is_some_and(|key| verifies(record, key, chat_topic))
    };
    let to_check = records.iter().filter(|r| r.author != straight_from).count();
    if to_check < PARALLEL_FROM || !spread {
        return records.iter().map(check).collect();
    }
    let threads = cores();
    if threads < 2 {
        return records.iter().map(check).collect();
    }
    let share = records.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = records
            .chunks(share)
            .map(|part| scope.spawn(move || part.iter().map(check).collect::<Vec<bool>>()))
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

fn verifies(record: &MessageRecord, key: &PublicKey, chat_topic: &str) -> bool {
    key.verify(&record.signed_bytes(chat_topic), &record.signature)
}

/// The public key inside a peer id, when the id inlines it (every ed25519 id does).
fn author_key(author: &[u8]) -> Option<PublicKey> {
    let peer = PeerId::from_bytes(author).ok()?;
    let hash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    if hash.code() != IDENTITY_MULTIHASH {
        return None;
    }
    PublicKey::try_decode_protobuf(hash.digest()).ok()
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
}
