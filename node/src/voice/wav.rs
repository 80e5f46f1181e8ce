//! WAV files in and out of the voice pipeline: any common rate and channel count in (mixed to
//! mono, resampled to 48 kHz with rubato), 48 kHz mono 16-bit out.

use std::path::Path;

use rubato::{FftFixedIn, Resampler};
use thiserror::Error;

use super::codec::SAMPLE_RATE;

/// Longest WAV the `voice` command plays (10 minutes at 48 kHz).
pub const MAX_SAMPLES: usize = 10 * 60 * SAMPLE_RATE as usize;

#[derive(Debug, Error)]
pub enum WavError {
    #[error("cannot read WAV {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot write WAV {path}: {reason}")]
    Write { path: String, reason: String },
}

/// Read a WAV file as 48 kHz mono 16-bit samples.
pub fn read_48k_mono(path: &Path) -> Result<Vec<i16>, WavError> {
    let fail = |reason: String| WavError::Read {
        path: path.display().to_string(),
        reason,
    };
    let mut reader = hound::WavReader::open(path).map_err(|e| fail(e.to_string()))?;
    let spec = reader.spec();
    let channels = spec.channels.max(1) as usize;
    if spec.sample_rate < 4_000 || spec.sample_rate > 384_000 {
        return Err(fail(format!(
            "sample rate {} Hz is not supported",
            spec.sample_rate
        )));
    }
    let frames = reader.duration() as usize;
    if frames as u64 * SAMPLE_RATE as u64 / spec.sample_rate as u64 > MAX_SAMPLES as u64 {
        return Err(fail("longer than 10 minutes".into()));
    }
    // Every format as f32 in [-1, 1].
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| fail(e.to_string()))?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(|e| fail(e.to_string()))?
        }
    };
    let mono: Vec<f32> = interleaved
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32)
        .collect();
    let resampled = if spec.sample_rate == SAMPLE_RATE {
        mono
    } else {
        resample(&mono, spec.sample_rate as usize).map_err(fail)?
    };
    Ok(resampled
        .into_iter()
        .map(|s| {
            (s * 32_768.0)
                .round()
                .clamp(i16::MIN as f32, i16::MAX as f32) as i16
        })
        .collect())
}

/// Resample mono `input` at `rate` to 48 kHz, keeping its duration exactly.
fn resample(input: &[f32], rate: usize) -> Result<Vec<f32>, String> {
    const CHUNK: usize = 1024;
    let mut resampler = FftFixedIn::<f32>::new(rate, SAMPLE_RATE as usize, CHUNK, 2, 1)
        .map_err(|e| e.to_string())?;
    let wanted = (input.len() as u64 * SAMPLE_RATE as u64).div_ceil(rate as u64) as usize;
    let delay = resampler.output_delay();
    let mut out = Vec::with_capacity(wanted + delay + CHUNK * 2);
    let mut rest = input;
    while rest.len() >= resampler.input_frames_next() {
        let (chunk, tail) = rest.split_at(resampler.input_frames_next());
        let produced = resampler
            .process(&[chunk], None)
            .map_err(|e| e.to_string())?;
        out.extend_from_slice(&produced[0]);
        rest = tail;
    }
    // The tail, then silence to flush the filter's delay.
    let produced = resampler
        .process_partial(Some(&[rest]), None)
        .map_err(|e| e.to_string())?;
    out.extend_from_slice(&produced[0]);
    while out.len() < wanted + delay {
        let produced = resampler
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| e.to_string())?;
        if produced[0].is_empty() {
            break;
        }
        out.extend_from_slice(&produced[0]);
    }
    let mut out = out.split_off(delay.min(out.len()));
    out.resize(wanted, 0.0);
    Ok(out)
}

/// Write 48 kHz mono samples as a 16-bit WAV file.
pub fn write_48k_mono(path: &Path, samples: &[i16]) -> Result<(), WavError> {
    let fail = |reason: String| WavError::Write {
        path: path.display().to_string(),
        reason,
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(|e| fail(e.to_string()))?;
    for &s in samples {
        writer.write_sample(s).map_err(|e| fail(e.to_string()))?;
    }
    writer.finalize().map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_rate_and_channel_count_becomes_48k_mono_of_the_same_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 22_050,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..22_050 {
            let s = ((i as f32 * 440.0 * std::f32::consts::TAU / 22_050.0).sin() * 10_000.0) as i16;
            w.write_sample(s).unwrap();
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        let pcm = read_48k_mono(&path).unwrap();
        assert_eq!(pcm.len(), 48_000, "one second stays one second");
        let peak = pcm[4800..43_200]
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap();
        assert!((9_000..11_000).contains(&peak), "level kept: {peak}");

        let out = dir.path().join("out.wav");
        write_48k_mono(&out, &pcm).unwrap();
        assert!(
            read_48k_mono(&out).unwrap() == pcm,
            "48 kHz mono 16-bit reads back unchanged"
        );
        assert!(read_48k_mono(&dir.path().join("missing.wav")).is_err());
        std::fs::write(dir.path().join("junk.wav"), b"RIFF nonsense").unwrap();
        assert!(read_48k_mono(&dir.path().join("junk.wav")).is_err());
    }
}
