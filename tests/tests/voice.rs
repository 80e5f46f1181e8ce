//! Push-to-talk voice end to end (SPEC §3 "Voice"): speech made with espeak-ng is played into a
//! room with `voice`, received by other nodes with `--voice-out`, directly and through a relay,
//! and with 10 % of frames lost. The received recording must be as long as the input (within one
//! frame) and must sound like it.
//!
//! "Sounds like it" is measured on loudness envelopes: the RMS of every 10 ms window of both
//! signals, compared by Pearson correlation at the best lag within ±100 ms (Opus look-ahead and
//! resampling shift the signal by a few ms). Speech envelopes carry the syllable rhythm, which
//! a 24 kbit/s codec keeps and a different utterance does not share: the test also checks that
//! a different sentence scores well below the thresholds, so they discriminate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hark_node::voice::wav::read_48k_mono;
use hark_node::Event;
use hark_tests::process::DELIVERY;
use hark_tests::NodeProcess;
use serde_json::json;

/// One 20 ms frame at 48 kHz.
const FRAME: usize = 960;
/// Clean speech through the codec correlates far above this (measured ≈ 0.97–0.99).
const CLEAN_THRESHOLD: f64 = 0.85;
/// With 10 % of frames lost and concealed (measured ≈ 0.85–0.95).
const LOSSY_THRESHOLD: f64 = 0.65;
/// A spurt of a few seconds, played in real time, plus buffering: generous on a loaded machine.
const SPURT: Duration = Duration::from_secs(30);

fn speech(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("espeak-ng")
        .arg("-w")
        .arg(&path)
        .arg(text)
        .status()
        .expect("espeak-ng is installed (make test installs it)");
    assert!(status.success(), "espeak-ng failed");
    path
}

/// RMS of every 10 ms window.
fn envelope(samples: &[i16]) -> Vec<f64> {
    samples
        .chunks(480)
        .map(|w| (w.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt())
        .collect()
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 10 {
        return 0.0;
    }
    let (a, b) = (&a[..n], &b[..n]);
    let mean = |x: &[f64]| x.iter().sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    if va == 0.0 || vb == 0.0 {
        return 0.0;
    }
    cov / (va * vb).sqrt()
}

/// Envelope correlation at the best lag within ±100 ms (10 windows).
fn similarity(reference: &[i16], received: &[i16]) -> f64 {
    let (r, x) = (envelope(reference), envelope(received));
    (0..=10)
        .flat_map(|lag| [pearson(&r[lag..], &x), pearson(&r, &x[lag.min(x.len())..])])
        .fold(f64::MIN, f64::max)
}

/// Wait for this node's `voice_end` and return it with its recording.
fn received_spurt(node: &mut NodeProcess, from: &str) -> (Event, Vec<i16>) {
    let is_end = |e: &Event| matches!(e, Event::VoiceEnd { from: f, .. } if f == from);
    // Concurrent talkers end in any order: an end already read counts.
    node.drain();
    let end = match node.seen.iter().find(|e| is_end(e)).cloned() {
        Some(end) => end,
        None => node.expect("voice_end", SPURT, is_end),
    };
    let Event::VoiceEnd { wav: Some(wav), .. } = &end else {
        panic!("{}: voice_end without a recording: {end:?}", node.name);
    };
    let samples = read_48k_mono(Path::new(wav)).expect("the recording reads");
    (end, samples)
}

fn voice_out(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

#[test]
fn speech_arrives_whole_and_recognisable_directly_and_through_a_relay() {
    let dir = tempfile::tempdir().unwrap();
    let input = speech(
        dir.path(),
        "in.wav",
        "Pump four is running hot. Send someone down to sector four, and bring the spare seal.",
    );
    let reference = read_48k_mono(&input).unwrap();

    // Alice and the relay; Bob and Carol meet Alice; Dave meets only the relay.
    let mut relay = NodeProcess::start("relay", &["--relay"]);
    let mut a = NodeProcess::start("alice", &["--peer", &relay.addr()]);
    let out_b = voice_out(dir.path(), "bob");
    let out_c = voice_out(dir.path(), "carol");
    let out_d = voice_out(dir.path(), "dave");
    let mut b = NodeProcess::start("bob", &["--peer", &a.addr(), "--voice-out", &out_b]);
    let mut c = NodeProcess::start("carol", &["--peer", &a.addr(), "--voice-out", &out_c]);
    let mut d = NodeProcess::start("dave", &["--peer", &relay.addr(), "--voice-out", &out_d]);
    let pa = a.peer_id.clone();
    for node in [&mut b, &mut c, &mut d] {
        node.wait_presence("lobby", &[&pa], DELIVERY);
    }
    relay.drain();

    a.send(json!({"cmd": "voice", "room": "lobby", "wav": input}));
    let sent = a.expect("voice_sent", SPURT, |e| {
        matches!(e, Event::VoiceSent { .. })
    });
    let Event::VoiceSent {
        frames: sent_frames,
        ..
    } = sent
    else {
        unreachable!()
    };
    assert_eq!(sent_frames as usize, reference.len().div_ceil(FRAME));

    for node in [&mut b, &mut c, &mut d] {
        let (end, samples) = received_spurt(node, &pa);
        assert!(
            node.seen
                .iter()
                .any(|e| matches!(e, Event::VoiceStart { from, .. } if *from == pa)),
            "voice_start came first"
        );
        let Event::VoiceEnd {
            frames, lost, name, ..
        } = &end
        else {
            unreachable!()
        };
        assert_eq!(name, "alice");
        let diff = samples.len().abs_diff(reference.len());
        assert!(
            diff <= FRAME,
            "{}: received {} samples for {} sent ({} frames, {lost} lost)",
            node.name,
            samples.len(),
            reference.len(),
            frames
        );
        let score = similarity(&reference, &samples);
        assert!(
            score > CLEAN_THRESHOLD,
            "{}: envelope correlation {score:.3} (lost {lost})",
            node.name
        );
    }

    // The thresholds discriminate: another sentence does not pass for this one.
    let other = read_48k_mono(&speech(
        dir.path(),
        "other.wav",
        "The weather on deck is calm tonight, with a light breeze from the north and clear skies.",
    ))
    .unwrap();
    let unrelated = similarity(&reference, &other);
    assert!(
        unrelated < LOSSY_THRESHOLD,
        "a different sentence scores {unrelated:.3}: the thresholds would not discriminate"
    );
    // Voice is live only: nothing of it is stored as history.
    assert!(b.history("lobby", 10).is_empty());
}

#[test]
fn with_ten_percent_loss_the_spurt_is_complete_concealed_and_still_recognisable() {
    let dir = tempfile::tempdir().unwrap();
    let input = speech(
        dir.path(),
        "in.wav",
        "Fire alarm on deck two. All hands to the muster station, this is not a drill.",
    );
    let reference = read_48k_mono(&input).unwrap();
    let mut a = NodeProcess::start("alice", &[]);
    let out_b = voice_out(dir.path(), "bob");
    let mut b = NodeProcess::start_with_env(
        "bob",
        &[("HARK_VOICE_DROP_PERCENT", "10")],
        &["--peer", &a.addr(), "--voice-out", &out_b],
    );
    let pa = a.peer_id.clone();
    b.wait_presence("lobby", &[&pa], DELIVERY);

    a.send(json!({"cmd": "voice", "room": "lobby", "wav": input}));
    let (end, samples) = received_spurt(&mut b, &pa);
    let Event::VoiceEnd {
        frames,
        lost,
        recovered,
        concealed,
        received,
        ..
    } = end
    else {
        unreachable!()
    };
    let total = reference.len().div_ceil(FRAME) as u32;
    assert!(
        lost >= total / 40 && lost <= total / 4,
        "about a tenth of {total} frames lost: {lost}"
    );
    assert_eq!(
        lost,
        recovered + concealed,
        "every lost frame was rebuilt or concealed"
    );
    assert!(
        received + lost >= total - 1,
        "received {received} + lost {lost} cover the spurt"
    );
    let diff = samples.len().abs_diff(reference.len());
    assert!(
        diff <= FRAME,
        "complete in length: {} samples for {} ({frames} frames)",
        samples.len(),
        reference.len()
    );
    let score = similarity(&reference, &samples);
    assert!(
        score > LOSSY_THRESHOLD,
        "envelope correlation {score:.3} with {lost} lost"
    );
}

#[test]
fn two_people_talking_at_once_are_both_heard() {
    let dir = tempfile::tempdir().unwrap();
    let first = speech(dir.path(), "a.wav", "Bridge to engine room, report status.");
    let second = speech(
        dir.path(),
        "c.wav",
        "Engine room here, all systems nominal.",
    );
    let mut a = NodeProcess::start("alice", &[]);
    let mut c = NodeProcess::start("carol", &["--peer", &a.addr()]);
    let out_b = voice_out(dir.path(), "bob");
    let mut b = NodeProcess::start(
        "bob",
        &[
            "--peer",
            &a.addr(),
            "--peer",
            &c.addr(),
            "--voice-out",
            &out_b,
        ],
    );
    let (pa, pc) = (a.peer_id.clone(), c.peer_id.clone());
    b.wait_presence("lobby", &[&pa, &pc], DELIVERY);

    a.send(json!({"cmd": "voice", "room": "lobby", "wav": first}));
    c.send(json!({"cmd": "voice", "room": "lobby", "wav": second}));
    let (_, from_a) = received_spurt(&mut b, &pa);
    let (_, from_c) = received_spurt(&mut b, &pc);
    let ref_a = read_48k_mono(&first).unwrap();
    let ref_c = read_48k_mono(&second).unwrap();
    assert!(similarity(&ref_a, &from_a) > CLEAN_THRESHOLD);
    assert!(similarity(&ref_c, &from_c) > CLEAN_THRESHOLD);
}

/// A process stopped with SIGSTOP until this is dropped (SIGCONT), even when the test fails.
struct Stopped(i32);

impl Stopped {
    fn now(pid: u32) -> Self {
        let pid = pid as i32;
        // SAFETY: kill(2) with a pid this test started; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0, "SIGSTOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

#[test]
fn a_talker_held_up_mid_spurt_is_heard_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let input = speech(
        dir.path(),
        "in.wav",
        "Crane two is clear. Lower the load slowly, and stop at the first mark.",
    );
    let reference = read_48k_mono(&input).unwrap();
    let mut a = NodeProcess::start("alice", &[]);
    let out_b = voice_out(dir.path(), "bob");
    let mut b = NodeProcess::start("bob", &["--peer", &a.addr(), "--voice-out", &out_b]);
    let pa = a.peer_id.clone();
    b.wait_presence("lobby", &[&pa], DELIVERY);

    // Bob hears the spurt begin; then alice's node is held up for longer than a listener's
    // end timeout (200 ms), as a phone's browser or its Wi-Fi can be while the key is held.
    a.send(json!({"cmd": "voice", "room": "lobby", "wav": input}));
    b.expect(
        "voice_start",
        SPURT,
        |e| matches!(e, Event::VoiceStart { from, .. } if *from == pa),
    );
    {
        let _held_up = Stopped::now(a.pid());
        std::thread::sleep(Duration::from_millis(500));
    }
    let total = reference.len().div_ceil(FRAME) as u32;
    let (mut received, mut parts, mut recording) = (0, 0, Vec::new());
    while received < total {
        let end = b.expect(
            "voice_end of the rest of the spurt",
            SPURT,
            |e| matches!(e, Event::VoiceEnd { from, .. } if *from == pa),
        );
        let Event::VoiceEnd {
            received: r,
            wav: Some(wav),
            ..
        } = end
        else {
            panic!("voice_end without a recording: {end:?}");
        };
        received += r;
        parts += 1;
        recording.extend(read_48k_mono(Path::new(&wav)).expect("the recording reads"));
    }
    assert!(parts >= 2, "the stall did not end the spurt at bob");
    assert_eq!(received, total, "every frame arrived, once");
    let diff = recording.len().abs_diff(reference.len());
    assert!(
        diff <= 2 * FRAME,
        "the parts hold it all: {} samples for {}",
        recording.len(),
        reference.len()
    );
    let score = similarity(&reference, &recording);
    assert!(score > LOSSY_THRESHOLD, "envelope correlation {score:.3}");
}

#[test]
fn a_bad_wav_is_a_one_line_error_and_the_node_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wav");
    std::fs::write(&junk, b"RIFF this is no wave").unwrap();
    let mut a = NodeProcess::start("alice", &[]);
    for wav in [junk, dir.path().join("missing.wav")] {
        a.send(json!({"cmd": "voice", "room": "lobby", "wav": wav}));
        let error = a.expect("error", DELIVERY, |e| matches!(e, Event::Error { .. }));
        let Event::Error { code, detail } = error else {
            unreachable!()
        };
        assert_eq!(code, "voice_failed");
        assert!(!detail.contains('\n') && detail.contains("wav"), "{detail}");
    }
    a.send(json!({"cmd": "voice", "room": "nowhere", "wav": "x.wav"}));
    a.expect(
        "not_joined",
        DELIVERY,
        |e| matches!(e, Event::Error { code, .. } if code == "not_joined"),
    );
    assert!(a.is_running());
}
