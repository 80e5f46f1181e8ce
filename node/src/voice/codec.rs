//! Opus for push-to-talk: 48 kHz mono, VOIP mode, ≈ 24 kbit/s, in-band FEC on (SPEC §3).

use opus::{Application, Bitrate, Channels, Decoder, Encoder};
use thiserror::Error;

pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one millisecond at [`SAMPLE_RATE`].
pub const SAMPLES_PER_MS: usize = 48;
pub const BITRATE: i32 = 24_000;
/// The loss the encoder plans FEC for.
pub const EXPECTED_LOSS_PERCENT: i32 = 10;

#[derive(Debug, Error)]
#[error("opus: {0}")]
pub struct CodecError(String);

fn err(e: opus::Error) -> CodecError {
    CodecError(e.to_string())
}

/// Samples in one frame of `frame_ms` (10 or 20).
pub fn frame_samples(frame_ms: u8) -> usize {
    frame_ms as usize * SAMPLES_PER_MS
}

pub struct VoiceEncoder {
    inner: Encoder,
    frame_ms: u8,
}

impl VoiceEncoder {
    pub fn new(frame_ms: u8) -> Result<Self, CodecError> {
        if !matches!(frame_ms, 10 | 20) {
            return Err(CodecError(format!(
                "frame length {frame_ms} ms: use 10 or 20"
            )));
        }
        let mut inner =
            Encoder::new(SAMPLE_RATE, Channels::Mono, Application::Voip).map_err(err)?;
        inner.set_bitrate(Bitrate::Bits(BITRATE)).map_err(err)?;
        inner.set_inband_fec(true).map_err(err)?;
        inner
            .set_packet_loss_perc(EXPECTED_LOSS_PERCENT)
            .map_err(err)?;
        Ok(Self { inner, frame_ms })
    }

    pub fn frame_ms(&self) -> u8 {
        self.frame_ms
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
        self.inner.encode_vec(pcm, 1275).map_err(err)
    }

    /// Samples of look-ahead the encoder adds (part of the mouth-to-ear delay).
    pub fn lookahead(&mut self) -> usize {
        self.inner.get_lookahead().map_or(0, |n| n.max(0) as usize)
    }
}

pub struct VoiceDecoder {
    inner: Decoder,
}

impl VoiceDecoder {
    pub fn new() -> Result<Self, CodecError> {
        Ok(Self {
            inner: Decoder::new(SAMPLE_RATE, Channels::Mono).map_err(err)?,
        })
    }

    /// Decode one frame into `out` (one frame long). A frame that does not decode is concealed
    /// instead: a malformed packet from the network costs a frame, never the talker.
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16]) -> bool {
        match self.inner.decode(packet, out, false) {
            Ok(n) if n == out.len() => true,
            _ => {
                self.conceal(out);
                false
            }
        }
    }

    /// Recover the frame before `next` from `next`'s in-band FEC data.
    pub fn decode_fec(&mut self, next: &[u8], out: &mut [i16]) {
        if !matches!(self.inner.decode(next, out, true), Ok(n) if n == out.len()) {
            self.conceal(out);
        }
    }

    /// Packet-loss concealment for one frame.
    pub fn conceal(&mut self, out: &mut [i16]) {
        if !matches!(self.inner.decode(&[], out, false), Ok(n) if n == out.len()) {
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

    #[test]
    fn frames_round_trip_and_losses_are_concealed() {
        let mut enc = VoiceEncoder::new(20).unwrap();
        let mut dec = VoiceDecoder::new().unwrap();
        let pcm = tone(960 * 10, 440.0);
        let packets: Vec<Vec<u8>> = pcm.chunks(960).map(|c| enc.encode(c).unwrap()).collect();
        assert!(packets.iter().all(|p| !p.is_empty() && p.len() < 200));
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
}
