//! The playout task: voice frames in, sound and events out.
//!
//! Every 10 ms it pulls 10 ms of audio from each active talker (their jitter buffer decides:
//! frame, FEC recovery, concealment, or end), mixes the talkers that are not muted and hands the
//! mix to the [`AudioSink`], if any. Each talker's spurt is also kept (at most 10 minutes) and,
//! with `--voice-out DIR`, written as a WAV file when it ends. `voice_start` goes out when a
//! spurt's first frame arrives, `voice_end` when it has been played out.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use hark_proto::VoiceFrame;
use libp2p::PeerId;
use tokio::sync::mpsc;

use super::codec::{
    frame_samples, CodecError, DecoderSettings, Repair, VoiceDecoder, DRED_DURATION_10MS,
    SAMPLES_PER_MS,
};
use super::finished::{Finished, Verdict};
use super::jitter::{JitterBuffer, JitterEstimate, Playout, SpurtStats};
use super::loss::LossMeter;
use super::mixer;
use super::wav::{write_48k_mono, MAX_SAMPLES};
use super::AudioSink;
use crate::api::{short_id, Event};

pub const TICK_MS: u64 = 10;
pub const TICK_SAMPLES: usize = TICK_MS as usize * SAMPLES_PER_MS;
/// Concurrent talkers played at once; more are dropped (a hostile flood of spurt ids).
const MAX_TALKERS: usize = 32;

pub enum ReceiverInput {
    Frame {
        room: String,
        from: PeerId,
        name: String,
        frame: VoiceFrame,
    },
    SetSink(Box<dyn AudioSink>),
    Mute {
        peer: PeerId,
        muted: bool,
    },
}

struct Talker {
    room: String,
    from: PeerId,
    name: String,
    spurt: u32,
    /// Which part of the spurt this is: the talker was held up past the end timeout `part`
    /// times (see [`Finished`]).
    part: u32,
    player: SpurtPlayer,
}

/// One talker's spurt from frames to audio: the jitter buffer, the decoder and its repairs,
/// the audio waiting to be mixed and the recording. The caller passes the time in: the playout
/// task its wall clock, the quality benchmark a virtual one, so both run this same code.
pub struct SpurtPlayer {
    frame_ms: u8,
    buffer: JitterBuffer,
    decoder: VoiceDecoder,
    /// Decoded audio waiting to be mixed.
    pending: VecDeque<i16>,
    /// The whole spurt, for `--voice-out` (at most [`MAX_SAMPLES`]).
    recording: Vec<i16>,
    /// Set when the jitter buffer said the spurt is over (with the slots to trim); the talker
    /// finishes once its last audio has been mixed.
    ended: Option<u32>,
}

impl SpurtPlayer {
    /// A spurt of `frame_ms` frames, played `target_ms` after its first frame arrives.
    pub fn new(
        frame_ms: u8,
        target_ms: u64,
        settings: DecoderSettings,
    ) -> Result<Self, CodecError> {
        // Deep redundancy reaches back DRED_DURATION_10MS × 10 ms from any later packet.
        let reach = if settings.dred {
            (DRED_DURATION_10MS as u32 * 10 / u32::from(frame_ms.max(1))).max(1)
        } else {
            1
        };
        Ok(Self {
            frame_ms,
            buffer: JitterBuffer::with_reach(target_ms, reach),
            decoder: VoiceDecoder::with_settings(settings)?,
            pending: VecDeque::new(),
            recording: Vec::new(),
            ended: None,
        })
    }

    pub fn frame_ms(&self) -> u8 {
        self.frame_ms
    }

    /// A frame arrived at `now`.
    pub fn push(&mut self, frame: VoiceFrame, now: u64) {
        if frame.frame_ms == self.frame_ms {
            self.buffer
                .push(frame.seq, frame.captured_ms, frame.last, frame.opus, now);
        }
    }

    /// Decode until 10 ms of audio wait to be mixed (or the buffer has nothing yet). Returns
    /// `Some(trim)` once the spurt has ended, with the trailing slots of concealment to trim
    /// from the recording.
    pub fn pull(&mut self, now: u64) -> Option<u32> {
        if self.ended.is_some() {
            return self.ended;
        }
        let frame_len = frame_samples(self.frame_ms);
        let mut pcm = vec![0i16; frame_len];
        while self.pending.len() < TICK_SAMPLES {
            match self.buffer.pop(now) {
                Playout::Wait => return None,
                Playout::Frame(packet) => {
                    self.decoder.decode(&packet, &mut pcm);
                }
                Playout::Recover { packet, ahead } => {
                    if self.decoder.recover(&packet, ahead, &mut pcm) == Repair::Concealed {
                        self.buffer.recovery_failed();
                    }
                }
                Playout::Conceal => self.decoder.conceal(&mut pcm),
                Playout::End { trim } => {
                    self.ended = Some(trim);
                    return self.ended;
                }
            }
            self.pending.extend(pcm.iter().copied());
            if self.recording.len() < MAX_SAMPLES {
                self.recording.extend_from_slice(&pcm);
            }
        }
        None
    }

    /// Up to `n` samples of decoded audio, oldest first.
    pub fn take(&mut self, n: usize) -> Vec<i16> {
        let take = self.pending.len().min(n);
        self.pending.drain(..take).collect()
    }

    /// Whether all decoded audio has been taken.
    pub fn is_drained(&self) -> bool {
        self.pending.is_empty()
    }

    /// Whether the spurt ended and all its audio has been taken: `Some(trim)` then.
    pub fn finished(&self) -> Option<u32> {
        self.ended.filter(|_| self.pending.is_empty())
    }

    pub fn stats(&self) -> &SpurtStats {
        &self.buffer.stats
    }

    /// The newest sequence number taken in, if any.
    pub fn newest_seq(&self) -> Option<u16> {
        self.buffer.newest_seq()
    }

    /// The spurt as played, without `trim` trailing slots of concealment.
    pub fn into_recording(mut self, trim: u32) -> Vec<i16> {
        let keep = self
            .recording
            .len()
            .saturating_sub(trim as usize * frame_samples(self.frame_ms));
        self.recording.truncate(keep);
        self.recording
    }
}

pub struct Receiver {
    talkers: HashMap<(String, PeerId), Talker>,
    estimates: HashMap<PeerId, JitterEstimate>,
    finished: Finished,
    muted: HashSet<PeerId>,
    sink: Option<Box<dyn AudioSink>>,
    voice_out: Option<PathBuf>,
    events: mpsc::Sender<Event>,
    loss: LossMeter,
}

/// Start the playout task. Every spurt heard is counted into `loss` (what talkers here plan
/// their redundancy for).
pub fn spawn(
    voice_out: Option<PathBuf>,
    events: mpsc::Sender<Event>,
    loss: LossMeter,
) -> mpsc::Sender<ReceiverInput> {
    let (tx, rx) = mpsc::channel(1024);
    let receiver = Receiver {
        talkers: HashMap::new(),
        estimates: HashMap::new(),
        finished: Finished::default(),
        muted: HashSet::new(),
        sink: None,
        voice_out,
        events,
        loss,
    };
    tokio::spawn(receiver.run(rx));
    tx
}

impl Receiver {
    async fn run(mut self, mut input: mpsc::Receiver<ReceiverInput>) {
        let mut tick = tokio::time::interval(Duration::from_millis(TICK_MS));
        // A late tick is caught up at once, so playout does not fall behind the talker.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        loop {
            tokio::select! {
                message = input.recv() => match message {
                    Some(message) => self.on_input(message).await,
                    None => break,
                },
                _ = tick.tick(), if !self.talkers.is_empty() => self.on_tick(crate::clock::wall_ms()).await,
            }
        }
    }

    async fn on_input(&mut self, input: ReceiverInput) {
        match input {
            ReceiverInput::Frame {
                room,
                from,
                name,
                frame,
            } => {
                self.on_frame(room, from, name, frame, crate::clock::wall_ms())
                    .await
            }
            ReceiverInput::SetSink(sink) => self.sink = Some(sink),
            ReceiverInput::Mute { peer, muted } => {
                if muted {
                    self.muted.insert(peer);
                } else {
                    self.muted.remove(&peer);
                }
            }
        }
    }

    async fn on_frame(
        &mut self,
        room: String,
        from: PeerId,
        name: String,
        frame: VoiceFrame,
        now: u64,
    ) {
        let part = match self
            .finished
            .judge(&from, frame.spurt, frame.seq, frame.last)
        {
            Verdict::Play => 0,
            Verdict::Resume { part } => part,
            Verdict::Drop => return,
        };
        let key = (room.clone(), from);
        let current = self.talkers.get(&key).map(|t| t.spurt);
        if current != Some(frame.spurt) {
            if current.is_some() {
                // A new spurt from the same talker: the old one is over.
                if let Some(old) = self.talkers.remove(&key) {
                    self.finish(old, 0).await;
                }
            }
            if self.talkers.len() >= MAX_TALKERS {
                return;
            }
            let estimate = self.estimates.entry(from).or_default();
            estimate.new_spurt();
            let Ok(player) = SpurtPlayer::new(
                frame.frame_ms,
                estimate.target_ms(frame.frame_ms as u64),
                DecoderSettings::default(),
            ) else {
                return;
            };
            let talker = Talker {
                room: room.clone(),
                from,
                name: name.clone(),
                spurt: frame.spurt,
                part,
                player,
            };
            self.talkers.insert(key.clone(), talker);
            let _ = self
                .events
                .send(Event::VoiceStart {
                    room,
                    from: from.to_string(),
                    name,
                })
                .await;
        }
        if let Some(estimate) = self.estimates.get_mut(&from) {
            estimate.observe(now, frame.captured_ms);
        }
        if let Some(talker) = self.talkers.get_mut(&key) {
            talker.player.push(frame, now);
        }
    }

    async fn on_tick(&mut self, now: u64) {
        let mut mix = vec![0i32; TICK_SAMPLES];
        let mut ended = Vec::new();
        let mut audible = false;
        for (key, talker) in self.talkers.iter_mut() {
            talker.player.pull(now);
            if let Some(trim) = talker.player.finished() {
                ended.push((key.clone(), trim));
                continue;
            }
            let chunk = talker.player.take(TICK_SAMPLES);
            if chunk.is_empty() {
                continue;
            }
            if !self.muted.contains(&talker.from) {
                mixer::accumulate(&mut mix, &chunk);
                audible = true;
            }
        }
        if audible {
            if let Some(sink) = self.sink.as_mut() {
                let mut out = vec![0i16; TICK_SAMPLES];
                mixer::finish(&mix, &mut out);
                sink.play(&out);
            }
        }
        for (key, trim) in ended {
            if let Some(talker) = self.talkers.remove(&key) {
                self.finish(talker, trim).await;
            }
        }
    }

    async fn finish(&mut self, talker: Talker, trim: u32) {
        self.finished.ended(
            talker.from,
            talker.spurt,
            talker.player.newest_seq(),
            talker.part,
        );
        let frame_len = frame_samples(talker.player.frame_ms());
        let stats = talker.player.stats().clone();
        let recording = talker.player.into_recording(trim);
        let keep = recording.len();
        let frames = (keep / frame_len) as u32;
        self.loss.record(stats.lost(), frames);
        let wav = match &self.voice_out {
            Some(dir) => {
                // A resumed spurt's later parts get files of their own.
                let part = match talker.part {
                    0 => String::new(),
                    n => format!("-{}", n + 1),
                };
                let path = dir.join(format!(
                    "{}-{}-{}-{:08x}{part}.wav",
                    file_safe(&talker.room),
                    file_safe(&talker.name),
                    short_id(&talker.from.to_string()),
                    talker.spurt
                ));
                let samples = recording;
                let target = path.clone();
                let written =
                    tokio::task::spawn_blocking(move || write_48k_mono(&target, &samples)).await;
                match written {
                    Ok(Ok(())) => Some(path.display().to_string()),
                    Ok(Err(e)) => {
                        tracing::warn!("{e}");
                        None
                    }
                    Err(e) => {
                        tracing::warn!("writing a voice recording failed: {e}");
                        None
                    }
                }
            }
            None => None,
        };
        let (p50, p99) = percentiles(&stats);
        let _ = self
            .events
            .send(Event::VoiceEnd {
                room: talker.room,
                from: talker.from.to_string(),
                name: talker.name,
                frames,
                lost: stats.lost(),
                received: stats.received,
                recovered: stats.recovered,
                concealed: stats.concealed,
                late: stats.late,
                latency_p50_ms: p50,
                latency_p99_ms: p99,
                wav,
            })
            .await;
    }
}

fn percentiles(stats: &SpurtStats) -> (u32, u32) {
    let mut sorted = stats.latencies_ms.clone();
    if sorted.is_empty() {
        return (0, 0);
    }
    sorted.sort_unstable();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// A peer's name (or a room's) as part of a file name: a name is the peer's to choose and
/// may hold `/`, so only letters, digits, `-`, `_` and `.` are kept; the rest become `_`.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::file_safe;

    #[test]
    fn a_name_in_a_recordings_file_name_stays_in_the_directory() {
        let dir = std::path::Path::new("/var/lib/hark/voice");
        for name in ["../x/y", "/etc/passwd", "a\\b", "..", "nul\0l", "Zoë 🚀"] {
            let path = dir.join(format!("lobby-{}-UGVZ-0000abcd.wav", file_safe(name)));
            assert_eq!(path.parent(), Some(dir), "{name:?} → {path:?}");
        }
        assert_eq!(file_safe("../x/y"), ".._x_y");
        assert_eq!(
            file_safe("Zoë-ops_1.2"),
            "Zoë-ops_1.2",
            "a plain name is kept"
        );
    }
}
