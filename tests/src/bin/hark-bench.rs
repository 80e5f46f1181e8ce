//! `hark-bench`: the benchmark scenarios of SPEC §5 that exist so far.
//!
//! - fan-out: N `hark-node` processes on loopback in one room, one sender at a fixed rate;
//!   delivery ratio, latency p50/p99/max, CPU seconds and peak RSS per node.
//! - start-up: time from launch to `ready`, and idle RSS, for a fresh and a reused data dir,
//!   and for a data dir holding 100k messages (plain node and `--relay`).
//! - history: a `--relay` holding 10k / 100k messages in `lobby` (seeded through the library,
//!   see `hark_tests::seed`); a fresh node joins it: time to the full history, bytes moved.
//! - convergence: two partitions of three nodes write concurrently, then one node of the first
//!   restarts with a link into the second: time until all six hold the same history.
//! - quality: espeak-ng speech through the node's voice code at 0/5/10/20 % loss, scored with
//!   PESQ-WB against plain opusenc; Hark's settings before 2026-12-02 beside today's
//!   (`hark_tests::bench_quality`).
//! - voice: one talker, two listeners dropping 0, 5 and 10 % of frames: capture-to-playout
//!   latency p50/p99, lost, recovered and concealed frames; codec CPU per talker.
//! - scale: N real nodes in one process over the memory transport (`hark_tests::scale`), each
//!   size in a child process of its own: delivery, latency, CPU per message, memory per node.
//!
//! Latency is measured as a bot sees it: from the moment the harness writes the `send` line to
//! the sender's stdin until it reads the `message` line from a receiver's stdout, so it includes
//! JSON handling at both ends. Results go to `target/bench/*.json` and a table on stdout.
//!
//! Usage: `hark-bench [fanout] [startup] [history] [convergence] [--sizes 10,50,200] [--rate 20]
//! [--seconds 10] [--history-sizes 10000,100000] [--runs 3] [--group-messages 200]
//! [--out target/bench] [scale --nodes 100,300,1000 --degree 8 --senders 4 --seed 1
//! --data-root DIR]`; with no scenario named, all of them run. `HARK_NODE_BIN` picks the
//! `hark-node` binary to measure (default: the one next to this binary).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use hark_node::Event;
use hark_tests::pace::{at_rate, parse, unix_nanos};
use hark_tests::process::proc_status_kib;
use hark_tests::seed::{seed_public_room, stored_history};
use hark_tests::NodeProcess;
use rand::seq::SliceRandom;
use serde_json::json;

const USAGE: &str =
    "usage: hark-bench [fanout] [startup] [history] [convergence] [voice] [quality] [--sizes 10,50,200] \
[--rate 20] [--seconds 10] [--history-sizes 10000,100000] [--runs 3] [--group-messages 200] \
[--out target/bench] [scale] [--nodes 100,300,1000] [--degree 8] [--senders 4] [--seed 1] \
[--data-root DIR] [--no-ngircd] [--old-node PATH] [--settle 3]";

struct Options {
    fanout: bool,
    startup: bool,
    history: bool,
    convergence: bool,
    voice: bool,
    quality: bool,
    scale: bool,
    /// `scale-one`: one scale row in this process (what `scale` runs in a child per size).
    scale_one: bool,
    /// Options of the scale scenario; `--rate`/`--seconds` apply to it when given.
    scale_opts: hark_tests::scale::ScaleOptions,
    scale_nodes: Vec<usize>,
    sizes: Vec<usize>,
    rate: u32,
    seconds: u32,
    history_sizes: Vec<usize>,
    runs: usize,
    group_messages: usize,
    out: PathBuf,
    /// fan-out: also run ngircd with as many clients at the same rate (on when ngircd is
    /// installed; `--no-ngircd` turns it off).
    ngircd: bool,
    /// fan-out: also run this `hark-node` (an older build) in the same run (`--old-node`).
    old_node: Option<PathBuf>,
    /// fan-out: seconds of the same traffic before the measured phase (`--settle`), reported
    /// apart: the mesh's first seconds are not what a site that has been up sees.
    settle: u32,
}

fn parse_list(list: Option<String>, what: &str) -> Result<Vec<usize>> {
    let list = list.with_context(|| format!("{what} needs a list like 10,50"))?;
    list.split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .with_context(|| what.to_owned())
}

fn parse_args() -> Result<Options> {
    let mut opts = Options {
        fanout: false,
        startup: false,
        history: false,
        convergence: false,
        voice: false,
        quality: false,
        scale: false,
        scale_one: false,
        scale_opts: hark_tests::scale::ScaleOptions::new(0),
        scale_nodes: vec![100, 300, 1000],
        sizes: vec![10, 50, 200],
        rate: 20,
        seconds: 10,
        history_sizes: vec![10_000, 100_000],
        runs: 3,
        group_messages: 200,
        out: PathBuf::from("target/bench"),
        ngircd: hark_tests::bench_irc::available(),
        old_node: None,
        settle: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "fanout" => opts.fanout = true,
            "startup" => opts.startup = true,
            "history" => opts.history = true,
            "convergence" => opts.convergence = true,
            "voice" => opts.voice = true,
            "quality" => opts.quality = true,
            "scale" => opts.scale = true,
            "scale-one" => opts.scale_one = true,
            "--nodes" => opts.scale_nodes = parse_list(args.next(), "--nodes")?,
            "--degree" => {
                opts.scale_opts.degree = args
                    .next()
                    .context("--degree needs a number")?
                    .parse()
                    .context("--degree")?
            }
            "--senders" => {
                opts.scale_opts.senders = args
                    .next()
                    .context("--senders needs a number")?
                    .parse()
                    .context("--senders")?
            }
            "--seed" => {
                opts.scale_opts.seed = args
                    .next()
                    .context("--seed needs a number")?
                    .parse()
                    .context("--seed")?
            }
            "--data-root" => {
                opts.scale_opts.data_root = Some(PathBuf::from(
                    args.next().context("--data-root needs a directory")?,
                ))
            }
            "--sizes" => opts.sizes = parse_list(args.next(), "--sizes")?,
            "--history-sizes" => opts.history_sizes = parse_list(args.next(), "--history-sizes")?,
            "--rate" => {
                let rate: f64 = args
                    .next()
                    .context("--rate needs a number")?
                    .parse()
                    .context("--rate")?;
                opts.rate = rate.round().max(1.0) as u32;
                opts.scale_opts.rate = rate;
            }
            "--seconds" => {
                let seconds: f64 = args
                    .next()
                    .context("--seconds needs a number")?
                    .parse()
                    .context("--seconds")?;
                opts.seconds = seconds.round().max(1.0) as u32;
                opts.scale_opts.seconds = seconds;
            }
            "--settle" => {
                opts.settle = args
                    .next()
                    .context("--settle needs a number of seconds")?
                    .parse()
                    .context("--settle")?
            }
            "--runs" => {
                opts.runs = args
                    .next()
                    .context("--runs needs a number")?
                    .parse()
                    .context("--runs")?
            }
            "--group-messages" => {
                opts.group_messages = args
                    .next()
                    .context("--group-messages needs a number")?
                    .parse()
                    .context("--group-messages")?
            }
            "--out" => opts.out = PathBuf::from(args.next().context("--out needs a directory")?),
            "--ngircd" => opts.ngircd = true,
            "--no-ngircd" => opts.ngircd = false,
            "--old-node" => {
                opts.old_node = Some(PathBuf::from(
                    args.next().context("--old-node needs a hark-node binary")?,
                ))
            }
            other => bail!("unknown argument {other:?}; {USAGE}"),
        }
    }
    if !opts.fanout
        && !opts.startup
        && !opts.history
        && !opts.convergence
        && !opts.voice
        && !opts.quality
        && !opts.scale
        && !opts.scale_one
    {
        opts.scale = true;
        opts.voice = true;
        opts.quality = true;
        opts.fanout = true;
        opts.startup = true;
        opts.history = true;
        opts.convergence = true;
    }
    opts.runs = opts.runs.max(1);
    Ok(opts)
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(160) {
        Some((cut, _)) => &line[..cut],
        None => line,
    }
}

/// The first few WARN/ERROR lines of a node's log, for an error message.
fn warnings(node: &NodeProcess) -> String {
    let lines: Vec<String> = node
        .stderr()
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .take(3)
        .map(|l| format!("  [{}] {l}", node.name))
        .collect();
    lines.join("\n")
}

fn ms(v: &serde_json::Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(code) => code,
        // One line, never a backtrace (RUST_BACKTRACE may be set for the nodes' sake).
        Err(e) => {
            eprintln!("hark-bench: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> Result<std::process::ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("sim") {
        hark_tests::sim::bench::run(&args[1..], Path::new("target/bench"))?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let opts = parse_args()?;
    if opts.scale_one {
        return scale_one(&opts);
    }
    // Benchmarks measure the node, not its debug logging.
    if std::env::var_os("HARK_TEST_LOG").is_none() {
        std::env::set_var("HARK_TEST_LOG", "warn");
    }
    let out_dir = opts.out.clone();
    std::fs::create_dir_all(&out_dir)?;
    // Node logs of failed runs always go here.
    std::fs::create_dir_all("target/bench")?;
    // A scenario that fails is reported and the others still run; the exit status says so.
    let mut failures: Vec<String> = Vec::new();
    if opts.startup {
        eprintln!("start-up …");
        let result = startup(10)?;
        std::fs::write(
            out_dir.join("startup.json"),
            serde_json::to_string_pretty(&result)?,
        )?;
        println!("\nstart-up (10 runs each; first answer = launch to the answer of a `history` command sent right after `ready`)");
        println!(
            "{:<28} {:>12} {:>12} {:>14} {:>14}",
            "data dir", "ready p50", "ready max", "first answer", "idle RSS p50"
        );
        for (kind, label) in [
            ("fresh", "fresh"),
            ("reused", "reused, 0 msgs"),
            ("reused_100k", "reused, 100k msgs"),
            ("relay_100k", "reused, 100k msgs, --relay"),
        ] {
            let r = &result[kind];
            println!(
                "{:<28} {:>9.1} ms {:>9.1} ms {:>11.1} ms {:>11.1} MB",
                label,
                ms(r, "ready_ms_p50"),
                ms(r, "ready_ms_max"),
                ms(r, "answer_ms_p50"),
                ms(r, "idle_rss_mb_p50")
            );
        }
    }
    if opts.history {
        let mut results = Vec::new();
        for &count in &opts.history_sizes {
            // 1000 messages a day (one shard per day), and the worst case: all in one day.
            // Written by the relay itself, and by a peer that has gone (every signature
            // checked by the joiner, as when a relay hands on someone else's messages).
            let layouts = if count > 1000 {
                vec![(1000, false), (count, false), (1000, true)]
            } else {
                vec![(count, false)]
            };
            for (per_day, foreign) in layouts {
                let by = if foreign { "another peer" } else { "the relay" };
                eprintln!("history: {count} messages, {per_day} per day, by {by} …");
                match history(count, per_day, foreign, opts.runs) {
                    Ok(result) => results.push(result),
                    Err(e) => {
                        eprintln!("  FAILED: {e:#}");
                        failures.push(format!(
                            "history {count} messages, {per_day} per day: {e:#}"
                        ));
                        results.push(json!({"scenario": "history", "messages": count, "per_day": per_day, "foreign_author": foreign, "error": format!("{e:#}")}));
                    }
                }
            }
        }
        std::fs::write(
            out_dir.join("history.json"),
            serde_json::to_string_pretty(&results)?,
        )?;
        println!("\nhistory catch-up (a fresh node joins a --relay over loopback; medians of {} runs, max in brackets; * = written by another peer, every signature checked)", opts.runs);
        println!(
            "{:>8} {:>7} {:>8} {:>17} {:>19} {:>19} {:>10} {:>10} {:>10} {:>10} {:>11}",
            "messages",
            "shards",
            "ready ms",
            "connected ms",
            "synced ms",
            "synced-connect ms",
            "wire MB in",
            "stored MB",
            "CPU join s",
            "wait join s",
            "CPU relay s"
        );
        for r in &results {
            if let Some(error) = r["error"].as_str() {
                println!(
                    "{:>8} {:>7} FAILED: {}",
                    r["messages"],
                    format!("{}/day", r["per_day"]),
                    first_line(error)
                );
                continue;
            }
            let shards = format!(
                "{}{}",
                r["shards"],
                if r["foreign_author"].as_bool() == Some(true) {
                    "*"
                } else {
                    ""
                }
            );
            println!(
                "{:>8} {:>7} {:>8.0} {:>8.0} ({:>6.0}) {:>9.0} ({:>7.0}) {:>9.0} ({:>7.0}) {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>11.2}",
                r["messages"],
                shards,
                ms(r, "ready_ms_p50"),
                ms(r, "connected_ms_p50"),
                ms(r, "connected_ms_max"),
                ms(r, "synced_ms_p50"),
                ms(r, "synced_ms_max"),
                ms(r, "synced_after_connect_ms_p50"),
                ms(r, "synced_after_connect_ms_max"),
                ms(r, "wire_bytes_to_joiner") / 1e6,
                ms(r, "joiner_stored_chunk_bytes") / 1e6,
                ms(r, "cpu_s_joiner_p50"),
                ms(r, "runqueue_wait_s_joiner_p50"),
                ms(r, "cpu_s_relay_p50"),
            );
        }
    }
    if opts.convergence {
        let mut results = Vec::new();
        for run in 0..opts.runs {
            eprintln!("convergence: run {} of {} …", run + 1, opts.runs);
            match convergence(opts.group_messages) {
                Ok(result) => results.push(result),
                Err(e) => {
                    eprintln!("  FAILED: {e:#}");
                    failures.push(format!("convergence run {}: {e:#}", run + 1));
                    results.push(json!({"scenario": "convergence", "error": format!("{e:#}")}));
                }
            }
        }
        std::fs::write(
            out_dir.join("convergence.json"),
            serde_json::to_string_pretty(&results)?,
        )?;
        println!(
            "\nconvergence (2 partitions x 3 nodes, {} messages per partition from 2 writers each; heal = restart one node with a link across)",
            opts.group_messages
        );
        println!(
            "{:>4} {:>14} {:>22} {:>22} {:>10}",
            "run", "ready ms", "last arrival ms", "all equal (poll) ms", "messages"
        );
        for (i, r) in results.iter().enumerate() {
            if let Some(error) = r["error"].as_str() {
                println!("{:>4} FAILED: {}", i + 1, first_line(error));
                continue;
            }
            println!(
                "{:>4} {:>14.0} {:>22.0} {:>22.0} {:>10}",
                i + 1,
                ms(r, "restart_to_ready_ms"),
                ms(r, "converged_by_events_ms"),
                ms(r, "converged_by_poll_ms"),
                r["messages_per_node"]
            );
        }
    }
    if opts.voice {
        let dir = tempfile::tempdir()?;
        let mut results = Vec::new();
        for loss in [0u8, 5, 10] {
            eprintln!("voice: {loss} % loss …");
            match hark_tests::bench_voice::voice_run(dir.path(), loss) {
                Ok(rows) => results.extend(rows),
                Err(e) => {
                    eprintln!("  FAILED: {e:#}");
                    failures.push(format!("voice {loss} %: {e:#}"));
                }
            }
        }
        let codec = hark_tests::bench_voice::codec_cost(dir.path())?;
        std::fs::write(
            out_dir.join("voice.json"),
            serde_json::to_string_pretty(&json!({"listeners": results, "codec": codec}))?,
        )?;
        println!("\nvoice (one talker, two listeners on loopback, espeak-ng speech, 20 ms frames)");
        println!(
            "{:>6} {:>10} {:>7} {:>6} {:>9} {:>9} {:>7} {:>7} {:>7}",
            "loss", "listener", "frames", "lost", "rebuilt", "PLC", "p50 ms", "p99 ms", "PESQ-WB"
        );
        for r in &results {
            let n = |k: &str| r[k].as_u64().unwrap_or(0);
            println!(
                "{:>5}% {:>10} {:>7} {:>6} {:>9} {:>9} {:>7} {:>7} {:>7}",
                n("loss_percent"),
                r["listener"].as_str().unwrap_or(""),
                n("frames"),
                n("lost"),
                n("recovered"),
                n("concealed"),
                n("latency_ms_p50"),
                n("latency_ms_p99"),
                r["pesq_wb"]
                    .as_f64()
                    .map_or("-".to_owned(), |s| format!("{s:.2}"))
            );
        }
        for (label, c) in [("today", &codec), ("before", &codec["before"])] {
            println!(
                "codec per talker, {label} ({} bit/s, decoder complexity {}): encode {:.0} µs + decode {:.0} µs per 20 ms frame = {:.2} % of a core; a lost frame concealed in {:.0} µs, rebuilt in {:.0} µs; {:.0} B per frame; look-ahead {:.1} ms",
                c["bitrate"],
                c["decoder_complexity"],
                c["encode_us_per_frame"].as_f64().unwrap_or(0.0),
                c["decode_us_per_frame"].as_f64().unwrap_or(0.0),
                c["cpu_percent_per_talker"].as_f64().unwrap_or(0.0),
                c["conceal_us"].as_f64().unwrap_or(0.0),
                c["rebuild_us"].as_f64().unwrap_or(0.0),
                c["opus_bytes_per_frame"].as_f64().unwrap_or(0.0),
                c["lookahead_ms"].as_f64().unwrap_or(0.0)
            );
        }
    }
    if opts.quality {
        eprintln!("voice quality: PESQ-WB at 0/5/10/20 % loss …");
        let dir = tempfile::tempdir()?;
        let result = hark_tests::bench_voice::speech_wav(dir.path())
            .and_then(|speech| hark_tests::bench_quality::quality(dir.path(), &speech));
        match result {
            Ok(result) => {
                std::fs::write(
                    out_dir.join("voice_quality.json"),
                    serde_json::to_string_pretty(&result)?,
                )?;
                hark_tests::bench_quality::print_table(&result);
            }
            Err(e) => {
                eprintln!("  FAILED: {e:#}");
                failures.push(format!("voice quality: {e:#}"));
            }
        }
    }
    if opts.fanout {
        fanout_scenario(&opts, &out_dir)?;
    }
    if opts.scale {
        let exe = std::env::current_exe()?;
        let mut rows = Vec::new();
        for &n in &opts.scale_nodes {
            eprintln!("scale: {n} nodes in one process …");
            let mut scale_opts = opts.scale_opts.clone();
            scale_opts.nodes = n;
            match hark_tests::scale::run_in_child(&exe, &scale_opts) {
                Ok(row) => rows.push(row),
                Err(e) => {
                    eprintln!("  FAILED: {e:#}");
                    failures.push(format!("scale {n} nodes: {e:#}"));
                    rows.push(json!({"scenario": "scale", "nodes": n, "error": format!("{e:#}")}));
                }
            }
        }
        std::fs::write(
            out_dir.join("scale.json"),
            serde_json::to_string_pretty(&rows)?,
        )?;
        hark_tests::scale::print_table(&rows);
    }
    println!("\nresults written to {}/", out_dir.display());
    if !failures.is_empty() {
        println!("\n{} scenario(s) FAILED:", failures.len());
        for f in &failures {
            println!("- {f}");
        }
        return Ok(std::process::ExitCode::FAILURE);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Fan-out at each size: Hark (and, with `--old-node`, an older build in the same run) and,
/// with `--ngircd`, an IRC server with as many clients; a table with ratios.
fn fanout_scenario(opts: &Options, out_dir: &Path) -> Result<()> {
    let new_bin = std::env::var_os("HARK_NODE_BIN");
    if !opts.ngircd && !hark_tests::bench_irc::available() {
        eprintln!(
            "fan-out: ngircd is not installed, so the IRC comparison is left out \
             (`make bench` installs it)"
        );
    }
    let mut results = Vec::new();
    for &n in &opts.sizes {
        if let Some(old) = &opts.old_node {
            eprintln!("fan-out: starting {n} nodes (old: {}) …", old.display());
            std::env::set_var("HARK_NODE_BIN", old);
            let result = fanout(n, opts.rate, opts.seconds, opts.settle);
            match &new_bin {
                Some(bin) => std::env::set_var("HARK_NODE_BIN", bin),
                None => std::env::remove_var("HARK_NODE_BIN"),
            }
            let mut result = result?;
            result["binary"] = json!("old");
            result["node_bin"] = json!(old.display().to_string());
            results.push(result);
        }
        if opts.old_node.is_some() {
            quiet_disk();
        }
        eprintln!("fan-out: starting {n} nodes …");
        let mut result = fanout(n, opts.rate, opts.seconds, opts.settle)?;
        result["binary"] = json!("new");
        results.push(result);
        if opts.ngircd {
            quiet_disk();
            eprintln!("fan-out: ngircd with {n} clients …");
            let mut result = hark_tests::bench_irc::fanout(n, opts.rate, opts.seconds)?;
            result["binary"] = json!("ngircd");
            results.push(result);
        }
    }
    std::fs::write(
        out_dir.join("fanout.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    println!(
        "\nfan-out (one sender, {} msg/s for {} s, loopback)",
        opts.rate, opts.seconds
    );
    println!(
        "{:>5} {:>7} {:>9} {:>8} {:>8} {:>8} {:>11} {:>10} {:>10} {:>6}",
        "N",
        "what",
        "delivery",
        "p50 ms",
        "p99 ms",
        "max ms",
        "CPU ms/msg",
        "CPU s/node",
        "RSS MB max",
        "dups"
    );
    let f = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    for r in &results {
        println!(
            "{:>5} {:>7} {:>8.2}% {:>8.2} {:>8.2} {:>8.2} {:>11.3} {:>10.2} {:>10.1} {:>6}",
            r["nodes"].as_u64().unwrap_or(0),
            r["binary"].as_str().unwrap_or("?"),
            f(r, "delivery_ratio") * 100.0,
            f(r, "latency_ms_p50"),
            f(r, "latency_ms_p99"),
            f(r, "latency_ms_max"),
            f(r, "cpu_ms_per_msg_node"),
            f(r, "cpu_s_mean"),
            f(r, "peak_rss_mb_max"),
            r["duplicates"].as_u64().unwrap_or(0)
        );
    }
    // The settling seconds before each Hark run's measured phase, and the sender's store.
    for r in results.iter().filter(|r| r["binary"] != json!("ngircd")) {
        println!(
            "N={:<4} {:>3}: the {} s before (settling, not above): p50 {:.2}, p99 {:.2}, max {:.2} ms; \
             the sender's `sent` p50 {:.2}, p99 {:.2} ms",
            r["nodes"].as_u64().unwrap_or(0),
            r["binary"].as_str().unwrap_or("?"),
            r["settle_s"].as_u64().unwrap_or(0),
            f(r, "settle_latency_ms_p50"),
            f(r, "settle_latency_ms_p99"),
            f(r, "settle_latency_ms_max"),
            f(r, "sent_ms_p50"),
            f(r, "sent_ms_p99"),
        );
    }
    // Ratios at each size: Hark against ngircd, and new against old.
    for &n in &opts.sizes {
        let row = |what: &str| {
            results
                .iter()
                .find(|r| r["nodes"] == json!(n) && r["binary"] == json!(what))
        };
        let ratio =
            |a: Option<&serde_json::Value>, b: Option<&serde_json::Value>, k: &str| match (a, b) {
                (Some(a), Some(b)) => format!("{:.2}", f(a, k) / f(b, k)),
                _ => "-".to_owned(),
            };
        for (label, a, b) in [
            ("new/ngircd", row("new"), row("ngircd")),
            ("old/ngircd", row("old"), row("ngircd")),
            ("new/old", row("new"), row("old")),
        ] {
            if a.is_none() || b.is_none() {
                continue;
            }
            println!(
                "N={n:<4} {label:>10}: p50 {}×, p99 {}×, CPU/msg/node {}×",
                ratio(a, b, "latency_ms_p50"),
                ratio(a, b, "latency_ms_p99"),
                ratio(a, b, "cpu_ms_per_msg_node"),
            );
        }
    }
    Ok(())
}

/// Between two fan-out runs: write back what the last run left dirty, and give the kernel a
/// moment. Without it the second binary of an `--old-node` run at N = 200 started while the
/// first one's 200 data dirs were still being written back: its sender's store took 0.5–0.9 s
/// instead of 0.06–0.2 s, and p50 came out 3–7× worse whichever binary it was
/// (docs/performance.md, "eleventh pass").
fn quiet_disk() {
    if let Err(e) = std::process::Command::new("sync").status() {
        eprintln!("fan-out: cannot run sync: {e}");
    }
    std::thread::sleep(Duration::from_secs(5));
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// User + system CPU seconds of a process, from /proc/PID/stat (clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Seconds a process spent runnable but waiting for a CPU (`/proc/PID/schedstat`, field 2):
/// what other processes on the machine cost it.
fn runqueue_wait_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |ns| ns / 1e9)
}

/// A figure from `/proc/PID/io`, such as `write_bytes:` (bytes sent to the storage layer) or
/// `wchar:` (bytes passed to write calls); 0 if unknown.
fn proc_io(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The 1-minute load average: how busy the machine was (other work shares the cores).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Node 0 sends `count` messages "PREFIX SEQ UNIX_NANOS" to `lobby`, one every `interval`;
/// the UNIX_NANOS of each, by SEQ.
fn send_at_rate(
    sender: &mut NodeProcess,
    prefix: &str,
    count: usize,
    interval: Duration,
) -> Vec<u128> {
    let mut sent_at = Vec::with_capacity(count);
    let paced: Result<(), std::convert::Infallible> = at_rate(count, interval, |seq, now| {
        sent_at.push(now);
        sender
            .send(json!({"cmd": "send", "room": "lobby", "text": format!("{prefix} {seq} {now}")}));
        Ok(())
    });
    let Ok(()) = paced;
    sent_at
}

/// What the receivers showed of the messages "PREFIX SEQ UNIX_NANOS" since `first_event`.
#[derive(Default)]
struct Deliveries {
    /// Each receiver's first copy of each message: ms from the `send` line, sorted.
    latencies: Vec<f64>,
    /// Copies shown again.
    duplicates: usize,
    /// Every delivery as "node seq latency_ms" (for HARK_BENCH_DELIVERIES), seq counted from
    /// `first_seq`.
    lines: String,
}

fn deliveries(
    nodes: &[NodeProcess],
    first_event: &[usize],
    prefix: &str,
    first_seq: i64,
) -> Deliveries {
    let mut out = Deliveries::default();
    for (i, node) in nodes.iter().enumerate().skip(1) {
        let mut got = HashSet::new();
        for (event, at) in node.seen.iter().zip(&node.seen_at).skip(first_event[i]) {
            let Event::Message { text, .. } = event else {
                continue;
            };
            let Some((seq, sent)) = parse(text, prefix) else {
                continue;
            };
            if !got.insert(seq) {
                out.duplicates += 1;
                continue;
            }
            let latency = unix_nanos(*at).saturating_sub(sent) as f64 / 1e6;
            let line_seq = first_seq + seq as i64;
            out.lines
                .push_str(&format!("{i} {line_seq} {latency:.3}\n"));
            out.latencies.push(latency);
        }
    }
    out.latencies.sort_by(|a, b| a.total_cmp(b));
    out
}

fn fanout(n: usize, rate: u32, seconds: u32, settle: u32) -> Result<serde_json::Value> {
    let mut rng = rand::thread_rng();
    let mut nodes: Vec<NodeProcess> = Vec::with_capacity(n);
    for i in 0..n {
        let mut earlier: Vec<usize> = (0..i).collect();
        earlier.shuffle(&mut rng);
        let peers: Vec<String> = earlier.iter().take(3).map(|&j| nodes[j].addr()).collect();
        let mut args: Vec<&str> = Vec::new();
        for p in &peers {
            args.push("--peer");
            args.push(p);
        }
        nodes.push(NodeProcess::start(&format!("n{i}"), &args));
    }

    // Warm-up: the sender repeats a probe until every node has received one.
    let started = Instant::now();
    let mut warm = 0;
    loop {
        nodes[0].send(json!({"cmd": "send", "room": "lobby", "text": format!("warm {warm}")}));
        warm += 1;
        std::thread::sleep(Duration::from_millis(250));
        let mut cold = 0;
        for node in nodes.iter_mut().skip(1) {
            node.drain();
            if !node
                .seen
                .iter()
                .any(|e| matches!(e, Event::Message { text, .. } if text.starts_with("warm ")))
            {
                cold += 1;
            }
        }
        if cold == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let mut cold_nodes: Vec<(usize, String)> = Vec::new();
            for (i, node) in nodes.iter_mut().enumerate().skip(1) {
                if node
                    .seen
                    .iter()
                    .any(|e| matches!(e, Event::Message { text, .. } if text.starts_with("warm ")))
                {
                    continue;
                }
                cold_nodes.push((i, node.peer_id.clone()));
            }
            // Diagnose: each cold node's peers, and how every node that knows it scores it.
            for (i, id) in &cold_nodes {
                nodes[*i].send(json!({"cmd": "peers"}));
                let peers = nodes[*i]
                    .wait_for(Duration::from_secs(5), |e| matches!(e, Event::Peers { .. }));
                eprintln!("cold node n{i}: {peers:?} (log in target/bench/cold-n{i}.log)");
                let _ = std::fs::write(format!("target/bench/cold-n{i}.log"), nodes[*i].stderr());
                for (j, other) in nodes.iter_mut().enumerate() {
                    other.send(json!({"cmd": "peers"}));
                    let answer = other
                        .wait_for(Duration::from_secs(5), |e| matches!(e, Event::Peers { .. }));
                    if let Some(Event::Peers { peers }) = answer {
                        if let Some(p) = peers.iter().find(|p| p.peer_id == *id) {
                            eprintln!(
                                "  n{j} scores n{i} at {:.2} ({} peers)",
                                p.score,
                                peers.len()
                            );
                            let _ = std::fs::write(
                                format!("target/bench/peer-n{j}-of-n{i}.log"),
                                other.stderr(),
                            );
                        }
                    }
                }
            }
            bail!("fan-out N={n}: {cold} nodes never received a warm-up message");
        }
    }
    let warmup_s = started.elapsed().as_secs_f64();
    let first_event: Vec<usize> = nodes.iter().map(|n| n.seen.len()).collect();
    nodes[0].drain();
    let first_sent_event = nodes[0].seen.len();

    // Settle: the measured traffic for a few seconds first. Right after the nodes connect,
    // every mesh link pushes every message until gossipsub's first heartbeats choke the ones
    // that only bring duplicates (third_party/libp2p-gossipsub/HARK.md): a transient of about
    // a second that a site which has been up never sees. It is measured too, and reported
    // apart (`settle_latency_ms_*`).
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    send_at_rate(&mut nodes[0], "settle", (rate * settle) as usize, interval);

    let cpu_before: Vec<f64> = nodes.iter().map(|n| cpu_seconds(n.pid())).collect();
    let count = (rate * seconds) as usize;
    let sent_times = send_at_rate(&mut nodes[0], "bench", count, interval);
    // Let the last messages land.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut missing = 0;
        for node in nodes.iter_mut().skip(1) {
            node.drain();
            let got = node
                .seen
                .iter()
                .filter(|e| matches!(e, Event::Message { text, .. } if text.starts_with("bench ")))
                .count();
            missing += count.saturating_sub(got);
        }
        if missing == 0 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // HARK_BENCH_LOGS=DIR (with HARK_TEST_LOG=…): late deliveries on stderr, every node's log
    // in DIR.
    let logs = std::env::var("HARK_BENCH_LOGS").ok();
    let settle_count = (rate * settle) as usize;
    let settled = deliveries(&nodes, &first_event, "settle", -(settle_count as i64));
    let measured = deliveries(&nodes, &first_event, "bench", 0);
    if logs.is_some() {
        for line in measured.lines.lines() {
            if let [node, seq, ms] = line.split(' ').collect::<Vec<_>>()[..] {
                if ms.parse::<f64>().is_ok_and(|ms| ms > 100.0) {
                    eprintln!("late: n{node} got bench {seq} after {ms} ms");
                }
            }
        }
    }
    // The sender's own `sent` (its message stored, then published) for each measured send:
    // the last `count` of its `sent` events, in order.
    nodes[0].drain();
    let sent_events: Vec<SystemTime> = nodes[0]
        .seen
        .iter()
        .zip(&nodes[0].seen_at)
        .skip(first_sent_event)
        .filter(|(e, _)| matches!(e, Event::Sent { .. }))
        .map(|(_, at)| *at)
        .collect();
    // (None at all if some send got no `sent`: which one is not known.)
    let measured_sent = match sent_events.len().checked_sub(count) {
        Some(skip) => &sent_events[skip..],
        None => &[][..],
    };
    let sent_by_seq: Vec<f64> = measured_sent
        .iter()
        .zip(&sent_times)
        .map(|(at, sent)| unix_nanos(*at).saturating_sub(*sent) as f64 / 1e6)
        .collect();
    let mut sent_latencies = sent_by_seq.clone();
    sent_latencies.sort_by(|a, b| a.total_cmp(b));
    // HARK_BENCH_DELIVERIES=FILE: every delivery as "node seq latency_ms" (the settling
    // messages with negative seq), and the measured phase's `sent` as node 0 — to tell a slow
    // message (every receiver late) from a slow node.
    if let Ok(path) = std::env::var("HARK_BENCH_DELIVERIES") {
        let mut lines = settled.lines.clone();
        lines.push_str(&measured.lines);
        for (seq, ms) in sent_by_seq.iter().enumerate() {
            lines.push_str(&format!("0 {seq} {ms:.3}\n"));
        }
        if let Err(e) = std::fs::write(&path, lines) {
            eprintln!("cannot write {path}: {e}");
        }
    }
    let latencies = &measured.latencies;
    let delivered = latencies.len();
    let duplicates = measured.duplicates;
    let cpu: Vec<f64> = nodes
        .iter()
        .zip(&cpu_before)
        .map(|(n, before)| cpu_seconds(n.pid()) - before)
        .collect();
    let rss_mb: Vec<f64> = nodes
        .iter()
        .map(|n| proc_status_kib(n.pid(), "VmHWM:") as f64 / 1024.0)
        .collect();
    let expected = count * (n - 1);
    let result = json!({
        "scenario": "fanout",
        "nodes": n,
        "rate_per_s": rate,
        "messages": count,
        "warmup_s": warmup_s,
        "delivered": delivered,
        "expected": expected,
        "delivery_ratio": delivered as f64 / expected as f64,
        "duplicates": duplicates,
        "latency_ms_p50": percentile(latencies, 50.0),
        "latency_ms_p99": percentile(latencies, 99.0),
        "latency_ms_max": latencies.last().copied().unwrap_or(f64::NAN),
        "settle_s": settle,
        "settle_delivery_ratio": settled.latencies.len() as f64
            / ((rate * settle) as usize * (n - 1)).max(1) as f64,
        "settle_latency_ms_p50": percentile(&settled.latencies, 50.0),
        "settle_latency_ms_p99": percentile(&settled.latencies, 99.0),
        "settle_latency_ms_max": settled.latencies.last().copied().unwrap_or(f64::NAN),
        "sent_ms_p50": percentile(&sent_latencies, 50.0),
        "sent_ms_p99": percentile(&sent_latencies, 99.0),
        "cpu_s_mean": cpu.iter().sum::<f64>() / n as f64,
        "cpu_ms_per_msg_node": cpu.iter().sum::<f64>() / n as f64 * 1000.0 / count.max(1) as f64,
        "cpu_s_max": cpu.iter().copied().fold(0.0, f64::max),
        "cpu_s_sender": cpu[0],
        "peak_rss_mb_mean": rss_mb.iter().sum::<f64>() / n as f64,
        "peak_rss_mb_max": rss_mb.iter().copied().fold(0.0, f64::max),
    });
    if let Some(dir) = &logs {
        for (i, node) in nodes.iter().enumerate() {
            let log = format!("peer id {}\n{}", node.peer_id, node.stderr());
            let _ = std::fs::write(format!("{dir}/n{i}.log"), log);
        }
    }
    drop(nodes);
    Ok(result)
}

/// One start-up: launch to `ready`, launch to the answer of a `history` command sent right after
/// `ready` (a `--relay` loads every room's history first), and `VmRSS` one second later.
fn start_once(data: PathBuf, extra: &[&str]) -> (f64, f64, f64) {
    let t0 = Instant::now();
    let mut node = NodeProcess::start_with_dir("bench", data, "/ip4/127.0.0.1/tcp/0", extra);
    let ready = t0.elapsed().as_secs_f64() * 1e3;
    node.history("lobby", 100);
    let answer = t0.elapsed().as_secs_f64() * 1e3;
    std::thread::sleep(Duration::from_secs(1));
    let rss = proc_status_kib(node.pid(), "VmRSS:") as f64 / 1024.0;
    node.quit();
    (ready, answer, rss)
}

fn summarise_startup(runs: Vec<(f64, f64, f64)>, extra: serde_json::Value) -> serde_json::Value {
    let sorted = |f: fn(&(f64, f64, f64)) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    };
    let ready = sorted(|r| r.0);
    let answer = sorted(|r| r.1);
    let rss = sorted(|r| r.2);
    let mut out = json!({
        "runs": runs.len(),
        "ready_ms_p50": percentile(&ready, 50.0),
        "ready_ms_max": ready.last(),
        "answer_ms_p50": percentile(&answer, 50.0),
        "answer_ms_max": answer.last(),
        "idle_rss_mb_p50": percentile(&rss, 50.0),
        "ready_ms": ready,
        "answer_ms": answer,
    });
    if let (Some(out), serde_json::Value::Object(extra)) = (out.as_object_mut(), extra) {
        out.extend(extra);
    }
    out
}

fn startup(runs: usize) -> Result<serde_json::Value> {
    let mut out = serde_json::Map::new();
    out.insert("load_average_at_start".into(), json!(load_average()));
    let dirs: Vec<tempfile::TempDir> = (0..runs)
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()?;
    for kind in ["fresh", "reused"] {
        let results = dirs
            .iter()
            .map(|dir| start_once(dir.path().join("node"), &[]))
            .collect();
        out.insert(
            kind.to_owned(),
            summarise_startup(results, json!({"messages": 0})),
        );
    }
    // 100k stored messages in lobby, 1000 a day (100 shards), as a long-lived room would hold.
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("node");
    let seeded = seed_public_room(&data, "lobby", 100_000, 1000, false)?;
    eprintln!(
        "start-up: seeded {} messages in {} shards in {:.1} s",
        seeded.messages,
        seeded.shards,
        seeded.elapsed.as_secs_f64()
    );
    let info = json!({
        "messages": seeded.messages,
        "shards": seeded.shards,
        "db_bytes": std::fs::metadata(data.join("hark.db")).map(|m| m.len()).unwrap_or(0),
    });
    for (kind, extra) in [("reused_100k", &[][..]), ("relay_100k", &["--relay"][..])] {
        let results = (0..runs).map(|_| start_once(data.clone(), extra)).collect();
        out.insert(kind.to_owned(), summarise_startup(results, info.clone()));
    }
    Ok(serde_json::Value::Object(out))
}

/// A TCP forwarder on 127.0.0.1 that counts the bytes it carries each way: the bytes a libp2p
/// connection really moves (Noise, Yamux and every protocol on it), without touching the nodes.
struct CountingProxy {
    port: u16,
    /// Client to target, and target to client.
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl CountingProxy {
    fn start(target: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let up = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (up2, down2, stop2) = (up.clone(), down.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                let (u, d) = (up2.clone(), down2.clone());
                std::thread::spawn(move || pump(client, server, &u));
                std::thread::spawn(move || pump(s2, c2, &d));
            }
        });
        Ok(Self {
            port,
            up,
            down,
            stop,
        })
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, counter: &AtomicU64) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// `/ip4/127.0.0.1/tcp/PORT/p2p/ID` → (127.0.0.1:PORT, ID).
fn split_addr(addr: &str) -> Result<(SocketAddr, String)> {
    let parts: Vec<&str> = addr.split('/').collect();
    match parts.as_slice() {
        ["", "ip4", ip, "tcp", port, "p2p", id] => {
            Ok((format!("{ip}:{port}").parse()?, (*id).to_owned()))
        }
        _ => bail!("unexpected listen address {addr}"),
    }
}

fn ms_between(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(0.0)
}

const CATCH_UP_TIMEOUT_S: u64 = 120;
/// Give up earlier when the joiner has raised no event at all for this long.
const STALL_TIMEOUT_S: u64 = 20;

/// One fresh node joining the relay. `via` is the address given as `--peer`.
fn join_once(relay: &NodeProcess, via: &str, count: usize) -> Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("node");
    let relay_cpu = cpu_seconds(relay.pid());
    let launched = SystemTime::now();
    let mut joiner = NodeProcess::start_with_dir(
        "joiner",
        data.clone(),
        "/ip4/127.0.0.1/tcp/0",
        &["--peer", via],
    );
    let ready_at = joiner.seen_at[0];
    let mut connected_at = None;
    let mut first_message_at = None;
    let mut all_messages_at = None;
    let mut synced_at = None;
    let mut synced_received = Vec::new();
    let mut ids = HashSet::with_capacity(count);
    let mut scanned = 0;
    let deadline = Instant::now() + Duration::from_secs(CATCH_UP_TIMEOUT_S);
    let mut last_progress = Instant::now();
    while Instant::now() < deadline {
        let _ = joiner.wait_for(Duration::from_millis(100), |e| {
            matches!(e, Event::Synced { .. })
        });
        joiner.drain();
        for (event, at) in joiner.seen.iter().zip(&joiner.seen_at).skip(scanned) {
            match event {
                Event::PeerConnected { peer_id } if *peer_id == relay.peer_id => {
                    connected_at.get_or_insert(*at);
                }
                Event::Message { room, id, .. } if room == "lobby" => {
                    first_message_at.get_or_insert(*at);
                    if ids.insert(id.clone()) && ids.len() == count {
                        all_messages_at = Some(*at);
                    }
                }
                Event::Synced { room, received, .. } if room == "lobby" => {
                    synced_received.push(*received);
                    if synced_at.is_none() && synced_received.iter().sum::<usize>() >= count {
                        synced_at = Some(*at);
                    }
                }
                _ => {}
            }
        }
        if joiner.seen.len() > scanned {
            last_progress = Instant::now();
        }
        scanned = joiner.seen.len();
        if synced_at.is_some() && all_messages_at.is_some() {
            break;
        }
        // A sync that fails outright (refused, abandoned) leaves the joiner silent.
        if last_progress.elapsed() > Duration::from_secs(STALL_TIMEOUT_S) {
            break;
        }
    }
    let cpu_joiner = cpu_seconds(joiner.pid());
    let wait_joiner = runqueue_wait_seconds(joiner.pid());
    let written_joiner = proc_io(joiner.pid(), "wchar:");
    let disk_joiner = proc_io(joiner.pid(), "write_bytes:");
    let write_calls_joiner = proc_io(joiner.pid(), "syscw:");
    let cpu_relay = cpu_seconds(relay.pid()) - relay_cpu;
    let rss_joiner = proc_status_kib(joiner.pid(), "VmHWM:") as f64 / 1024.0;
    let (Some(synced), Some(all_messages)) = (synced_at, all_messages_at) else {
        let _ = std::fs::write("target/bench/history-joiner.log", joiner.stderr());
        let _ = std::fs::write("target/bench/history-relay.log", relay.stderr());
        bail!(
            "the joiner did not catch up (deadline {CATCH_UP_TIMEOUT_S} s, or {STALL_TIMEOUT_S} s without an event): {} of {count} messages, synced events {:?} \
             (logs: target/bench/history-joiner.log, history-relay.log)\n{}\n{}",
            ids.len(),
            synced_received,
            warnings(&joiner),
            warnings(relay)
        );
    };
    // HARK_BENCH_LOGS=DIR (with HARK_TEST_LOG=hark_node=debug) keeps both nodes' logs of each
    // join, to time what happens between connecting and the first message.
    if let Ok(dir) = std::env::var("HARK_BENCH_LOGS") {
        let _ = std::fs::write(
            format!("{dir}/joiner-{}.log", joiner.pid()),
            joiner.stderr(),
        );
        let _ = std::fs::write(format!("{dir}/relay-{}.log", joiner.pid()), relay.stderr());
    }
    joiner.quit();
    let (stored, chunk_bytes, chunks) = stored_history(&data, "lobby")?;
    if stored as usize != count {
        bail!("the joiner stored {stored} messages, not {count}");
    }
    let connected = connected_at.unwrap_or(ready_at);
    Ok(json!({
        "ready_ms": ms_between(launched, ready_at),
        "connected_ms": ms_between(launched, connected),
        "first_message_ms": first_message_at.map(|at| ms_between(launched, at)),
        "all_messages_ms": ms_between(launched, all_messages),
        "synced_ms": ms_between(launched, synced),
        "synced_after_connect_ms": ms_between(connected, synced),
        "synced_events_received": synced_received,
        "message_events": ids.len(),
        "joiner_stored_messages": stored,
        "joiner_stored_chunk_bytes": chunk_bytes,
        "joiner_stored_chunks": chunks,
        "cpu_s_joiner": cpu_joiner,
        "runqueue_wait_s_joiner": wait_joiner,
        "joiner_write_call_bytes": written_joiner,
        "joiner_write_calls": write_calls_joiner,
        "joiner_disk_write_bytes": disk_joiner,
        "cpu_s_relay": cpu_relay,
        "load_average": load_average(),
        "peak_rss_mb_joiner": rss_joiner,
    }))
}

fn median_of(runs: &[serde_json::Value], key: &str) -> (f64, f64) {
    let mut v: Vec<f64> = runs.iter().filter_map(|r| r[key].as_f64()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    (percentile(&v, 50.0), v.last().copied().unwrap_or(f64::NAN))
}

/// A `--relay` holding `count` messages in lobby (`per_day` to a shard); fresh nodes join it,
/// `runs` times directly and once more through a byte-counting proxy.
fn history(
    count: usize,
    per_day: usize,
    foreign_author: bool,
    runs: usize,
) -> Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("relay");
    let seeded = seed_public_room(&data, "lobby", count, per_day, foreign_author)?;
    eprintln!(
        "  seeded {} messages in {} shards ({:.1} MB of saved documents) in {:.1} s",
        seeded.messages,
        seeded.shards,
        seeded.chunk_bytes as f64 / 1e6,
        seeded.elapsed.as_secs_f64()
    );
    let launched = Instant::now();
    let mut relay =
        NodeProcess::start_with_dir("relay", data, "/ip4/127.0.0.1/tcp/0", &["--relay"]);
    let relay_ready_ms = launched.elapsed().as_secs_f64() * 1e3;
    // Answered once the relay has loaded every shard (it does so right after `ready`).
    let newest = relay.history("lobby", count.min(10_000));
    let relay_loaded_ms = launched.elapsed().as_secs_f64() * 1e3;
    if newest.len() != count.min(10_000)
        || newest.last().map(|m| m.id.as_str()) != Some(seeded.last_id.as_str())
    {
        bail!(
            "the seeded relay answers {} messages ending in {:?}, expected {} ending in {}",
            newest.len(),
            newest.last().map(|m| &m.id),
            count.min(10_000),
            seeded.last_id
        );
    }
    if count <= 10_000 && newest.first().map(|m| m.id.as_str()) != Some(seeded.first_id.as_str()) {
        bail!("the seeded relay's history does not start with the first seeded message");
    }
    let relay_rss_mb = proc_status_kib(relay.pid(), "VmRSS:") as f64 / 1024.0;

    let mut direct = Vec::new();
    for run in 0..runs {
        let result = join_once(&relay, &relay.addr(), count)?;
        eprintln!(
            "  run {}: synced {:.0} ms after launch, {:.0} ms after connecting",
            run + 1,
            ms(&result, "synced_ms"),
            ms(&result, "synced_after_connect_ms")
        );
        direct.push(result);
    }
    let (target, relay_id) = split_addr(&relay.addr())?;
    let proxy = CountingProxy::start(target)?;
    let via = format!("/ip4/127.0.0.1/tcp/{}/p2p/{relay_id}", proxy.port);
    let proxied = join_once(&relay, &via, count)?;
    let (up, down) = (
        proxy.up.load(Ordering::Relaxed),
        proxy.down.load(Ordering::Relaxed),
    );
    drop(proxy);
    relay.drain();

    let mut out = json!({
        "scenario": "history",
        "messages": count,
        "per_day": per_day,
        "foreign_author": foreign_author,
        "shards": seeded.shards,
        "seed_s": seeded.elapsed.as_secs_f64(),
        "relay_saved_doc_bytes": seeded.chunk_bytes,
        "relay_ready_ms": relay_ready_ms,
        "relay_loaded_ms": relay_loaded_ms,
        "relay_rss_mb_loaded": relay_rss_mb,
        "wire_bytes_to_joiner": down,
        "wire_bytes_from_joiner": up,
        "joiner_stored_chunk_bytes": proxied["joiner_stored_chunk_bytes"],
        "proxied_run": proxied,
        "runs": direct,
    });
    for key in [
        "ready_ms",
        "connected_ms",
        "synced_ms",
        "synced_after_connect_ms",
        "all_messages_ms",
        "cpu_s_joiner",
        "runqueue_wait_s_joiner",
        "cpu_s_relay",
        "peak_rss_mb_joiner",
    ] {
        let (p50, max) = median_of(
            out["runs"].as_array().map(Vec::as_slice).unwrap_or(&[]),
            key,
        );
        out[format!("{key}_p50")] = json!(p50);
        out[format!("{key}_max")] = json!(max);
    }
    drop(relay);
    Ok(out)
}

/// The ids of a node's lobby history, in order.
fn history_ids(node: &mut NodeProcess) -> Vec<String> {
    node.history("lobby", 10_000)
        .into_iter()
        .map(|m| m.id)
        .collect()
}

/// Two partitions of three nodes (full mesh of static links inside each, none across); two
/// writers in each write `per_group / 2` messages each, all four at once. Once each partition
/// agrees within itself, node a2 restarts with its data dir and one more `--peer`, to b0.
/// Measured from a2's `ready` until every node holds the same history.
fn convergence(per_group: usize) -> Result<serde_json::Value> {
    let a2_dir = tempfile::tempdir()?;
    let a2_data = a2_dir.path().join("a2");
    let listen = "/ip4/127.0.0.1/tcp/0";
    let a0 = NodeProcess::start("a0", &[]);
    let a1 = NodeProcess::start("a1", &["--peer", &a0.addr()]);
    let a2 = NodeProcess::start_with_dir(
        "a2",
        a2_data.clone(),
        listen,
        &["--peer", &a0.addr(), "--peer", &a1.addr()],
    );
    let b0 = NodeProcess::start("b0", &[]);
    let b1 = NodeProcess::start("b1", &["--peer", &b0.addr()]);
    let b2 = NodeProcess::start("b2", &["--peer", &b0.addr(), "--peer", &b1.addr()]);
    let mut nodes = vec![a0, a1, a2, b0, b1, b2];
    let ids: Vec<String> = nodes.iter().map(|n| n.peer_id.clone()).collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        let group = if i < 3 { 0..3 } else { 3..6 };
        let others: Vec<&str> = group.filter(|&j| j != i).map(|j| ids[j].as_str()).collect();
        node.wait_presence("lobby", &others, Duration::from_secs(30));
    }

    // All four writers at once: every command goes out before any `sent` is awaited.
    let writers = [0, 1, 3, 4];
    let each = (per_group / 2).max(1);
    let write_started = Instant::now();
    for k in 0..each {
        for &w in &writers {
            let name = nodes[w].name.clone();
            nodes[w].send(json!({"cmd": "send", "room": "lobby", "text": format!("{name} {k}")}));
        }
    }
    for &w in &writers {
        let mut sent = 0;
        while sent < each {
            match nodes[w].expect("sent", Duration::from_secs(60), |e| {
                matches!(e, Event::Sent { .. } | Event::Error { .. })
            }) {
                Event::Sent { .. } => sent += 1,
                other => bail!("{}: sending failed: {other:?}", nodes[w].name),
            }
        }
    }
    let written_s = write_started.elapsed().as_secs_f64();
    let group_total = each * 2;
    for node in nodes.iter_mut() {
        let got = node
            .wait_history_len("lobby", group_total, Duration::from_secs(60))
            .len();
        if got != group_total {
            bail!(
                "{} holds {got} messages before the heal, expected {group_total}",
                node.name
            );
        }
    }
    let partitioned_s = write_started.elapsed().as_secs_f64();

    // Heal.
    let a2 = nodes.remove(2);
    a2.quit();
    let (a0_addr, a1_addr, b0_addr) = (nodes[0].addr(), nodes[1].addr(), nodes[2].addr());
    for node in nodes.iter_mut() {
        node.drain();
    }
    let marks: Vec<usize> = nodes.iter().map(|n| n.seen.len()).collect();
    let launched = SystemTime::now();
    let healed = NodeProcess::start_with_dir(
        "a2",
        a2_data,
        listen,
        &["--peer", &a0_addr, "--peer", &a1_addr, "--peer", &b0_addr],
    );
    let ready_at = healed.seen_at[0];
    nodes.insert(2, healed);
    let mut marks = marks;
    marks.insert(2, 1);

    let total = group_total * 2;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut polls = 0;
    let converged_poll_at = loop {
        polls += 1;
        let lists: Vec<Vec<String>> = nodes.iter_mut().map(history_ids).collect();
        let done_at = SystemTime::now();
        if lists[0].len() == total && lists.iter().all(|l| *l == lists[0]) {
            break Some(done_at);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The last `message` event any node raised after the heal: when the last missing message
    // arrived (the polls above only confirm it).
    let mut last_arrival = ready_at;
    let mut arrivals = Vec::new();
    for (node, mark) in nodes.iter_mut().zip(&marks) {
        node.drain();
        let mut count = 0;
        for (event, at) in node.seen.iter().zip(&node.seen_at).skip(*mark) {
            if matches!(event, Event::Message { .. }) {
                count += 1;
                if *at > last_arrival {
                    last_arrival = *at;
                }
            }
        }
        arrivals.push(count);
    }
    let Some(converged_poll_at) = converged_poll_at else {
        let lens: Vec<usize> = nodes.iter_mut().map(|n| history_ids(n).len()).collect();
        let logs: Vec<String> = nodes
            .iter()
            .map(warnings)
            .filter(|w| !w.is_empty())
            .collect();
        bail!(
            "no convergence within 60 s of the heal: history lengths {lens:?}\n{}",
            logs.join("\n")
        );
    };
    Ok(json!({
        "scenario": "convergence",
        "nodes": 6,
        "load_average": load_average(),
        "messages_per_partition": group_total,
        "messages_per_node": total,
        "write_s": written_s,
        "partition_agreed_s": partitioned_s,
        "restart_to_ready_ms": ms_between(launched, ready_at),
        "converged_by_events_ms": ms_between(ready_at, last_arrival),
        "converged_by_poll_ms": ms_between(ready_at, converged_poll_at),
        "polls": polls,
        "messages_received_after_heal": arrivals,
    }))
}

/// `hark-bench scale-one --nodes N …`: one row of the scale scenario in this process, printed
/// as one JSON line for the parent (`hark_tests::scale::run_in_child`).
fn scale_one(opts: &Options) -> Result<std::process::ExitCode> {
    let nodes = *opts
        .scale_nodes
        .first()
        .context("scale-one needs --nodes N")?;
    let mut scale_opts = opts.scale_opts.clone();
    let defaults = hark_tests::scale::ScaleOptions::new(nodes);
    scale_opts.nodes = nodes;
    scale_opts.warmup_deadline = defaults.warmup_deadline;
    let (row, code) = match hark_tests::scale::run(&scale_opts) {
        Ok(row) => (row, std::process::ExitCode::SUCCESS),
        Err(e) => (
            json!({"scenario": "scale", "nodes": nodes, "error": format!("{e:#}")}),
            std::process::ExitCode::FAILURE,
        ),
    };
    println!("{}{row}", hark_tests::scale::RESULT_PREFIX);
    Ok(code)
}
