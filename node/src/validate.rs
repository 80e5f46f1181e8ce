//! The verdict on one gossip message. Pure: the event loop feeds it and reports the verdict to
//! gossipsub, which forwards accepted messages and lowers the score of peers that send rejected
//! ones (so a hostile peer is soon ignored).

use std::collections::{HashSet, VecDeque};

use hark_proto::voice::VoiceDecodeError;
use hark_proto::{seal, DecodeError, Envelope, MessageId, VoiceFrame};

use crate::rooms::Room;

/// Why a message was not accepted. Used for counters and log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Drop {
    /// Not signed, or a source that is not a valid peer id (strict signing should stop these).
    Unsigned,
    /// Does not open under the room key: garbage, a wrong key or tampering.
    Unauthentic,
    /// Opens, but is not a valid envelope.
    Malformed,
    /// Over a size limit.
    Oversized,
    /// Envelope author differs from the signed gossip source.
    ForgedAuthor,
    /// An envelope id we have seen already.
    Replayed,
    /// A newer envelope version: ignored without penalty, since a newer honest node sends it.
    NewerVersion,
    /// Valid, but we could not keep up (the voice playout queue was full). Not penalised.
    Overloaded,
}

impl Drop {
    pub fn as_str(self) -> &'static str {
        match self {
            Drop::Unsigned => "unsigned",
            Drop::Unauthentic => "unauthentic",
            Drop::Malformed => "malformed",
            Drop::Oversized => "oversized",
            Drop::ForgedAuthor => "forged author",
            Drop::Replayed => "replayed",
            Drop::NewerVersion => "newer version",
            Drop::Overloaded => "overloaded",
        }
    }

    /// Whether the sender should be penalised. A newer version is not the sender's fault.
    pub fn penalise(self) -> bool {
        !matches!(self, Drop::NewerVersion | Drop::Overloaded)
    }
}

/// Ids of recent envelopes, to drop replays. Bounded: the oldest ids are forgotten first.
pub struct SeenIds {
    set: HashSet<MessageId>,
    order: VecDeque<MessageId>,
    capacity: usize,
}

impl SeenIds {
    pub fn new(capacity: usize) -> Self {
        Self {
            set: HashSet::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Record `id`; false when it was already there.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    pub fn insert(&mut self, id: MessageId) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        true
    }
}

/// Open, decode and check one payload received on `room`'s chat topic from signed `source`
/// (the source's peer id bytes).
pub fn check(
    room: &Room,
    source: Option<&[u8]>,
    data: &[u8],
    seen: &mut SeenIds,
) -> Result<Envelope, Drop> {
    let source = source.ok_or(Drop::Unsigned)?;
    let envelope = open_chat(room, data)?;
    if envelope.author != source {
        return Err(Drop::ForgedAuthor);
    }
    if !seen.insert(envelope.id) {
        return Err(Drop::Replayed);
    }
    Ok(envelope)
}

/// Open and decode a payload sealed on `room`'s chat topic, from whoever handed it over (gossip,
/// or a blind relay): who wrote it and whether it was seen are the caller's checks.
pub fn open_chat(room: &Room, data: &[u8]) -> Result<Envelope, Drop> {
    let plain = seal::open(&room.key, &room.chat_topic, data).map_err(|e| match e {
        hark_proto::SealError::TooLarge(_) => Drop::Oversized,
        _ => Drop::Unauthentic,
    })?;
    Envelope::decode(&plain).map_err(|e| match e {
        DecodeError::TooLarge(_) | DecodeError::Limit(_) => Drop::Oversized,
        DecodeError::UnsupportedVersion(v) if v > hark_proto::ENVELOPE_VERSION => {
            Drop::NewerVersion
        }
        _ => Drop::Malformed,
    })
}

/// Open and decode one payload received on `room`'s voice topic from signed `source`.
/// Duplicates are the jitter buffer's business; voice has no replay filter here.
pub fn check_voice(room: &Room, source: Option<&[u8]>, data: &[u8]) -> Result<VoiceFrame, Drop> {
    source.ok_or(Drop::Unsigned)?;
    let plain = seal::open(&room.key, &room.voice_topic, data).map_err(|e| match e {
        hark_proto::SealError::TooLarge(_) => Drop::Oversized,
        _ => Drop::Unauthentic,
    })?;
    VoiceFrame::decode(&plain).map_err(|e| match e {
        VoiceDecodeError::Limit(_) => Drop::Oversized,
        VoiceDecodeError::UnsupportedVersion(v) if v > hark_proto::voice::VOICE_VERSION => {
            Drop::NewerVersion
        }
        _ => Drop::Malformed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hark_proto::{Body, RoomKey, RoomName};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn lobby() -> Room {
        Room::public(RoomName::parse("lobby").unwrap())
    }

    fn sealed(room: &Room, key: &RoomKey, author: &[u8], id: u8) -> Vec<u8> {
        let env = Envelope {
            author: author.to_vec(),
            name: "alice".into(),
            id: MessageId([id; 16]),
            sent_at_ms: 1,
            body: Body::Presence,
        };
        seal::seal(
            key,
            &room.chat_topic,
            &env.encode().unwrap(),
            &mut StdRng::seed_from_u64(id as u64),
        )
    }

    #[test]
    fn honest_forged_replayed_and_foreign_messages() {
        let room = lobby();
        let mut seen = SeenIds::new(8);
        let alice = [1u8; 38];
        let good = sealed(&room, &room.key, &alice, 1);
        assert!(check(&room, Some(&alice), &good, &mut seen).is_ok());
        assert_eq!(
            check(&room, Some(&alice), &good, &mut seen),
            Err(Drop::Replayed)
        );
        assert_eq!(check(&room, None, &good, &mut seen), Err(Drop::Unsigned));
        let forged = sealed(&room, &room.key, &alice, 2);
        assert_eq!(
            check(&room, Some(&[2u8; 38]), &forged, &mut seen),
            Err(Drop::ForgedAuthor)
        );
        let foreign = sealed(&room, &RoomKey::from_bytes([9; 32]), &alice, 3);
        assert_eq!(
            check(&room, Some(&alice), &foreign, &mut seen),
            Err(Drop::Unauthentic)
        );
        assert_eq!(
            check(&room, Some(&alice), b"garbage", &mut seen),
            Err(Drop::Unauthentic)
        );
        let huge = vec![0u8; 200 * 1024];
        assert_eq!(
            check(&room, Some(&alice), &huge, &mut seen),
            Err(Drop::Oversized)
        );
    }

    #[test]
    fn newer_versions_are_dropped_without_penalty() {
        let room = lobby();
        let mut plain = Envelope {
            author: vec![1; 38],
            name: "bob".into(),
            id: MessageId([4; 16]),
            sent_at_ms: 1,
            body: Body::Typing,
        }
        .encode()
        .unwrap();
        plain[0] = 9;
        let data = seal::seal(
            &room.key,
            &room.chat_topic,
            &plain,
            &mut StdRng::seed_from_u64(4),
        );
        let drop = check(&room, Some(&[1; 38]), &data, &mut SeenIds::new(4)).unwrap_err();
        assert_eq!(drop, Drop::NewerVersion);
        assert!(!drop.penalise());
    }

    #[test]
    fn seen_ids_are_bounded() {
        let mut seen = SeenIds::new(2);
        assert!(seen.insert(MessageId([1; 16])));
        assert!(seen.insert(MessageId([2; 16])));
        assert!(seen.insert(MessageId([3; 16])));
        assert_eq!(seen.set.len(), 2);
        assert!(
            seen.insert(MessageId([1; 16])),
            "the oldest id was forgotten"
        );
    }
}
