//! Who wrote a message: the author's ed25519 signature over the record (see
//! `hark_proto::record`), made when the message is sent and checked when it arrives from anyone
//! but its author. Pure: keys in, verdicts out.

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

/// Whether `record` is signed by the peer it names as author, for the room of `chat_topic`.
pub fn is_authentic(record: &MessageRecord, chat_topic: &str) -> bool {
    author_key(&record.author)
        .is_some_and(|key| key.verify(&record.signed_bytes(chat_topic), &record.signature))
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
}
