//! Seeding a node's data dir with room history through the node library, for benchmarks that
//! need 100k stored messages: sending them over JSON would cost one fsync each.
//!
//! The history written here is what a node would have written itself: one Automerge change
//! per message, made by the message's author (the change's actor), in the shard of the
//! message's UTC day; each shard stored as one saved document plus its messages in the index.
//! All seeded messages have one author, the data dir's own identity (a bot that wrote them),
//! because a change only counts as a message when its actor is the record's author, and the
//! shard API makes changes with one actor per document.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hark_node::history::{authorship, Shard};
use hark_node::store::{Store, StoredMessage};
use hark_proto::{Hlc, MessageId, MessageKind, MessageRecord, RoomKey, RoomName};
use libp2p::PeerId;

const DAY_MS: u64 = 86_400_000;

/// What [`seed_public_room`] wrote.
#[derive(Clone, Debug)]
pub struct Seeded {
    /// The data dir's identity, the author of every seeded message.
    pub peer_id: String,
    pub messages: usize,
    pub shards: usize,
    /// Total size of the saved shard documents written to `history_chunks`.
    pub chunk_bytes: u64,
    /// Ids in history order (HLC, then id): the first and the last.
    pub first_id: String,
    pub last_id: String,
    pub elapsed: Duration,
}

/// The store key of a public room's history: its chat topic.
pub fn public_room_topic(room: &str) -> Result<String> {
    let name = RoomName::parse(room).context("room name")?;
    Ok(RoomKey::public(&name).chat_topic().as_str().to_owned())
}

/// Write `count` messages into the public room `room` of the data dir `dir` (created if needed),
/// `per_day` messages to each UTC day, the last day being yesterday; within a day the messages
/// are spread evenly. Each message carries about 60 characters of text. The author is the data
/// dir's own identity, or with `foreign_author` another peer (one that has since gone: whoever
/// catches up from this node then checks every record's signature).
pub fn seed_public_room(
    dir: &Path,
    room: &str,
    count: usize,
    per_day: usize,
    foreign_author: bool,
) -> Result<Seeded> {
    let started = Instant::now();
    let per_day = per_day.max(1);
    let topic = public_room_topic(room)?;
    let mut store = Store::open(dir).context("open the store to seed")?;
    let own = store.identity().context("identity")?;
    let keypair = if foreign_author {
        libp2p::identity::Keypair::generate_ed25519()
    } else {
        own
    };
    let peer = keypair.public().to_peer_id();
    let author = peer.to_bytes();
    let author_b58 = PeerId::to_string(&peer);

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let days = count.div_ceil(per_day) as u64;
    let first_day = now_ms / DAY_MS - days;
    let spacing = DAY_MS / per_day as u64;
    let mut rng = rand::thread_rng();

    let mut seeded = Seeded {
        peer_id: author_b58.clone(),
        messages: 0,
        shards: 0,
        chunk_bytes: 0,
        first_id: String::new(),
        last_id: String::new(),
        elapsed: Duration::ZERO,
    };
    let mut written = 0usize;
    for day in 0..days {
        let in_day = per_day.min(count - written);
        let day_ms = (first_day + day) * DAY_MS;
        let mut shard = Shard::new(&author);
        let mut stored = Vec::with_capacity(in_day);
        for i in 0..in_day {
            let n = written + i;
            let mut record = MessageRecord {
                id: MessageId::random(&mut rng),
                author: author.clone(),
                name: "bot".into(),
                hlc: Hlc::new(day_ms + i as u64 * spacing, 0),
                kind: MessageKind::Text,
                text: format!("seeded message {n:06}: the quick brown fox jumps over the dog"),
                signature: Vec::new(),
            };
            authorship::sign(&mut record, &keypair, &topic);
            shard
                .add_local(&record)
                .map_err(|e| anyhow::anyhow!("seeding message {n}: {e}"))?;
            if n == 0 {
                seeded.first_id = record.id.to_hex();
            }
            if n + 1 == count {
                seeded.last_id = record.id.to_hex();
            }
            stored.push(StoredMessage {
                id: record.id,
                hlc: record.hlc,
                author: author_b58.clone(),
                name: record.name,
                kind: record.kind,
                text: record.text,
            });
        }
        let saved = shard.save();
        let shard_id = Hlc::new(day_ms, 0).day();
        store
            .append_history(&topic, shard_id, &saved, &stored)
            .context("store a seeded shard")?;
        seeded.chunk_bytes += saved.len() as u64;
        seeded.shards += 1;
        written += in_day;
    }
    seeded.messages = written;
    seeded.elapsed = started.elapsed();
    Ok(seeded)
}

/// What a data dir holds for a public room: (messages in the index, total chunk bytes, chunks).
/// Opens the store, so the node using `dir` must have stopped.
pub fn stored_history(dir: &Path, room: &str) -> Result<(u64, u64, usize)> {
    let topic = public_room_topic(room)?;
    let store = Store::open(dir).context("open the store to read")?;
    let messages = store.message_count(&topic)?;
    let mut bytes = 0u64;
    let mut chunks = 0usize;
    for (_, shard_chunks) in store.history_chunks(&topic)? {
        chunks += shard_chunks.len();
        bytes += shard_chunks.iter().map(|c| c.len() as u64).sum::<u64>();
    }
    Ok((messages, bytes, chunks))
}
