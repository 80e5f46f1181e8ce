//! Size limits. Every decoder checks these before it allocates (SPEC §3).

/// Largest encoded envelope accepted or produced.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;
/// Largest message text, in UTF-8 bytes.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;
/// Largest nick, in UTF-8 bytes.
pub const MAX_NICK_BYTES: usize = 32;
/// Largest room name, in UTF-8 bytes.
pub const MAX_ROOM_NAME_BYTES: usize = 48;
/// Largest author identity (a libp2p peer id in bytes is 38 for ed25519).
pub const MAX_AUTHOR_BYTES: usize = 64;
/// What sealing adds: the 24-byte nonce and the 16-byte tag.
pub const SEAL_OVERHEAD: usize = 24 + 16;
/// Largest sealed payload on a topic.
pub const MAX_SEALED_BYTES: usize = MAX_ENVELOPE_BYTES + SEAL_OVERHEAD;
