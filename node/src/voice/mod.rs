//! Push-to-talk voice: Opus frames over the room's voice topic, never stored.
//!
//! - [`codec`]: the Opus encoder and decoder with Hark's settings.
//! - [`opus_ffi`]: the bundled libopus's neural tools, which the `opus` crate does not reach.
//! - [`jitter`]: a talker's jitter buffer (pure, takes `now`).
//! - [`loss`]: the voice loss this node hears, which its talk-spurts plan their FEC for.
//! - [`mixer`]: summing concurrent talkers without wrap-around.
//! - [`wav`]: WAV files in (any rate and channel count) and out (48 kHz mono).
//! - [`sender`]: one talk-spurt from an [`AudioSource`], paced, encoded, handed to the event loop.
//! - [`receiver`]: the playout task: frames in, per-talker buffers, decode, mix, [`AudioSink`],
//!   recordings (`--voice-out`), `voice_start` / `voice_end` events.
//!
//! Devices, WAV files and tests plug in through the two traits below; all audio is 48 kHz mono
//! 16-bit (the TUI resamples a device that runs at another rate).

pub mod codec;
mod finished;
pub mod jitter;
pub mod loss;
pub mod mixer;
pub mod opus_ffi;
pub mod receiver;
pub mod sender;
pub mod wav;

/// What a capture delivered for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Captured {
    /// A full frame.
    Frame,
    /// The last frame of the spurt (the key was released): it is flagged for receivers.
    Last,
    /// Nothing more, not even a last frame.
    Done,
}

/// Where a talk-spurt's audio comes from: a microphone, a WAV file, a test signal.
pub trait AudioSource: Send + 'static {
    /// Fill `frame` (one frame of 48 kHz mono samples) with the next captured audio, blocking
    /// until it has been captured: the source sets the pace.
    fn next_frame(&mut self, frame: &mut [i16]) -> Captured;
}

/// Where received voice goes: a speaker, or a test. Called every 10 ms with 10 ms of the mix
/// (480 samples of 48 kHz mono) while anyone is talking. Must not block.
pub trait AudioSink: Send + 'static {
    fn play(&mut self, samples: &[i16]);
}

/// The frame length used unless configured otherwise, ms.
pub const DEFAULT_FRAME_MS: u8 = 20;
