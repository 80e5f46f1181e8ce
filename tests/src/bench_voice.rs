//! The voice benchmark scenario (SPEC §5): three nodes on loopback, one talker, two listeners
//! that drop 0, 5 or 10 % of the frames they receive (the node's test hook; this kernel has no
//! netem). From each listener's `voice_end`: capture-to-playout latency p50/p99, lost, FEC
//! recovered and concealed frames, and PESQ-WB of each listener's recording (`--voice-out`)
//! when the bench's PESQ is installed (`hark_tests::bench_quality`). Plus the codec's CPU per
//! talker, measured in-process. The talker has heard no voice before, so it plans its FEC for
//! the default 10 % (`voice::codec::fec_loss_percent`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hark_node::voice::codec::{DecoderSettings, EncoderSettings, VoiceDecoder, VoiceEncoder};
use hark_node::voice::wav::read_48k_mono;
use hark_node::Event;
use serde_json::{json, Value};

use crate::bench_quality::{pesq_scores, to_16k};
use crate::process::DELIVERY;
use crate::NodeProcess;

const SENTENCE: &str = "Bridge to engine room. Pump four is running hot, send someone down to \
sector four with the spare seal, and report back when the pressure is normal again.";

/// The scenario's speech, `dir/speech.wav` (espeak-ng's 22.05 kHz), made once.
pub fn speech_wav(dir: &Path) -> Result<PathBuf> {
    let wav = dir.join("speech.wav");
    if !wav.exists() {
        let status = Command::new("espeak-ng")
            .arg("-w")
            .arg(&wav)
            .arg(SENTENCE)
            .status()
            .context("espeak-ng (make bench installs it)")?;
        if !status.success() {
            bail!("espeak-ng failed");
        }
    }
    Ok(wav)
}

/// One run at `loss_percent`: returns one JSON object per listener.
pub fn voice_run(dir: &Path, loss_percent: u8) -> Result<Vec<Value>> {
    let wav = speech_wav(dir)?;
    let mut talker = NodeProcess::start("talker", &[]);
    let loss = loss_percent.to_string();
    let env = [("HARK_VOICE_DROP_PERCENT", loss.as_str())];
    let recordings = dir.join(format!("recordings-{loss_percent}"));
    std::fs::create_dir_all(&recordings)?;
    let listener = |name: &str| {
        let out = recordings.join(name);
        std::fs::create_dir_all(&out).map(|()| {
            let out = out.display().to_string();
            NodeProcess::start_with_env(
                name,
                &env,
                &["--peer", &talker.addr(), "--voice-out", &out],
            )
        })
    };
    let mut listeners = [listener("listener1")?, listener("listener2")?];
    let from = talker.peer_id.clone();
    for node in listeners.iter_mut() {
        node.wait_presence("lobby", &[&from], DELIVERY);
    }
    talker.send(json!({"cmd": "voice", "room": "lobby", "wav": wav}));
    let mut out = Vec::new();
    for node in listeners.iter_mut() {
        let end = node
            .wait_for(Duration::from_secs(60), |e| {
                matches!(e, Event::VoiceEnd { .. })
            })
            .with_context(|| format!("{}: no voice_end", node.name))?;
        let Event::VoiceEnd {
            frames,
            lost,
            received,
            recovered,
            concealed,
            late,
            latency_p50_ms,
            latency_p99_ms,
            wav: recording,
            ..
        } = end
        else {
            bail!("not a voice_end");
        };
        out.push(json!({
            "scenario": "voice", "loss_percent": loss_percent, "listener": node.name,
            "frames": frames, "received": received, "lost": lost, "recovered": recovered,
            "concealed": concealed, "late": late,
            "latency_ms_p50": latency_p50_ms, "latency_ms_p99": latency_p99_ms,
            "pesq_wb": recording_pesq(dir, &wav, recording.as_deref(), &node.name, loss_percent),
        }));
    }
    Ok(out)
}

/// PESQ-WB of a listener's recording against the speech sent, or null (with a note on
/// stderr) when there is no recording or no PESQ here.
fn recording_pesq(
    dir: &Path,
    speech: &Path,
    recording: Option<&str>,
    listener: &str,
    loss_percent: u8,
) -> Value {
    let score = || -> Result<f64> {
        let recording = recording.context("the listener wrote no recording")?;
        let reference = dir.join("reference-16k.wav");
        if !reference.exists() {
            to_16k(speech, &reference)?;
        }
        let scored = dir.join(format!("{listener}-{loss_percent}-16k.wav"));
        to_16k(Path::new(recording), &scored)?;
        let scores = pesq_scores(dir, &reference, &[scored])?;
        scores.first().copied().context("no score")
    };
    match score() {
        Ok(score) => json!(score),
        Err(e) => {
            eprintln!("  {listener}: no PESQ: {e:#}");
            Value::Null
        }
    }
}

/// Encode and decode CPU per 20 ms frame of speech, µs, and the encoder's look-ahead, with
/// today's settings (the top-level keys) and with Hark's settings before 2026-12-02
/// (`before`). `conceal_us` is the time to conceal a lost frame, `rebuild_us` to rebuild one
/// from the next packet (in-band FEC, or DRED where the packet has no FEC for it).
pub fn codec_cost(dir: &Path) -> Result<Value> {
    let pcm = read_48k_mono(&dir.join("speech.wav")).context("speech.wav")?;
    let mut after = codec_cost_with(&pcm, EncoderSettings::default(), DecoderSettings::default())?;
    let before = codec_cost_with(&pcm, EncoderSettings::LEGACY, DecoderSettings::LEGACY)?;
    if let Some(object) = after.as_object_mut() {
        object.insert("before".into(), before);
    }
    Ok(after)
}

fn codec_cost_with(pcm: &[i16], enc: EncoderSettings, dec: DecoderSettings) -> Result<Value> {
    let codec = |e: hark_node::voice::codec::CodecError| anyhow::anyhow!("{e}");
    let mut encoder = VoiceEncoder::with_settings(20, enc).map_err(codec)?;
    let mut decoder = VoiceDecoder::with_settings(dec).map_err(codec)?;
    let frames: Vec<&[i16]> = pcm.chunks_exact(960).collect();
    let started = Instant::now();
    let packets: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| encoder.encode(f).map_err(codec))
        .collect::<Result<_>>()?;
    let encode = started.elapsed();
    let mut buf = vec![0i16; 960];
    let started = Instant::now();
    for p in &packets {
        decoder.decode(p, &mut buf);
    }
    let decode = started.elapsed();
    // Every 10th frame lost, concealed; then every 10th rebuilt from the one after it. Only
    // the repairs are timed.
    let repair_us = |rebuild: bool| -> Result<f64> {
        let mut decoder = VoiceDecoder::with_settings(dec).map_err(codec)?;
        let mut out = vec![0i16; 960];
        let (mut spent, mut n) = (Duration::ZERO, 0u32);
        for (i, p) in packets.iter().enumerate() {
            match packets.get(i + 1) {
                Some(next) if i % 10 == 5 => {
                    let started = Instant::now();
                    if rebuild {
                        decoder.recover(next, 1, &mut out);
                    } else {
                        decoder.conceal(&mut out);
                    }
                    spent += started.elapsed();
                    n += 1;
                }
                _ => {
                    decoder.decode(p, &mut out);
                }
            }
        }
        Ok(spent.as_secs_f64() * 1e6 / f64::from(n.max(1)))
    };
    let conceal_us = repair_us(false)?;
    let rebuild_us = repair_us(true)?;
    let n = packets.len().max(1) as f64;
    let encode_us = encode.as_secs_f64() * 1e6 / n;
    let decode_us = decode.as_secs_f64() * 1e6 / n;
    let bytes = packets.iter().map(Vec::len).sum::<usize>() as f64 / n;
    Ok(json!({
        "bitrate": enc.bitrate, "fec_planned_percent": enc.loss_percent,
        "decoder_complexity": dec.complexity, "dred": dec.dred,
        "encode_us_per_frame": encode_us, "decode_us_per_frame": decode_us,
        "conceal_us": conceal_us, "rebuild_us": rebuild_us,
        "cpu_percent_per_talker": (encode_us + decode_us) / 20_000.0 * 100.0,
        "opus_bytes_per_frame": bytes, "lookahead_ms": encoder.lookahead() as f64 / 48.0,
    }))
}
