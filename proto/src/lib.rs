//! # hark-proto — what travels between Hark nodes
//!
//! Pure data and crypto: no IO, no async, no libp2p. Everything a node puts on the wire is
//! defined here, so the format can be read (and fuzzed) in one place.
//!
//! - [`limits`]: the size limits every decoder enforces before it allocates.
//! - [`room`]: room names and room keys. Public rooms derive their key from the name, private
//!   rooms draw a random one; gossipsub topics derive from the key, never from the plain name.
//! - [`seal`]: XChaCha20-Poly1305 sealing of a payload under a room key, bound to its topic.
//! - [`envelope`]: the versioned envelope (a history change, typing, presence) and its codec.
//! - [`hlc`]: the hybrid logical clock that orders every room's history the same on every node.
//! - [`record`]: one stored chat message, the value kept in a room's Automerge document.
//! - [`sync`]: the body of a `/hark/sync/1` exchange (shard digests, Automerge sync messages).
//! - [`voice`]: one push-to-talk Opus frame on a room's voice topic.
//! - [`invite`]: invite strings that carry a private room's name and key out of band.
//! - [`safety`]: safety numbers two people compare to verify each other's identity key.
//! - [`direct`]: the key of a direct-message room, from the two identity keys (X25519).
//! - [`blind`]: `/hark/blind/1`, sealed envelopes kept and handed on by relays without the key.
//! - [`membership`]: owner, admins, kicks and key epochs of a private room (pure rules).
//! - [`mention`]: whether a chat line names someone (the UI's highlight, the hooks' `mention`).
//!
//! The flow of one chat line: the node builds an [`Envelope`], [`Envelope::encode`]s it,
//! [`seal::seal`]s the bytes under the room's [`RoomKey`] with the room's chat topic as
//! associated data, and publishes the result on that topic. A receiver runs the same steps in
//! reverse: [`seal::open`], then [`Envelope::decode`], which checks version and limits.

pub mod blind;
pub mod direct;
pub mod envelope;
pub mod hlc;
pub mod invite;
pub mod limits;
pub mod membership;
pub mod mention;
pub mod record;
pub mod room;
pub mod safety;
pub mod seal;
pub mod sync;
pub mod voice;

pub use envelope::{Body, DecodeError, Envelope, MessageId, ENVELOPE_VERSION};
pub use hlc::{Hlc, HlcClock};
pub use invite::{Invite, InviteError};
pub use record::{MessageKind, MessageRecord, RecordError};
pub use room::{NameError, RoomKey, RoomName, Topic};
pub use safety::SafetyNumber;
pub use seal::SealError;
pub use voice::VoiceFrame;
