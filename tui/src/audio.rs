//! The sound card, through cpal: the default input device is the push-to-talk mic, the default
//! output device plays what the node mixes. The node speaks 48 kHz mono 16-bit; a device that
//! runs at another rate or with other channels is converted here, in the audio callbacks.
//!
//! Resampling is linear interpolation (no allocation beyond small chunks, no filter state worth
//! the name, fine in a real-time callback); it has no anti-alias filter, which matters little
//! for speech from devices at 44.1 or 48 kHz, the usual rates.
//!
//! - Capture: the input stream always runs; while the PTT key is down its callback converts
//!   each buffer and sends it to the talk-spurt's [`MicSource`] over a bounded channel (a full
//!   channel drops audio, never blocks). Releasing the key drops the sender: the source hands
//!   out what was captured, then a last frame.
//! - Playback: [`SpeakerSink`] pushes into a bounded ring buffer (full: dropped) that the
//!   output stream drains; an empty ring plays silence.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};
use hark_node::voice::{AudioSink, AudioSource, Captured};

use crate::voice::{Voice, NO_VOICE};

/// The node's audio rate.
pub const RATE: u32 = 48_000;
/// Captured chunks waiting for the talk-spurt (a callback's buffer each, typically 5–20 ms).
const CAPTURE_CHUNKS: usize = 64;
/// A mic that delivers nothing for this long has gone away: the spurt ends.
const CAPTURE_STALL: Duration = Duration::from_millis(500);
/// Playback buffered at most (200 ms): more is dropped rather than let latency grow.
const PLAYBACK_SAMPLES: usize = RATE as usize / 5;

/// Streaming linear-interpolation resampler, one channel.
#[derive(Clone, Debug)]
pub struct Linear {
    step: f64,
    pos: f64,
    prev: f32,
}

impl Linear {
    pub fn new(from: u32, to: u32) -> Self {
        Self {
            step: f64::from(from) / f64::from(to.max(1)),
            pos: 0.0,
            prev: 0.0,
        }
    }

    /// Feed one input sample; `out` gets the output samples it completes (none or more).
    pub fn push(&mut self, cur: f32, out: &mut impl FnMut(f32)) {
        while self.pos < 1.0 {
            out(self.prev + (cur - self.prev) * self.pos as f32);
            self.pos += self.step;
        }
        self.pos -= 1.0;
        self.prev = cur;
    }
}

/// Interleaved samples of `channels` channels to mono (their mean), as f32 in -1..1.
pub fn to_mono<T>(data: &[T], channels: usize, mut out: impl FnMut(f32))
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = channels.max(1);
    for frame in data.chunks(channels) {
        let sum: f32 = frame.iter().map(|&s| f32::from_sample_(s)).sum();
        out(sum / frame.len() as f32);
    }
}

pub fn to_i16(x: f32) -> i16 {
    (x.clamp(-1.0, 1.0) * 32767.0) as i16
}

/// Convert one captured device buffer to 48 kHz mono i16.
pub fn convert_captured<T>(data: &[T], channels: usize, resampler: &mut Linear) -> Vec<i16>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let mut out = Vec::with_capacity(data.len() / channels.max(1) * 2 + 2);
    to_mono(data, channels, |x| {
        resampler.push(x, &mut |y| out.push(to_i16(y)))
    });
    out
}

/// Fill one device output buffer from the 48 kHz mono ring: resampled to the device rate,
/// the same sample on every channel, silence when the ring is empty.
pub fn fill_output<T>(
    data: &mut [T],
    channels: usize,
    ring: &mut VecDeque<i16>,
    resampler: &mut Linear,
    pending: &mut VecDeque<f32>,
) where
    T: SizedSample + FromSample<f32>,
{
    let channels = channels.max(1);
    let frames = data.len() / channels;
    while pending.len() < frames {
        let s = ring.pop_front().map_or(0.0, |s| f32::from(s) / 32768.0);
        resampler.push(s, &mut |y| pending.push_back(y));
    }
    for frame in data.chunks_mut(channels) {
        let y = pending.pop_front().unwrap_or(0.0);
        for sample in frame {
            *sample = T::from_sample_(y);
        }
    }
}

/// One talk-spurt's audio, read by the node's sender thread.
pub struct MicSource {
    chunks: Receiver<Vec<i16>>,
    pending: VecDeque<i16>,
    level: Arc<AtomicU16>,
    ended: bool,
}

impl MicSource {
    pub fn new(chunks: Receiver<Vec<i16>>, level: Arc<AtomicU16>) -> Self {
        Self {
            chunks,
            pending: VecDeque::new(),
            level,
            ended: false,
        }
    }
}

impl AudioSource for MicSource {
    fn next_frame(&mut self, frame: &mut [i16]) -> Captured {
        if self.ended {
            return Captured::Done;
        }
        while self.pending.len() < frame.len() {
            match self.chunks.recv_timeout(CAPTURE_STALL) {
                Ok(chunk) => self.pending.extend(chunk),
                // The key was released (the sender dropped), or the mic stalled: what is
                // left, padded with silence, is the last frame.
                Err(RecvTimeoutError::Disconnected | RecvTimeoutError::Timeout) => {
                    let have = self.pending.len();
                    for (i, sample) in frame.iter_mut().enumerate() {
                        *sample = if i < have { self.pending[i] } else { 0 };
                    }
                    self.pending.clear();
                    self.ended = true;
                    self.level.store(0, Ordering::Relaxed);
                    return Captured::Last;
                }
            }
        }
        let n = frame.len();
        for (sample, s) in frame.iter_mut().zip(self.pending.drain(..n)) {
            *sample = s;
        }
        let peak = frame
            .iter()
            .map(|s| s.unsigned_abs().min(32767))
            .max()
            .unwrap_or(0);
        self.level.store(peak, Ordering::Relaxed);
        Captured::Frame
    }
}

/// Received voice into the playback ring; never blocks for longer than the output callback
/// holds the lock (a few microseconds), drops what does not fit.
pub struct SpeakerSink {
    ring: Ring,
}

impl AudioSink for SpeakerSink {
    fn play(&mut self, samples: &[i16]) {
        if let Ok(mut ring) = self.ring.lock() {
            let room = PLAYBACK_SAMPLES.saturating_sub(ring.len());
            ring.extend(samples.iter().take(room));
        }
    }
}

/// The playback ring: 48 kHz mono, waiting for the output callback.
type Ring = Arc<Mutex<VecDeque<i16>>>;

/// Where the capture callback sends audio: the current talk-spurt, or nowhere.
type Tap = Arc<Mutex<Option<SyncSender<Vec<i16>>>>>;

/// Voice through the default sound devices.
pub struct DeviceVoice {
    tap: Option<Tap>,
    level: Arc<AtomicU16>,
    sink: Option<SpeakerSink>,
    // The streams run as long as these live.
    _input: Option<cpal::Stream>,
    _output: Option<cpal::Stream>,
}

impl DeviceVoice {
    /// Open the default input and output devices. `None` when neither works; either alone
    /// is still useful (talk without hearing, or hear without a mic). Reasons go to the log.
    pub fn open() -> Option<Self> {
        let host = cpal::default_host();
        let level = Arc::new(AtomicU16::new(0));
        let input = match open_input(&host) {
            Ok(x) => Some(x),
            Err(e) => {
                tracing::info!("no audio input: {e}");
                None
            }
        };
        let output = match open_output(&host) {
            Ok(x) => Some(x),
            Err(e) => {
                tracing::info!("no audio output: {e}");
                None
            }
        };
        if input.is_none() && output.is_none() {
            return None;
        }
        let (tap, input) = match input {
            Some((tap, stream)) => (Some(tap), Some(stream)),
            None => (None, None),
        };
        let (sink, output) = match output {
            Some((ring, stream)) => (Some(SpeakerSink { ring }), Some(stream)),
            None => (None, None),
        };
        Some(Self {
            tap,
            level,
            sink,
            _input: input,
            _output: output,
        })
    }
}

impl Voice for DeviceVoice {
    fn available(&self) -> Result<(), String> {
        match self.tap {
            Some(_) => Ok(()),
            None => Err(NO_VOICE.to_owned()),
        }
    }

    fn start_talking(&mut self, _room: &str) -> Result<Box<dyn AudioSource>, String> {
        let tap = self.tap.as_ref().ok_or_else(|| NO_VOICE.to_owned())?;
        let (tx, rx) = mpsc::sync_channel(CAPTURE_CHUNKS);
        *tap.lock().map_err(|_| NO_VOICE.to_owned())? = Some(tx);
        Ok(Box::new(MicSource::new(rx, self.level.clone())))
    }

    fn stop_talking(&mut self) {
        if let Some(tap) = &self.tap {
            if let Ok(mut tap) = tap.lock() {
                *tap = None;
            }
        }
    }

    fn take_sink(&mut self) -> Option<Box<dyn AudioSink>> {
        self.sink
            .take()
            .map(|sink| Box::new(sink) as Box<dyn AudioSink>)
    }

    fn level(&self) -> Option<Arc<AtomicU16>> {
        Some(self.level.clone())
    }
}

fn open_input(host: &cpal::Host) -> Result<(Tap, cpal::Stream), String> {
    let device = host
        .default_input_device()
        .ok_or("no default input device")?;
    let supported = device.default_input_config().map_err(|e| e.to_string())?;
    let config = supported.config();
    let tap: Tap = Arc::new(Mutex::new(None));
    let stream = match supported.sample_format() {
        SampleFormat::F32 => build_input::<f32>(&device, &config, tap.clone()),
        SampleFormat::I16 => build_input::<i16>(&device, &config, tap.clone()),
        SampleFormat::U16 => build_input::<u16>(&device, &config, tap.clone()),
        SampleFormat::I32 => build_input::<i32>(&device, &config, tap.clone()),
        other => return Err(format!("unsupported input sample format {other}")),
    }?;
    stream.play().map_err(|e| e.to_string())?;
    tracing::info!(
        rate = config.sample_rate,
        channels = config.channels,
        "audio input open"
    );
    Ok((tap, stream))
}

fn build_input<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    tap: Tap,
) -> Result<cpal::Stream, String>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels);
    let rate = config.sample_rate;
    let mut resampler = Linear::new(rate, RATE);
    device
        .build_input_stream(
            *config,
            move |data: &[T], _: &cpal::InputCallbackInfo| {
                // Never wait in the audio callback: a busy tap loses this buffer.
                let Ok(tap) = tap.try_lock() else { return };
                match tap.as_ref() {
                    Some(tx) => {
                        let chunk = convert_captured(data, channels, &mut resampler);
                        let _ = tx.try_send(chunk);
                    }
                    None => resampler = Linear::new(rate, RATE),
                }
            },
            |e| tracing::warn!("audio input: {e}"),
            None,
        )
        .map_err(|e| e.to_string())
}

fn open_output(host: &cpal::Host) -> Result<(Ring, cpal::Stream), String> {
    let device = host
        .default_output_device()
        .ok_or("no default output device")?;
    let supported = device.default_output_config().map_err(|e| e.to_string())?;
    let config = supported.config();
    let ring = Arc::new(Mutex::new(VecDeque::with_capacity(PLAYBACK_SAMPLES)));
    let stream = match supported.sample_format() {
        SampleFormat::F32 => build_output::<f32>(&device, &config, ring.clone()),
        SampleFormat::I16 => build_output::<i16>(&device, &config, ring.clone()),
        SampleFormat::U16 => build_output::<u16>(&device, &config, ring.clone()),
        SampleFormat::I32 => build_output::<i32>(&device, &config, ring.clone()),
        other => return Err(format!("unsupported output sample format {other}")),
    }?;
    stream.play().map_err(|e| e.to_string())?;
    tracing::info!(
        rate = config.sample_rate,
        channels = config.channels,
        "audio output open"
    );
    Ok((ring, stream))
}

fn build_output<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    ring: Ring,
) -> Result<cpal::Stream, String>
where
    T: SizedSample + FromSample<f32>,
{
    let channels = usize::from(config.channels);
    let mut resampler = Linear::new(RATE, config.sample_rate);
    let mut pending = VecDeque::with_capacity(4096);
    device
        .build_output_stream(
            *config,
            move |data: &mut [T], _: &cpal::OutputCallbackInfo| match ring.lock() {
                Ok(mut ring) => {
                    fill_output(data, channels, &mut ring, &mut resampler, &mut pending)
                }
                Err(_) => data.fill(T::EQUILIBRIUM),
            },
            |e| tracing::warn!("audio output: {e}"),
            None,
        )
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_keeps_the_rate_ratio_and_interpolates() {
        let mut out = Vec::new();
        let mut r = Linear::new(44_100, RATE);
        for i in 0..44_100 {
            r.push((i % 100) as f32 / 100.0, &mut |y| out.push(y));
        }
        assert!((out.len() as i64 - 48_000).abs() <= 1, "{}", out.len());
        let mut out = Vec::new();
        let mut r = Linear::new(24_000, RATE);
        for x in [0.0, 1.0, 0.0] {
            r.push(x, &mut |y| out.push(y));
        }
        assert_eq!(out, [0.0, 0.0, 0.0, 0.5, 1.0, 0.5]);
        let mut out = Vec::new();
        let mut r = Linear::new(96_000, RATE);
        for x in [0.1, 0.2, 0.3, 0.4] {
            r.push(x, &mut |y| out.push(y));
        }
        assert_eq!(out, [0.0, 0.2]);
    }

    #[test]
    fn stereo_becomes_mono_at_48k() {
        let mut r = Linear::new(RATE, RATE);
        let stereo: [i16; 6] = [1000, 3000, -2000, -2000, 32767, 32767];
        let out = convert_captured(&stereo, 2, &mut r);
        // One sample of delay: the first output is the resampler's initial zero.
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], 0);
        assert!((i32::from(out[1]) - 2000).abs() <= 1, "{out:?}");
        assert!((i32::from(out[2]) + 2000).abs() <= 1, "{out:?}");
        let mono_f32 = [0.5f32, -0.5];
        let out = convert_captured(&mono_f32, 1, &mut Linear::new(RATE, RATE));
        assert_eq!(out, [0, 16383]);
    }

    #[test]
    fn output_duplicates_channels_and_plays_silence_when_empty() {
        let mut ring: VecDeque<i16> = [16384i16, -16384].into_iter().collect();
        let mut r = Linear::new(RATE, RATE);
        let mut pending = VecDeque::new();
        let mut data = [1.0f32; 8];
        fill_output(&mut data, 2, &mut ring, &mut r, &mut pending);
        assert_eq!(data, [0.0, 0.0, 0.5, 0.5, -0.5, -0.5, 0.0, 0.0]);
        assert!(ring.is_empty());
        let mut data = [1i16; 4];
        fill_output(&mut data, 2, &mut ring, &mut r, &mut pending);
        assert_eq!(data, [0; 4]);
    }

    #[test]
    fn the_source_ends_with_a_last_frame_on_release() {
        let (tx, rx) = mpsc::sync_channel(8);
        let level = Arc::new(AtomicU16::new(0));
        let mut source = MicSource::new(rx, level.clone());
        tx.send(vec![100; 600]).unwrap();
        tx.send(vec![-8000; 600]).unwrap();
        let mut frame = [0i16; 960];
        assert_eq!(source.next_frame(&mut frame), Captured::Frame);
        assert_eq!(level.load(Ordering::Relaxed), 8000);
        assert_eq!(frame[599..601], [100, -8000]);
        drop(tx); // the PTT key came up
        assert_eq!(source.next_frame(&mut frame), Captured::Last);
        assert_eq!(frame[239..241], [-8000, 0]);
        assert_eq!(level.load(Ordering::Relaxed), 0);
        assert_eq!(source.next_frame(&mut frame), Captured::Done);
    }

    #[test]
    fn the_sink_drops_what_does_not_fit() {
        let ring = Arc::new(Mutex::new(VecDeque::new()));
        let mut sink = SpeakerSink { ring: ring.clone() };
        for _ in 0..100 {
            sink.play(&[7; 480]);
        }
        assert_eq!(ring.lock().unwrap().len(), PLAYBACK_SAMPLES);
    }
}
