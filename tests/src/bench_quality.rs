//! The voice quality scenario (`hark-bench quality`, part of `make bench`): how speech sounds
//! after Hark's voice pipeline at 0, 5, 10 and 20 % loss, scored with ITU-T P.862 wideband
//! (PESQ-WB, PyPI `pesq`, which `make bench` installs into `target/pesq-venv`).
//!
//! The speech is an espeak-ng sentence (the voice scenario's). Each run sends it through the
//! node's own code: [`VoiceEncoder`] with the talker's settings, every frame a [`VoiceFrame`]
//! encoded and decoded as on the wire, a seeded random share of frames dropped (as the node's
//! `HARK_VOICE_DROP_PERCENT` hook drops received frames), arrivals 1–3 ms after capture, then
//! the playout task's [`SpurtPlayer`] (jitter buffer, decoder, FEC / DRED / PLC) on a virtual
//! 10 ms tick. The spurt as played is written as WAV, resampled to 16 kHz with sox, and scored
//! against the original. Variants run side by side in one process: Hark's settings before
//! 2026-12-02 and each step to today's, so that every step's gain is measured on the same
//! loss patterns. Talkers plan their FEC from the loss they heard (`voice::loss`): here the
//! meter hears one earlier spurt at the same loss first, with another seed.
//!
//! The reference is the same speech through plain Opus: `opusenc` (Debian `opus-tools`) at 24,
//! 32 and 48 kbit/s with 20 ms frames, decoded by `opusdec`, no loss.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use hark_node::voice::codec::{
    fec_loss_percent, frame_samples, DecoderSettings, EncoderSettings, VoiceEncoder,
    DEEP_PLC_COMPLEXITY, DEFAULT_BITRATE, LEGACY_BITRATE, LEGACY_LOSS_PERCENT, NOLACE_COMPLEXITY,
};
use hark_node::voice::loss::LossMeter;
use hark_node::voice::receiver::{SpurtPlayer, TICK_MS, TICK_SAMPLES};
use hark_node::voice::wav::{read_48k_mono, write_48k_mono};
use hark_proto::VoiceFrame;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Losses measured, percent of frames.
pub const LOSSES: [u8; 4] = [0, 5, 10, 20];
/// Loss patterns per loss (seeds 1..=N): one 8 s sentence is short, so each figure is a mean.
pub const SEEDS: u64 = 5;
const FRAME_MS: u8 = 20;
/// The playout delay of a calm network (jitter::MIN_TARGET_MS).
const TARGET_MS: u64 = 40;

/// What the talker plans its in-band FEC for.
#[derive(Clone, Copy, Debug)]
pub enum Fec {
    /// A fixed loss, percent (Hark before 2026-12-02: 10).
    Fixed(u8),
    /// The loss heard lately (`voice::loss`), as the node does now.
    FromLoss,
}

/// One configuration of talker and listener.
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    pub name: &'static str,
    pub bitrate: i32,
    pub fec: Fec,
    pub dred: bool,
    pub decoder: DecoderSettings,
}

/// Hark before 2026-12-02, each step since, and today's settings (the last; a test checks that
/// they are the node's defaults).
pub const VARIANTS: [Variant; 7] = [
    Variant {
        name: "before: 24 kbit/s, FEC for 10 %, PLC",
        bitrate: LEGACY_BITRATE,
        fec: Fec::Fixed(LEGACY_LOSS_PERCENT),
        dred: false,
        decoder: DecoderSettings::LEGACY,
    },
    Variant {
        name: "48 kbit/s",
        bitrate: DEFAULT_BITRATE,
        fec: Fec::Fixed(LEGACY_LOSS_PERCENT),
        dred: false,
        decoder: DecoderSettings::LEGACY,
    },
    Variant {
        name: "  + FEC planned from the loss heard",
        bitrate: DEFAULT_BITRATE,
        fec: Fec::FromLoss,
        dred: false,
        decoder: DecoderSettings::LEGACY,
    },
    Variant {
        name: "  + deep PLC",
        bitrate: DEFAULT_BITRATE,
        fec: Fec::FromLoss,
        dred: false,
        decoder: DecoderSettings {
            complexity: DEEP_PLC_COMPLEXITY,
            dred: false,
        },
    },
    Variant {
        name: "  + OSCE (NoLACE)",
        bitrate: DEFAULT_BITRATE,
        fec: Fec::FromLoss,
        dred: false,
        decoder: DecoderSettings {
            complexity: NOLACE_COMPLEXITY,
            dred: false,
        },
    },
    Variant {
        name: "today's tools at 32 kbit/s (--voice-bitrate)",
        bitrate: 32_000,
        fec: Fec::FromLoss,
        dred: true,
        decoder: DecoderSettings {
            complexity: NOLACE_COMPLEXITY,
            dred: true,
        },
    },
    Variant {
        name: "after: 48 kbit/s + FEC from loss, OSCE, DRED",
        bitrate: DEFAULT_BITRATE,
        fec: Fec::FromLoss,
        dred: true,
        decoder: DecoderSettings {
            complexity: NOLACE_COMPLEXITY,
            dred: true,
        },
    },
];

/// What one spurt through the pipeline gave.
pub struct Played {
    pub samples: Vec<i16>,
    pub frames: u32,
    pub lost: u32,
    pub recovered: u32,
    pub concealed: u32,
    pub latencies_ms: Vec<u32>,
    pub loss_planned: u8,
    pub bytes_per_frame: f64,
}

/// Send `pcm` (48 kHz mono) through the node's voice code as one talk-spurt, dropping
/// `loss_percent` of the frames with the pattern of `seed`; `meter` is the talker's loss meter
/// (what the listener measured is added to it afterwards, as the node does).
pub fn play_through(
    pcm: &[i16],
    variant: &Variant,
    loss_percent: u8,
    seed: u64,
    meter: &LossMeter,
) -> Result<Played> {
    let loss_planned = match variant.fec {
        Fec::Fixed(percent) => percent,
        Fec::FromLoss => fec_loss_percent(meter.percent()),
    };
    let settings = EncoderSettings {
        bitrate: variant.bitrate,
        loss_percent: loss_planned,
        dred_10ms: if variant.dred {
            EncoderSettings::lan(variant.bitrate, 0).dred_10ms
        } else {
            0
        },
    };
    let mut encoder =
        VoiceEncoder::with_settings(FRAME_MS, settings).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut player = SpurtPlayer::new(FRAME_MS, TARGET_MS, variant.decoder)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut rng = StdRng::seed_from_u64(seed);
    let frame_len = frame_samples(FRAME_MS);
    let start_ms: u64 = 1_000_000;
    // (arrival ms, frame) of every frame that is not dropped.
    let mut arrivals = Vec::new();
    let mut bytes = 0usize;
    let chunks: Vec<&[i16]> = pcm.chunks(frame_len).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut frame_pcm = vec![0i16; frame_len];
        frame_pcm[..chunk.len()].copy_from_slice(chunk);
        let opus = encoder
            .encode(&frame_pcm)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        bytes += opus.len();
        let captured_ms = start_ms + (i as u64 + 1) * u64::from(FRAME_MS);
        let frame = VoiceFrame {
            spurt: 7,
            seq: i as u16,
            captured_ms,
            frame_ms: FRAME_MS,
            last: i + 1 == chunks.len(),
            opus,
        };
        let wire = VoiceFrame::decode(&frame.encode()).context("a frame off the wire")?;
        let arrival = captured_ms + rng.gen_range(1..=3);
        if rng.gen_range(0..100u8) < loss_percent {
            continue;
        }
        arrivals.push((arrival, wire));
    }
    arrivals.sort_by_key(|(at, _)| *at);
    let mut arrivals = arrivals.into_iter().peekable();
    let first = arrivals
        .peek()
        .map(|(at, _)| *at)
        .context("every frame was dropped")?;
    let phase = rng.gen_range(0..TICK_MS);
    let mut tick = first + phase;
    let deadline = start_ms + (chunks.len() as u64 + 100) * u64::from(FRAME_MS);
    let mut now = first;
    let trim = loop {
        if now > deadline {
            bail!("the spurt never ended");
        }
        while let Some((at, _)) = arrivals.peek() {
            if *at > now {
                break;
            }
            if let Some((at, frame)) = arrivals.next() {
                player.push(frame, at);
            }
        }
        if now == tick {
            player.pull(now);
            if let Some(trim) = player.finished() {
                break trim;
            }
            let _ = player.take(TICK_SAMPLES);
            tick += TICK_MS;
        }
        now += 1;
    };
    let stats = player.stats().clone();
    let samples = player.into_recording(trim);
    let frames = (samples.len() / frame_len) as u32;
    meter.record(stats.lost(), frames);
    Ok(Played {
        samples,
        frames,
        lost: stats.lost(),
        recovered: stats.recovered,
        concealed: stats.concealed,
        latencies_ms: stats.latencies_ms,
        loss_planned,
        bytes_per_frame: bytes as f64 / chunks.len().max(1) as f64,
    })
}

/// The Python that scores: `pesq_score.py REF DEG...` prints a JSON list, one PESQ-WB score
/// (or an error text) per degraded file. Both 16 kHz mono 16-bit WAV.
const PESQ_SCRIPT: &str = r#"
import json, sys, wave
import numpy as np
from pesq import pesq

def read(path):
    with wave.open(path, "rb") as w:
        if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: not 16 kHz mono 16-bit")
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32)

ref = read(sys.argv[1])
out = []
for path in sys.argv[2:]:
    try:
        out.append(float(pesq(16000, ref, read(path), "wb")))
    except Exception as e:
        out.append(str(e))
print(json.dumps(out))
"#;

/// The Python with PESQ: `HARK_PESQ_PYTHON`, else `target/pesq-venv/bin/python` (made by
/// `make bench`).
pub fn pesq_python() -> Result<PathBuf> {
    if let Some(python) = std::env::var_os("HARK_PESQ_PYTHON") {
        return Ok(PathBuf::from(python));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pesq-venv/bin/python");
    if venv.exists() {
        return Ok(venv);
    }
    bail!(
        "no PESQ: run `make bench` (it makes target/pesq-venv) or set HARK_PESQ_PYTHON \
         to a python with the PyPI packages pesq and numpy"
    )
}

/// PESQ-WB of each of `degraded` against `reference` (16 kHz mono WAVs).
pub fn pesq_scores(dir: &Path, reference: &Path, degraded: &[PathBuf]) -> Result<Vec<f64>> {
    if degraded.is_empty() {
        return Ok(Vec::new());
    }
    let script = dir.join("pesq_score.py");
    std::fs::write(&script, PESQ_SCRIPT)?;
    let output = Command::new(pesq_python()?)
        .arg(&script)
        .arg(reference)
        .args(degraded)
        .output()
        .context("running the PESQ script")?;
    if !output.status.success() {
        bail!(
            "PESQ failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let scores: Vec<Value> =
        serde_json::from_slice(&output.stdout).context("the PESQ script's output")?;
    scores
        .iter()
        .zip(degraded)
        .map(|(score, path)| {
            score
                .as_f64()
                .with_context(|| format!("PESQ of {}: {score}", path.display()))
        })
        .collect()
}

fn run(program: &str, args: &[&std::ffi::OsStr], hint: &str) -> Result<()> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("{program} ({hint})"))?;
    if !output.status.success() {
        bail!(
            "{program} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// `input` as 16 kHz mono 16-bit, which PESQ-WB scores.
pub fn to_16k(input: &Path, output: &Path) -> Result<()> {
    run(
        "sox",
        &[
            input.as_os_str(),
            "-r".as_ref(),
            "16000".as_ref(),
            "-c".as_ref(),
            "1".as_ref(),
            "-b".as_ref(),
            "16".as_ref(),
            output.as_os_str(),
        ],
        "make bench installs sox",
    )
}

/// The speech through plain Opus at `kbps`: opusenc (20 ms frames) and opusdec, as 16 kHz.
fn plain_opus(dir: &Path, speech: &Path, kbps: u32) -> Result<PathBuf> {
    let opus = dir.join(format!("plain-{kbps}.opus"));
    let decoded = dir.join(format!("plain-{kbps}-48k.wav"));
    let out = dir.join(format!("plain-{kbps}.wav"));
    let hint = "make bench installs opus-tools";
    run(
        "opusenc",
        &[
            "--quiet".as_ref(),
            "--bitrate".as_ref(),
            kbps.to_string().as_ref(),
            "--framesize".as_ref(),
            "20".as_ref(),
            speech.as_os_str(),
            opus.as_os_str(),
        ],
        hint,
    )?;
    run(
        "opusdec",
        &[
            "--quiet".as_ref(),
            "--rate".as_ref(),
            "48000".as_ref(),
            opus.as_os_str(),
            decoded.as_os_str(),
        ],
        hint,
    )?;
    to_16k(&decoded, &out)?;
    Ok(out)
}

fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The whole scenario; `speech` is the espeak-ng WAV (any rate). Returns the JSON written to
/// `voice_quality.json`.
pub fn quality(dir: &Path, speech: &Path) -> Result<Value> {
    let reference = dir.join("reference-16k.wav");
    to_16k(speech, &reference)?;
    let pcm = read_48k_mono(speech).context("the speech")?;
    let mut plain = Vec::new();
    let mut plain_files = Vec::new();
    for kbps in [24u32, 32, 48] {
        match plain_opus(dir, speech, kbps) {
            Ok(file) => {
                plain.push(kbps);
                plain_files.push(file);
            }
            Err(e) => eprintln!("  plain Opus at {kbps} kbit/s: {e:#}"),
        }
    }
    let plain_scores = pesq_scores(dir, &reference, &plain_files)?;
    let references: Vec<Value> = plain
        .iter()
        .zip(&plain_scores)
        .map(|(kbps, score)| json!({"encoder": "opusenc", "kbps": kbps, "pesq_wb": score}))
        .collect();

    let mut rows = Vec::new();
    for (v, variant) in VARIANTS.iter().enumerate() {
        for loss in LOSSES {
            let mut files = Vec::new();
            let mut latencies = Vec::new();
            let (mut lost, mut recovered, mut concealed, mut frames) = (0u32, 0u32, 0u32, 0u32);
            let mut planned = Vec::new();
            let mut bytes = 0.0;
            for seed in 1..=SEEDS {
                // The talker heard one earlier spurt at this loss (another pattern).
                let meter = LossMeter::default();
                play_through(&pcm, variant, loss, 1_000 + seed, &meter)?;
                let played = play_through(&pcm, variant, loss, seed, &meter)?;
                let wav48 = dir.join(format!("v{v}-loss{loss}-seed{seed}-48k.wav"));
                let wav16 = dir.join(format!("v{v}-loss{loss}-seed{seed}.wav"));
                write_48k_mono(&wav48, &played.samples)?;
                to_16k(&wav48, &wav16)?;
                files.push(wav16);
                latencies.extend(played.latencies_ms);
                lost += played.lost;
                recovered += played.recovered;
                concealed += played.concealed;
                frames += played.frames;
                planned.push(played.loss_planned);
                bytes += played.bytes_per_frame / SEEDS as f64;
            }
            let scores = pesq_scores(dir, &reference, &files)?;
            let mean = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
            let min = scores.iter().copied().fold(f64::INFINITY, f64::min);
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            latencies.sort_unstable();
            rows.push(json!({
                "variant": variant.name, "bitrate": variant.bitrate, "loss_percent": loss,
                "pesq_wb_mean": mean, "pesq_wb_min": min, "pesq_wb_max": max,
                "pesq_wb": scores, "seeds": SEEDS,
                "frames": frames, "lost": lost, "recovered": recovered, "concealed": concealed,
                "fec_planned_percent": planned, "opus_bytes_per_frame": bytes,
                "playout_latency_ms_p50": percentile(&latencies, 0.5),
                "playout_latency_ms_p99": percentile(&latencies, 0.99),
            }));
        }
    }
    Ok(json!({
        "measure": "ITU-T P.862 wideband (PyPI pesq), 16 kHz, against the espeak-ng original",
        "frame_ms": FRAME_MS, "seeds_per_loss": SEEDS,
        "references": references, "runs": rows,
    }))
}

/// The table for stdout and docs/performance.md.
pub fn print_table(result: &Value) {
    println!("\nvoice quality (PESQ-WB, espeak-ng speech through the node's voice code, mean of {SEEDS} loss patterns)");
    for r in result["references"].as_array().into_iter().flatten() {
        println!(
            "  reference: plain opusenc at {} kbit/s, no loss: {:.2}",
            r["kbps"],
            r["pesq_wb"].as_f64().unwrap_or(0.0)
        );
    }
    println!(
        "{:<50} {:>7} {:>7} {:>7} {:>7}",
        "variant", "0 %", "5 %", "10 %", "20 %"
    );
    let runs = result["runs"].as_array().cloned().unwrap_or_default();
    for variant in VARIANTS {
        let cells: Vec<String> = LOSSES
            .iter()
            .map(|loss| {
                runs.iter()
                    .find(|r| r["variant"] == variant.name && r["loss_percent"] == u64::from(*loss))
                    .and_then(|r| r["pesq_wb_mean"].as_f64())
                    .map_or("-".to_owned(), |s| format!("{s:.2}"))
            })
            .collect();
        println!(
            "{:<50} {:>7} {:>7} {:>7} {:>7}",
            variant.name, cells[0], cells[1], cells[2], cells[3]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_variant_is_what_the_node_does() {
        let after = VARIANTS[VARIANTS.len() - 1];
        assert_eq!(after.decoder, DecoderSettings::default());
        assert_eq!(after.bitrate, EncoderSettings::default().bitrate);
        assert!(matches!(after.fec, Fec::FromLoss));
        assert_eq!(after.dred, EncoderSettings::default().dred_10ms > 0);
        let before = VARIANTS[0];
        assert_eq!(before.decoder, DecoderSettings::LEGACY);
        assert_eq!(before.bitrate, EncoderSettings::LEGACY.bitrate);
    }

    #[test]
    fn the_pipeline_plays_the_whole_spurt_and_counts_the_loss() {
        let pcm: Vec<i16> = (0..48_000)
            .map(|i| ((i as f32 * 0.05).sin() * 6000.0) as i16)
            .collect();
        let meter = LossMeter::default();
        let after = VARIANTS[VARIANTS.len() - 1];
        let clean = play_through(&pcm, &after, 0, 1, &meter).unwrap();
        assert_eq!(clean.frames, 50);
        assert_eq!(clean.lost, 0);
        assert_eq!(meter.percent(), Some(0.0));
        let lossy = play_through(&pcm, &after, 20, 2, &meter).unwrap();
        assert_eq!(lossy.frames, 50, "losses are filled in, the length kept");
        assert!(lossy.lost > 0 && lossy.lost == lossy.recovered + lossy.concealed);
        assert_eq!(
            lossy.loss_planned, 5,
            "planned from the clean spurt heard before"
        );
        assert!(meter.percent().is_some_and(|p| p > 0.0));
        let p99 = percentile(
            &{
                let mut l = lossy.latencies_ms.clone();
                l.sort_unstable();
                l
            },
            0.99,
        );
        assert!(
            (40..=55).contains(&p99),
            "the jitter buffer's target and a tick: {p99}"
        );
    }
}
