//! Opus for push-to-talk: 48 kHz mono, VOIP mode, in-band FEC on (SPEC §3), at a bitrate
//! chosen for a LAN (48 kbit/s unless configured), with the loss the encoder plans its
//! redundancy for following what this node hears (see [`fec_loss_percent`]).
//!
//! libopus 1.5+'s neural tools are used where they measurably help (docs/performance.md,
//! "Voice quality"): the decoder runs at complexity 7, which enhances every SILK frame with
//! OSCE (NoLACE) and conceals with deep PLC; when the loss heard is high enough for libopus to
//! spend bits on it, packets also carry DRED (deep redundancy), from which a listener rebuilds
//! frames that in-band FEC cannot (two or more lost in a row). Older peers are unaffected:
//! DRED rides in the packet's padding, which a decoder that does not know it skips.

use thiserror::Error;

use super::opus_ffi::{
    self, DredParser, OpusError, RawDecoder, RawEncoder, OPUS_GET_LOOKAHEAD_REQUEST,
    OPUS_SET_BITRATE_REQUEST, OPUS_SET_COMPLEXITY_REQUEST, OPUS_SET_DRED_DURATION_REQUEST,
    OPUS_SET_INBAND_FEC_REQUEST, OPUS_SET_PACKET_LOSS_PERC_REQUEST,
};

pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one millisecond at [`SAMPLE_RATE`].
pub const SAMPLES_PER_MS: usize = 48;
/// The bitrate unless configured (`--voice-bitrate`): a LAN has bandwidth to spare, and at 5 %
/// loss 32 kbit/s scores PESQ-WB ≈ 3.7, 40 kbit/s ≈ 3.9, 48 kbit/s ≈ 4.1 (docs/performance.md).
pub const DEFAULT_BITRATE: i32 = 48_000;
/// What Hark used before 2026-12-02 (kept for the benchmark's side-by-side run).
pub const LEGACY_BITRATE: i32 = 24_000;
/// The range `--voice-bitrate` accepts, bit/s (Opus's own limits for mono voice).
pub const MIN_BITRATE: i32 = 6_000;
pub const MAX_BITRATE: i32 = 128_000;
/// The loss the encoder plans FEC for before 2026-12-02, whatever the network did.
pub const LEGACY_LOSS_PERCENT: u8 = 10;
/// The least loss the encoder plans for, even on a network that lost nothing lately: the
/// estimate is old by the time a spurt starts, and without it (0) libopus drops FEC entirely.
pub const MIN_LOSS_PERCENT: u8 = 5;
/// The most: beyond this, redundancy costs the clean frames more than it gives back.
pub const MAX_LOSS_PERCENT: u8 = 30;
/// Planned above the loss heard, percent points (measured best, docs/performance.md).
pub const LOSS_MARGIN_PERCENT: f64 = 5.0;
/// Deep redundancy carried by each packet, in 10 ms units (libopus's unit): 100 ms. libopus
/// spends bits on it only when the planned loss is high (≈ 15 % and more at 48 kbit/s).
pub const DRED_DURATION_10MS: i32 = 10;
/// Decoder complexity that switches on deep PLC (libopus 1.5+: 5 = deep PLC, 6/7 = OSCE).
pub const DEEP_PLC_COMPLEXITY: i32 = 5;
/// Decoder complexity for deep PLC and OSCE's NoLACE enhancement (what Hark uses).
pub const NOLACE_COMPLEXITY: i32 = 7;

#[derive(Debug, Error)]
#[error("opus: {0}")]
pub struct CodecError(String);

fn err(e: OpusError) -> CodecError {
    CodecError(e.to_string())
}

/// Samples in one frame of `frame_ms` (10 or 20).
pub fn frame_samples(frame_ms: u8) -> usize {
    frame_ms as usize * SAMPLES_PER_MS
}

/// The loss the encoder is told to expect, from the loss this node measured on the voice it
/// received lately (percent of frames; `None` when it has heard nobody yet: the 10 % Hark
/// always planned for). Opus sizes its in-band FEC (and DRED) from this hint: more than was
/// heard by [`LOSS_MARGIN_PERCENT`], within [`MIN_LOSS_PERCENT`]..=[`MAX_LOSS_PERCENT`]. Measured
/// (PESQ-WB, 48 kbit/s): at 0 % loss planning 5 beats 10; at 5 % planning 7–15 is best; at
/// 15–20 % planning 20–30 beats 10 by 0.1–0.2, as DRED comes in.
pub fn fec_loss_percent(observed: Option<f64>) -> u8 {
    let Some(observed) = observed.filter(|o| o.is_finite()) else {
        return LEGACY_LOSS_PERCENT;
    };
    let planned = (observed.max(0.0) + LOSS_MARGIN_PERCENT).round();
    planned.clamp(f64::from(MIN_LOSS_PERCENT), f64::from(MAX_LOSS_PERCENT)) as u8
}

/// How a talker encodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderSettings {
    pub bitrate: i32,
    /// The loss the in-band FEC is planned for, percent.
    pub loss_percent: u8,
    /// Deep redundancy per packet, 10 ms units; 0 = none.
    pub dred_10ms: i32,
}

impl EncoderSettings {
    /// Hark's settings before 2026-12-02: 24 kbit/s, FEC for 10 % loss, no DRED.
    pub const LEGACY: Self = Self {
        bitrate: LEGACY_BITRATE,
        loss_percent: LEGACY_LOSS_PERCENT,
        dred_10ms: 0,
    };

    /// Today's settings at `bitrate`, planning for `loss_percent`.
    pub fn lan(bitrate: i32, loss_percent: u8) -> Self {
        Self {
            bitrate,
            loss_percent,
            dred_10ms: DRED_DURATION_10MS,
        }
    }
}

impl Default for EncoderSettings {
    fn default() -> Self {
        Self::lan(DEFAULT_BITRATE, LEGACY_LOSS_PERCENT)
    }
}

/// How a listener decodes and repairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderSettings {
    /// 0: classic PLC; 5: deep PLC; 6 and 7: also OSCE (LACE, NoLACE) enhancement.
    pub complexity: i32,
    /// Rebuild frames from the deep redundancy of later packets.
    pub dred: bool,
}

impl DecoderSettings {
    /// Before 2026-12-02: classic PLC and in-band FEC only.
    pub const LEGACY: Self = Self {
        complexity: 0,
        dred: false,
    };
}

impl Default for DecoderSettings {
    fn default() -> Self {
        Self {
            complexity: NOLACE_COMPLEXITY,
            dred: true,
        }
    }
}

pub struct VoiceEncoder {
    inner: RawEncoder,
    frame_ms: u8,
    loss_percent: u8,
    packet: Vec<u8>,
}

impl VoiceEncoder {
    /// An encoder with the default settings.
    pub fn new(frame_ms: u8) -> Result<Self, CodecError> {
        Self::with_settings(frame_ms, EncoderSettings::default())
    }

    pub fn with_settings(frame_ms: u8, settings: EncoderSettings) -> Result<Self, CodecError> {
        if !matches!(frame_ms, 10 | 20) {
            return Err(CodecError(format!(
                "frame length {frame_ms} ms: use 10 or 20"
            )));
        }
        if !(MIN_BITRATE..=MAX_BITRATE).contains(&settings.bitrate) {
            return Err(CodecError(format!(
                "bitrate {} bit/s: use {MIN_BITRATE} to {MAX_BITRATE}",
                settings.bitrate
            )));
        }
        let mut inner = RawEncoder::voip_mono(SAMPLE_RATE as i32).map_err(err)?;
        inner
            .set(OPUS_SET_BITRATE_REQUEST, settings.bitrate)
            .map_err(err)?;
        inner.set(OPUS_SET_INBAND_FEC_REQUEST, 1).map_err(err)?;
        if settings.dred_10ms > 0 {
            // A libopus without DRED refuses; the voice still goes, with in-band FEC only.
            if let Err(e) = inner.set(OPUS_SET_DRED_DURATION_REQUEST, settings.dred_10ms) {
                tracing::debug!("no DRED: {e}");
            }
        }
        let mut encoder = Self {
            inner,
            frame_ms,
            loss_percent: 0,
            packet: vec![0; hark_proto::voice::MAX_OPUS_BYTES],
        };
        encoder.set_loss_percent(settings.loss_percent)?;
        Ok(encoder)
    }

    pub fn frame_ms(&self) -> u8 {
        self.frame_ms
    }

    /// Plan the redundancy for this much loss (percent).
    pub fn set_loss_percent(&mut self, percent: u8) -> Result<(), CodecError> {
        let percent = percent.min(100);
        if percent != self.loss_percent {
            self.inner
                .set(OPUS_SET_PACKET_LOSS_PERC_REQUEST, i32::from(percent))
                .map_err(err)?;
            self.loss_percent = percent;
        }
        Ok(())
    }

    pub fn loss_percent(&self) -> u8 {
        self.loss_percent
    }

    /// Encode exactly one frame of samples.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, CodecError> {
        if pcm.len() != frame_samples(self.frame_ms) {
            return Err(CodecError(format!(
                "a frame is {} samples, got {}",
                frame_samples(self.frame_ms),
                pcm.len()
            )));
        }
        let n = self.inner.encode(pcm, &mut self.packet).map_err(err)?;
        Ok(self.packet[..n].to_vec())
    }

    /// Samples of look-ahead the encoder adds (part of the mouth-to-ear delay).
    pub fn lookahead(&mut self) -> usize {
        self.inner
            .get(OPUS_GET_LOOKAHEAD_REQUEST)
            .map_or(0, |n| n.max(0) as usize)
    }
}

/// How a missing frame was filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repair {
    /// From the next packet's in-band FEC copy.
    Fec,
    /// From a later packet's deep redundancy.
    Dred,
    /// Concealed (PLC, deep PLC when on).
    Concealed,
}

pub struct VoiceDecoder {
    inner: RawDecoder,
    /// `None` when DRED is off or libopus lacks it.
    dred: Option<DredParser>,
}

impl VoiceDecoder {
    /// A decoder with the default settings.
    pub fn new() -> Result<Self, CodecError> {
        Self::with_settings(DecoderSettings::default())
    }

    pub fn with_settings(settings: DecoderSettings) -> Result<Self, CodecError> {
        let mut inner = RawDecoder::mono(SAMPLE_RATE as i32).map_err(err)?;
        if settings.complexity > 0 {
            // A libopus without the neural tools refuses: classic PLC it is.
            if let Err(e) = inner.set(OPUS_SET_COMPLEXITY_REQUEST, settings.complexity) {
                tracing::debug!("decoder complexity {}: {e}", settings.complexity);
            }
        }
        let dred = if settings.dred {
            DredParser::new()
                .map_err(|e| tracing::debug!("no DRED: {e}"))
                .ok()
        } else {
            None
        };
        Ok(Self { inner, dred })
    }

    /// Decode one frame into `out` (one frame long). A frame that does not decode is concealed
    /// instead: a malformed packet from the network costs a frame, never the talker.
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16]) -> bool {
        match self.inner.decode(Some(packet), out, false) {
            Ok(n) if n == out.len() => true,
            _ => {
                self.conceal(out);
                false
            }
        }
    }

    /// Recover the frame `ahead` frames before `later` (1: the frame just before it) from
    /// `later`'s redundancy: its in-band FEC for the frame just before, its deep redundancy
    /// otherwise; conceal when it has neither.
    pub fn recover(&mut self, later: &[u8], ahead: u32, out: &mut [i16]) -> Repair {
        if ahead == 1
            && opus_ffi::packet_has_lbrr(later)
            && matches!(self.inner.decode(Some(later), out, true), Ok(n) if n == out.len())
        {
            return Repair::Fec;
        }
        if let Some(dred) = self.dred.as_mut() {
            let frame = out.len() as i32;
            let offset = ahead as i32 * frame;
            // `available`: how far back before `later` the redundancy reaches (in 20 ms steps,
            // less the encoder's 5 ms look-ahead): the frame counts as rebuilt if it reaches
            // into it; libopus conceals what it does not cover.
            if let Ok(available) = dred.parse(later, offset, SAMPLE_RATE as i32) {
                if available > offset - frame
                    && matches!(self.inner.decode_dred(dred, offset, out), Ok(n) if n == out.len())
                {
                    return Repair::Dred;
                }
            }
        }
        self.conceal(out);
        Repair::Concealed
    }

    /// Recover the frame before `next` from `next`'s in-band FEC data (or conceal it).
    pub fn decode_fec(&mut self, next: &[u8], out: &mut [i16]) {
        self.recover(next, 1, out);
    }

    /// Packet-loss concealment for one frame.
    pub fn conceal(&mut self, out: &mut [i16]) {
        if !matches!(self.inner.decode(None, out, false), Ok(n) if n == out.len()) {
            out.fill(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, hz: f32) -> Vec<i16> {
        (0..n)
            .map(|i| {
                ((i as f32 * hz * std::f32::consts::TAU / SAMPLE_RATE as f32).sin() * 8000.0) as i16
            })
            .collect()
    }

    /// Something SILK treats as voiced speech: a 150 Hz pitch with harmonics, its loudness
    /// swelling three times a second.
    fn voiced(n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE as f32;
                let pitch: f32 = (1..=8)
                    .map(|h| (t * 150.0 * h as f32 * std::f32::consts::TAU).sin() / h as f32)
                    .sum();
                (pitch * 4000.0 * (1.2 + (t * 3.0 * std::f32::consts::TAU).sin())) as i16
            })
            .collect()
    }

    #[test]
    fn frames_round_trip_and_losses_are_concealed() {
        let mut enc = VoiceEncoder::new(20).unwrap();
        let mut dec = VoiceDecoder::new().unwrap();
        let pcm = tone(960 * 10, 440.0);
        let packets: Vec<Vec<u8>> = pcm.chunks(960).map(|c| enc.encode(c).unwrap()).collect();
        assert!(packets.iter().all(|p| !p.is_empty() && p.len() < 400));
        let mut out = vec![0i16; 960];
        for p in &packets[..5] {
            assert!(dec.decode(p, &mut out));
        }
        assert!(
            out.iter().any(|s| s.abs() > 1000),
            "decoded audio is not silent"
        );
        dec.decode_fec(&packets[6], &mut out);
        dec.conceal(&mut out);
        assert!(
            !dec.decode(b"\xff\xff\xff", &mut out),
            "garbage is concealed, not decoded"
        );
        assert!(enc.encode(&pcm[..100]).is_err());
        assert!(VoiceEncoder::new(30).is_err());
        assert!(enc.lookahead() > 0);
    }

    #[test]
    fn the_bundled_libopus_has_the_neural_tools() {
        assert!(
            opus_ffi::version().contains("1.6"),
            "{}",
            opus_ffi::version()
        );
        assert!(DredParser::new().is_ok(), "built with DRED");
        let mut raw = RawDecoder::mono(48_000).unwrap();
        assert!(raw.set(OPUS_SET_COMPLEXITY_REQUEST, 7).is_ok());
    }

    #[test]
    fn a_lost_frame_is_rebuilt_from_fec_one_back_and_from_dred_further_back() {
        let mut enc = VoiceEncoder::with_settings(20, EncoderSettings::lan(48_000, 25)).unwrap();
        let pcm = voiced(960 * 40);
        let packets: Vec<Vec<u8>> = pcm.chunks(960).map(|c| enc.encode(c).unwrap()).collect();
        let mut dec = VoiceDecoder::new().unwrap();
        let mut out = vec![0i16; 960];
        for p in &packets[..30] {
            dec.decode(p, &mut out);
        }
        // 30, 31 and 32 lost; 33 arrived.
        assert_eq!(dec.recover(&packets[33], 3, &mut out), Repair::Dred);
        assert_eq!(dec.recover(&packets[33], 2, &mut out), Repair::Dred);
        assert_eq!(dec.recover(&packets[33], 1, &mut out), Repair::Fec);
        assert!(dec.decode(&packets[33], &mut out));

        let mut legacy = VoiceDecoder::with_settings(DecoderSettings::LEGACY).unwrap();
        for p in &packets[..30] {
            legacy.decode(p, &mut out);
        }
        assert_eq!(
            legacy.recover(&packets[33], 3, &mut out),
            Repair::Concealed,
            "no DRED: concealed"
        );
        assert!(VoiceEncoder::with_settings(20, EncoderSettings::lan(1_000, 5)).is_err());
    }

    #[test]
    fn fec_is_planned_for_a_little_more_loss_than_was_heard() {
        assert_eq!(fec_loss_percent(None), LEGACY_LOSS_PERCENT);
        assert_eq!(fec_loss_percent(Some(0.0)), MIN_LOSS_PERCENT);
        assert_eq!(fec_loss_percent(Some(-3.0)), MIN_LOSS_PERCENT);
        assert_eq!(fec_loss_percent(Some(4.6)), 10);
        assert_eq!(fec_loss_percent(Some(10.0)), 15);
        assert_eq!(fec_loss_percent(Some(20.0)), 25);
        assert_eq!(fec_loss_percent(Some(60.0)), MAX_LOSS_PERCENT);
        assert_eq!(fec_loss_percent(Some(f64::NAN)), LEGACY_LOSS_PERCENT);
        let mut enc = VoiceEncoder::new(20).unwrap();
        enc.set_loss_percent(fec_loss_percent(Some(10.0))).unwrap();
        assert_eq!(enc.loss_percent(), 15);
    }
}
