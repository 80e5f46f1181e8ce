//! One talk-spurt out: read frames from an [`AudioSource`], encode, stamp and hand each one to
//! the event loop (which seals and publishes it). Runs on a blocking thread: the source paces it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hark_proto::VoiceFrame;
use rand::Rng;
use tokio::sync::mpsc;

use super::codec::{fec_loss_percent, frame_samples, EncoderSettings, VoiceEncoder};
use super::loss::LossMeter;
use super::wav::read_48k_mono;
use super::{AudioSource, Captured};

/// What a talk-spurt sends to the event loop.
#[derive(Debug)]
pub enum Outgoing {
    Frame {
        room: String,
        frame: VoiceFrame,
    },
    /// Talk-spurt `talk` (the number it was started with) is over.
    Done {
        room: String,
        frames: u32,
        talk: u64,
    },
    Failed {
        room: String,
        error: String,
        talk: u64,
    },
}

/// Frames between two looks at the loss meter during a spurt (1 s of 20 ms frames).
const LOSS_CHECK_FRAMES: u32 = 50;

/// How this node talks.
#[derive(Clone, Debug)]
pub struct TalkSettings {
    /// 10 or 20.
    pub frame_ms: u8,
    /// Opus bitrate, bit/s.
    pub bitrate: i32,
    /// The loss heard lately, which the FEC is planned for.
    pub loss: LossMeter,
}

impl TalkSettings {
    /// The encoder's settings for what the loss meter says now.
    pub fn encoder(&self) -> EncoderSettings {
        EncoderSettings::lan(self.bitrate, fec_loss_percent(self.loss.percent()))
    }
}

/// Start talk-spurt number `talk` in `room` from `source` on a blocking thread; its end is
/// reported under that number.
pub fn spawn(
    room: String,
    source: Box<dyn AudioSource>,
    settings: TalkSettings,
    out: mpsc::Sender<Outgoing>,
    talk: u64,
) {
    tokio::task::spawn_blocking(move || {
        // Its end is always reported, or a client waiting for it would wait for good.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            talk_from(&room, source, &settings, &out)
        }))
        .unwrap_or_else(|_| Err("the talk-spurt stopped on an internal error".to_owned()));
        let message = match result {
            Ok(frames) => Outgoing::Done { room, frames, talk },
            Err(error) => Outgoing::Failed { room, error, talk },
        };
        let _ = out.blocking_send(message);
    });
}

fn talk_from(
    room: &str,
    mut source: Box<dyn AudioSource>,
    settings: &TalkSettings,
    out: &mpsc::Sender<Outgoing>,
) -> Result<u32, String> {
    let frame_ms = settings.frame_ms;
    let mut encoder =
        VoiceEncoder::with_settings(frame_ms, settings.encoder()).map_err(|e| e.to_string())?;
    let mut rng = rand::thread_rng();
    let spurt: u32 = rng.gen();
    let mut seq: u16 = rng.gen();
    let mut pcm = vec![0i16; frame_samples(frame_ms)];
    let mut frames = 0u32;
    loop {
        let captured = source.next_frame(&mut pcm);
        if captured == Captured::Done {
            // The source ended without a last frame: send a short silence flagged last, so
            // receivers end the spurt now rather than by timeout.
            pcm.fill(0);
        }
        let opus = encoder.encode(&pcm).map_err(|e| e.to_string())?;
        let frame = VoiceFrame {
            spurt,
            seq,
            captured_ms: crate::clock::wall_ms(),
            frame_ms,
            last: captured != Captured::Frame,
            opus,
        };
        if out
            .blocking_send(Outgoing::Frame {
                room: room.to_owned(),
                frame,
            })
            .is_err()
        {
            return Err("the node stopped".into());
        }
        frames += 1;
        seq = seq.wrapping_add(1);
        if frames.is_multiple_of(LOSS_CHECK_FRAMES) {
            // Someone else's spurt may have ended meanwhile and told us more about the network.
            let planned = fec_loss_percent(settings.loss.percent());
            encoder
                .set_loss_percent(planned)
                .map_err(|e| e.to_string())?;
        }
        if captured != Captured::Frame {
            return Ok(frames);
        }
    }
}

/// A WAV file played as if spoken into a microphone: one frame per frame length, in real time.
pub struct WavSource {
    samples: Vec<i16>,
    position: usize,
    started: Option<Instant>,
    frames: u32,
    frame_ms: u8,
}

impl WavSource {
    pub fn open(path: &std::path::Path, frame_ms: u8) -> Result<Self, String> {
        let samples = read_48k_mono(path).map_err(|e| e.to_string())?;
        if samples.is_empty() {
            return Err(format!("{} holds no audio", path.display()));
        }
        Ok(Self::from_samples(samples, frame_ms))
    }

    pub fn from_samples(samples: Vec<i16>, frame_ms: u8) -> Self {
        Self {
            samples,
            position: 0,
            started: None,
            frames: 0,
            frame_ms,
        }
    }
}

impl AudioSource for WavSource {
    fn next_frame(&mut self, frame: &mut [i16]) -> Captured {
        if self.position >= self.samples.len() {
            return Captured::Done;
        }
        // A frame is "captured" when its last sample would have been spoken.
        let started = *self.started.get_or_insert_with(Instant::now);
        self.frames += 1;
        let due = started + Duration::from_millis(self.frames as u64 * self.frame_ms as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let end = (self.position + frame.len()).min(self.samples.len());
        let n = end - self.position;
        frame[..n].copy_from_slice(&self.samples[self.position..end]);
        frame[n..].fill(0);
        self.position = end;
        if self.position >= self.samples.len() {
            Captured::Last
        } else {
            Captured::Frame
        }
    }
}

/// Start talk-spurt number `talk` from a WAV file; a file that cannot be read fails it.
pub fn spawn_wav(
    room: String,
    path: PathBuf,
    settings: TalkSettings,
    out: mpsc::Sender<Outgoing>,
    talk: u64,
) {
    tokio::task::spawn_blocking(move || match WavSource::open(&path, settings.frame_ms) {
        Ok(source) => spawn(room, Box::new(source), settings, out, talk),
        Err(error) => {
            let _ = out.blocking_send(Outgoing::Failed { room, error, talk });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wav_source_gives_whole_frames_and_flags_the_last() {
        let mut source = WavSource::from_samples(vec![7; 960 * 2 + 100], 20);
        let mut frame = vec![0i16; 960];
        let started = Instant::now();
        assert_eq!(source.next_frame(&mut frame), Captured::Frame);
        assert_eq!(source.next_frame(&mut frame), Captured::Frame);
        assert_eq!(source.next_frame(&mut frame), Captured::Last);
        assert_eq!(&frame[..100], &[7; 100]);
        assert!(
            frame[100..].iter().all(|&s| s == 0),
            "the tail is padded with silence"
        );
        assert_eq!(source.next_frame(&mut frame), Captured::Done);
        assert!(
            started.elapsed() >= Duration::from_millis(60),
            "paced in real time"
        );
    }
}
