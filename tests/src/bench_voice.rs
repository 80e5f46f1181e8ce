//! The voice benchmark scenario (SPEC §5): three nodes on loopback, one talker, two listeners
//! that drop 0, 5 or 10 % of the frames they receive (the node's test hook; this kernel has no
//! netem). From each listener's `voice_end`: capture-to-playout latency p50/p99, lost, FEC
//! recovered and concealed frames. Plus the codec's CPU per talker, measured in-process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hark_node::voice::codec::{VoiceDecoder, VoiceEncoder};
use hark_node::voice::wav::read_48k_mono;
use hark_node::Event;
use serde_json::{json, Value};

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
    let mut listeners = [
        NodeProcess::start_with_env("listener1", &env, &["--peer", &talker.addr()]),
        NodeProcess::start_with_env("listener2", &env, &["--peer", &talker.addr()]),
    ];
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
        }));
    }
    Ok(out)
}

/// Encode and decode CPU per 20 ms frame of speech, µs, and the encoder's look-ahead.
pub fn codec_cost(dir: &Path) -> Result<Value> {
    let pcm = read_48k_mono(&dir.join("speech.wav")).context("speech.wav")?;
    let mut encoder = VoiceEncoder::new(20).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut decoder = VoiceDecoder::new().map_err(|e| anyhow::anyhow!("{e}"))?;
    let frames: Vec<&[i16]> = pcm.chunks_exact(960).collect();
    let started = Instant::now();
    let packets: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| encoder.encode(f).map_err(|e| anyhow::anyhow!("{e}")))
        .collect::<Result<_>>()?;
    let encode = started.elapsed();
    let mut buf = vec![0i16; 960];
    let started = Instant::now();
    for p in &packets {
        decoder.decode(p, &mut buf);
    }
    let decode = started.elapsed();
    let n = packets.len().max(1) as f64;
    let encode_us = encode.as_secs_f64() * 1e6 / n;
    let decode_us = decode.as_secs_f64() * 1e6 / n;
    let bytes = packets.iter().map(Vec::len).sum::<usize>() as f64 / n;
    Ok(json!({
        "encode_us_per_frame": encode_us, "decode_us_per_frame": decode_us,
        "cpu_percent_per_talker": (encode_us + decode_us) / 20_000.0 * 100.0,
        "opus_bytes_per_frame": bytes, "lookahead_ms": encoder.lookahead() as f64 / 48.0,
    }))
}
