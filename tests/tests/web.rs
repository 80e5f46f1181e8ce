//! The browser client (`--web`, docs/web.md) in a real browser: Debian's chromium, headless,
//! driven by tests/web/drive.py through chromium-driver and python3-selenium (no browser
//! download). A web user ("ann", on the node serving --web) and a `hark-node --json` user
//! ("bob") exchange messages both ways in lobby and in a private room joined by invite, and the
//! web user's messages reach bob signed and attributed to her; push-to-talk from the page (a
//! fake microphone fed speech) arrives at bob's `--voice-out` as a recording as long as the
//! press and loud like speech; bob's talk-spurt plays in the page (its analyser sees signal);
//! without a join link, or with a bad or used one, the page gets no data and says why. The
//! test also takes the screenshots of docs/web/ (into target/tmp/web-screenshots/; with
//! `HARK_UPDATE_SCREENSHOTS=1` into docs/web/ itself) and records page weight and time to first
//! message in target/tmp/web-figures.json.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hark_node::voice::wav::read_48k_mono;
use hark_node::Event;
use hark_tests::process::{hark_node_bin, DELIVERY};
use hark_tests::NodeProcess;
use serde_json::{json, Value};

/// The whole browser script, on a loaded two-core machine.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(300);
/// How long the test holds the talk button.
const HOLD_S: f64 = 2.5;
const PYTHON: &str = "/usr/bin/python3";

/// Say loudly that a test could not run: on stderr, and in a file `make test` prints at the end.
fn skip(test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}");
    eprintln!("\n*** {line} ***\n");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.txt");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{line}");
    }
}

/// Why the browser cannot run here, if it cannot.
fn browser_missing() -> Option<String> {
    for path in ["/usr/bin/chromium", "/usr/bin/chromedriver", PYTHON] {
        if !Path::new(path).exists() {
            return Some(format!(
                "{path} is missing (make test installs chromium chromium-driver python3-selenium)"
            ));
        }
    }
    let selenium = Command::new(PYTHON)
        .args(["-c", "import selenium"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    (!selenium).then(|| "python3-selenium is missing (make test installs it)".to_owned())
}

/// Speech made with espeak-ng, as 48 kHz mono 16-bit (what a microphone would give).
fn speech(dir: &Path, name: &str, text: &str) -> PathBuf {
    let raw = dir.join(format!("{name}-raw.wav"));
    let path = dir.join(format!("{name}.wav"));
    let ok = Command::new("espeak-ng")
        .arg("-w")
        .arg(&raw)
        .arg(text)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "espeak-ng failed (make test installs it)");
    let ok = Command::new("sox")
        .arg(&raw)
        .args(["-r", "48000", "-c", "1", "-b", "16"])
        .arg(&path)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "sox failed (make test installs it)");
    path
}

fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// Wait for a file the node writes, and read it.
fn wait_file(path: &Path, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.trim().is_empty() {
                return text.trim().to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run drive.py with a deadline; its last stdout line is the results.
fn drive(plan: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/drive.py");
    let mut child = Command::new(PYTHON)
        .arg(&script)
        .arg(plan)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let deadline = Instant::now() + SCRIPT_DEADLINE;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("drive.py took longer than {SCRIPT_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines = out.join().unwrap_or_default();
    let errors = err.join().unwrap_or_default();
    assert!(
        status.success(),
        "drive.py failed ({status}):\n{}",
        errors
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let last = lines.last().expect("drive.py printed its results");
    serde_json::from_str(last).expect("drive.py's results are JSON")
}

fn web_invite(data_dir: &Path) -> String {
    let out = Command::new(hark_node_bin())
        .arg("web-invite")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--no-qr")
        .output()
        .expect("hark-node web-invite runs");
    assert!(
        out.status.success(),
        "web-invite failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The message event bob's node printed for the web user's text (node-side attribution).
fn bob_saw<'a>(bob: &'a NodeProcess, text: &str) -> &'a Event {
    bob.seen
        .iter()
        .find(|e| matches!(e, Event::Message { text: t, .. } if t == text))
        .unwrap_or_else(|| panic!("bob's --json output has no message {text:?}"))
}

#[test]
fn a_browser_user_chats_talks_and_listens_with_a_json_node() {
    if let Some(why) = browser_missing() {
        return skip(
            "web::a_browser_user_chats_talks_and_listens_with_a_json_node",
            &why,
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mic = speech(
        dir.path(),
        "mic",
        "Pump four is running hot. Send someone down to sector four, and bring the spare seal.",
    );
    let bob_wav = speech(
        dir.path(),
        "bob",
        "This is bob on the bridge. All stations, radio check.",
    );
    let voice_out = dir.path().join("bob-voice");
    let voice_out_arg = voice_out.display().to_string();

    let mut bob = NodeProcess::start("bob", &["--voice-out", &voice_out_arg]);
    let mut web = NodeProcess::start("webnode", &["--peer", &bob.addr(), "--web", "127.0.0.1:0"]);
    let (pb, pw) = (bob.peer_id.clone(), web.peer_id.clone());
    bob.wait_presence("lobby", &[&pw], DELIVERY);
    web.wait_presence("lobby", &[&pb], DELIVERY);

    // Something in the history before the web user comes.
    let history_text = "history from bob before ann came";
    bob.send(json!({"cmd": "send", "room": "lobby", "text": history_text}));
    web.expect(
        "bob's first message",
        DELIVERY,
        |e| matches!(e, Event::Message { text, .. } if text == history_text),
    );
    // Bob's private room; its invite reaches ann out of band (here: the plan).
    bob.send(json!({"cmd": "create", "room": "ops"}));
    let Event::Created { invite, .. } =
        bob.expect("created", DELIVERY, |e| matches!(e, Event::Created { .. }))
    else {
        unreachable!()
    };

    let url = wait_file(&web.data_dir().join("web/url"), DELIVERY);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let join_link = web_invite(&web.data_dir());
    assert!(
        join_link.starts_with(&format!("{url}#join=")),
        "{join_link}"
    );
    // The docs' screenshots are replaced only when asked: a test run leaves the tree as it was.
    let screenshots = if std::env::var_os("HARK_UPDATE_SCREENSHOTS").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/web")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots")
    };
    std::fs::create_dir_all(&screenshots).unwrap();
    let plan = json!({
        "url": url,
        "join_link": join_link,
        "bad_link": format!("{url}#join={}", "ab".repeat(32)),
        "ops_invite": invite,
        "history_text": history_text,
        "bob_socket": bob.data_dir().join("control.sock"),
        "bob_wav": bob_wav,
        "mic_wav": mic,
        "hold_s": HOLD_S,
        "screenshots": screenshots,
        "tmp": dir.path(),
    });
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, plan.to_string()).unwrap();

    let results = drive(&plan_path);
    eprintln!("drive.py results: {results:#}");

    // Without a link: no data, and the page says how to get in.
    assert!(results["no_link_message"]
        .as_str()
        .unwrap()
        .contains("join link"));
    assert_eq!(results["no_link_api"], json!([401, 401, 401, 401]));
    assert!(results["bad_link_message"]
        .as_str()
        .unwrap()
        .contains("not valid"));
    assert!(results["reused_link_message"]
        .as_str()
        .unwrap()
        .contains("already used"));
    assert_eq!(results["reused_link_api"], 401);
    assert_eq!(results["secure_context"], true);

    // A private room is not read before its invite.
    assert_eq!(results["private_before_invite"], 404);
    assert_eq!(
        results["caught_up_after_offline"], true,
        "what came while the page was offline is shown once it is back"
    );

    // Messages, both ways, attributed to the web user on bob's node.
    let ann = results["web_peer_id"].as_str().unwrap().to_owned();
    assert_ne!(ann, pw, "the web user has her own identity, not the node's");
    assert_eq!(results["web_name"], "ann");
    bob.drain();
    for (text, room, kind) in [
        ("hello from ann", "lobby", "text"),
        ("waves", "lobby", "me"),
        ("secret plan from ann", "ops", "text"),
    ] {
        let Event::Message {
            from,
            name,
            room: r,
            kind: k,
            ..
        } = bob_saw(&bob, text)
        else {
            unreachable!()
        };
        assert_eq!(
            (from.as_str(), name.as_str()),
            (ann.as_str(), "ann"),
            "{text}"
        );
        assert_eq!((r.as_str(), k.as_str()), (room, kind), "{text}");
    }
    // The history bob keeps says the same (the record is signed by ann's key).
    let stored = bob.history("ops", 10);
    assert!(stored
        .iter()
        .any(|m| m.text == "secret plan from ann" && m.from == ann && m.name == "ann"));

    // Push-to-talk from the page: as long as the press, and speech, not silence.
    let Press {
        samples,
        wav_ms,
        held_ms,
        ..
    } = recording_of_one_press(&results, "");
    let loudness = rms(&samples);
    let loud_windows = samples.chunks(480).filter(|w| rms(w) > 500.0).count() as f64
        / samples.chunks(480).count().max(1) as f64;
    assert!(
        loudness > 300.0 && loud_windows > 0.2,
        "the recording is not speech: RMS {loudness:.0}, {:.0} % of 10 ms windows loud",
        loud_windows * 100.0
    );

    // The PCM fallback (no WebCodecs' Opus): the node encodes, the length holds too.
    let samples = recording_of_one_press(&results, "_pcm").samples;
    assert!(
        rms(&samples) > 300.0,
        "PCM: the recording is not speech: RMS {:.0}",
        rms(&samples)
    );

    // A press during which the whole browser was stopped for 450 ms (a phone stalling for
    // longer than bob's end timeout): the rest of it reached bob as a second part.
    let Press { samples, parts, .. } = recording_of_one_press(&results, "_stalled");
    assert!(parts >= 2, "the stall did not end the spurt at bob");
    assert!(rms(&samples) > 300.0, "the stalled press is not speech");

    // A refused microphone is said plainly.
    assert_eq!(results["mic_refused"][0], false);
    assert!(results["mic_refused"][1]
        .as_str()
        .unwrap()
        .contains("refused"));

    // Bob's talk-spurt played in the page: what the serving node played out of it (its
    // `voice_end`, 2 pieces of 10 ms a frame) reached the page, and it was not silence.
    let rx = &results["rx"];
    web.drain();
    let played = web
        .seen
        .iter()
        .find_map(|e| match e {
            Event::VoiceEnd { from, frames, .. } if *from == pb => Some(*frames),
            _ => None,
        })
        .expect("the web node played bob's spurt");
    let chunks = rx["rxChunks"].as_u64().unwrap();
    assert!(
        played > 25,
        "the web node played only {played} frames of bob's spurt"
    );
    assert!(
        chunks as f64 >= 0.8 * 2.0 * played as f64,
        "the page got {chunks} pieces of 10 ms of a spurt the node played as {played} frames: {rx}"
    );
    assert!(rx["rxPeak"].as_f64().unwrap() > 0.02, "{rx}");
    assert!(results["talking_text"].as_str().unwrap().contains("bob"));

    for shot in results["screenshots"].as_array().unwrap() {
        let size = std::fs::metadata(shot.as_str().unwrap())
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 10_000, "{shot} is missing or empty");
    }

    let figures = json!({
        "page_bytes": results["page_bytes"],
        "join_to_first_message_ms": results["join_to_first_message_ms"],
        "load_to_first_message_ms": results["load_to_first_message_ms"],
        "codec": results["codec"],
        "ptt_held_ms": held_ms,
        "recorded_ms": wav_ms,
        "recorded_rms": loudness,
        "rx_peak": rx["rxPeak"],
    });
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let _ = std::fs::write(tmp.join("web-figures.json"), figures.to_string());
    eprintln!("web figures: {figures}");
}

/// A page's frames are 20 ms.
const PAGE_FRAME_MS: f64 = 20.0;

/// What bob recorded of one press of the page's talk button.
struct Press {
    samples: Vec<i16>,
    wav_ms: f64,
    /// How long the button was held.
    held_ms: f64,
    /// The spurt's parts at bob (more than one when the page stalled mid-press).
    parts: usize,
}

/// What bob recorded of one press of the page's talk button (`suffix` picks the press),
/// checked to be as long as the press.
fn recording_of_one_press(results: &Value, suffix: &str) -> Press {
    let held_ms = results[format!("held_ms{suffix}")].as_f64().unwrap();
    let parts = results[format!("bob_voice_ends{suffix}")]
        .as_array()
        .expect("bob's voice_end events for the press");
    let sent = results[format!("ptt_frames_sent{suffix}")]
        .as_u64()
        .unwrap();
    let mut samples = Vec::new();
    let mut received = 0;
    for end in parts {
        assert_eq!(end["room"], "lobby");
        let wav = end["wav"].as_str().expect("bob recorded the spurt");
        samples.extend(read_48k_mono(Path::new(wav)).unwrap());
        received += end["received"].as_u64().unwrap();
    }
    let wav_ms = samples.len() as f64 / 48.0;
    let what = format!(
        "press{suffix}: recorded {wav_ms:.0} ms in {} part(s) for a press of {held_ms:.0} ms \
         ({sent} frames sent, {received} received, codec {})",
        parts.len(),
        results["codec"]
    );
    if parts.len() == 1 {
        assert!((wav_ms - held_ms).abs() <= 100.0, "{what}");
    } else {
        // The page stalled (a busy machine) for longer than bob's end timeout: the rest of
        // the press came as a second part, and what the page did not capture during the
        // stall is in no recording. Every frame it sent must be.
        assert!(received >= sent, "{what}");
        assert!(wav_ms >= sent as f64 * PAGE_FRAME_MS - 100.0, "{what}");
    }
    Press {
        samples,
        wav_ms,
        held_ms,
        parts: parts.len(),
    }
}

#[test]
fn the_web_option_comes_from_any_source_and_web_invite_needs_a_running_web_node() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = Command::new(hark_node_bin());
        command
            .args(args)
            .env_remove("HARK_CONFIG")
            .env("XDG_CONFIG_HOME", dir.path());
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().expect("hark-node runs")
    };
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "web = \"0.0.0.0:8443\"\n").unwrap();
    let out = run(
        &["--config", config.to_str().unwrap(), "--print-config"],
        &[],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("web = \"0.0.0.0:8443\""));
    let out = run(&["--print-config"], &[("HARK_WEB", "127.0.0.1:9443")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("web = \"127.0.0.1:9443\""),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["--print-config"], &[("HARK_WEB", "everywhere")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HARK_WEB"));

    // No node on the data dir: a one-line reason, exit 2.
    let data = dir.path().join("data");
    let out = run(&["web-invite", "--data-dir", data.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no node running"));
    // A node without --web (a URL left by a killed one does not count): no link, the reason.
    std::fs::create_dir_all(data.join("web")).unwrap();
    std::fs::write(data.join("web/url"), "https://127.0.0.1:1/").unwrap();
    let node = NodeProcess::start_with_dir("plain", data.clone(), "/ip4/127.0.0.1/tcp/0", &[]);
    let out = run(&["web-invite", "--data-dir", data.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--web"));
    drop(node);
}
