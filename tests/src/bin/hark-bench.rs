//! `hark-bench`: the benchmark scenarios of SPEC §5 that exist so far.
//!
//! - fan-out: N `hark-node` processes on loopback in one room, one sender at a fixed rate;
//!   delivery ratio, latency p50/p99/max, CPU seconds and peak RSS per node.
//! - start-up: time from launch to `ready`, and idle RSS, for a fresh and a reused data dir.
//!
//! Latency is measured as a bot sees it: from the moment the harness writes the `send` line to
//! the sender's stdin until it reads the `message` line from a receiver's stdout, so it includes
//! JSON handling at both ends. Results go to `target/bench/*.json` and a table on stdout.
//!
//! Usage: `hark-bench [fanout] [startup] [--sizes 10,50,200] [--rate 20] [--seconds 10]`

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use hark_node::Event;
use hark_tests::process::proc_status_kib;
use hark_tests::NodeProcess;
use rand::seq::SliceRandom;
use serde_json::json;

struct Options {
    fanout: bool,
    startup: bool,
    sizes: Vec<usize>,
    rate: u32,
    seconds: u32,
}

fn parse_args() -> Result<Options> {
    let mut opts = Options {
        fanout: false,
        startup: false,
        sizes: vec![10, 50, 200],
        rate: 20,
        seconds: 10,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "fanout" => opts.fanout = true,
            "startup" => opts.startup = true,
            "--sizes" => {
                let list = args.next().context("--sizes needs a list like 10,50")?;
                opts.sizes = list.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>().context("--sizes")?;
            }
            "--rate" => opts.rate = args.next().context("--rate needs a number")?.parse().context("--rate")?,
            "--seconds" => opts.seconds = args.next().context("--seconds needs a number")?.parse().context("--seconds")?,
            other => bail!("unknown argument {other:?}; usage: hark-bench [fanout] [startup] [--sizes 10,50,200] [--rate 20] [--seconds 10]"),
        }
    }
    if !opts.fanout && !opts.startup {
        opts.fanout = true;
        opts.startup = true;
    }
    Ok(opts)
}

fn main() -> Result<()> {
    let opts = parse_args()?;
    // Benchmarks measure the node, not its debug logging.
    if std::env::var_os("HARK_TEST_LOG").is_none() {
        std::env::set_var("HARK_TEST_LOG", "warn");
    }
    let out_dir = PathBuf::from("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    if opts.startup {
        let result = startup(10)?;
        std::fs::write(
            out_dir.join("startup.json"),
            serde_json::to_string_pretty(&result)?,
        )?;
        println!("\nstart-up (10 runs each, 0 stored messages)");
        println!(
            "{:<12} {:>12} {:>12} {:>14}",
            "data dir", "ready p50", "ready max", "idle RSS p50"
        );
        for kind in ["fresh", "reused"] {
            let r = &result[kind];
            println!(
                "{:<12} {:>9.1} ms {:>9.1} ms {:>11.1} MB",
                kind,
                r["ready_ms_p50"].as_f64().unwrap_or(0.0),
                r["ready_ms_max"].as_f64().unwrap_or(0.0),
                r["idle_rss_mb_p50"].as_f64().unwrap_or(0.0)
            );
        }
    }
    if opts.fanout {
        let mut results = Vec::new();
        for &n in &opts.sizes {
            eprintln!("fan-out: starting {n} nodes …");
            let result = fanout(n, opts.rate, opts.seconds)?;
            results.push(result);
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
            "{:>5} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10} {:>10} {:>6}",
            "N",
            "delivery",
            "p50 ms",
            "p99 ms",
            "max ms",
            "CPU s/node",
            "CPU s max",
            "RSS MB max",
            "dups"
        );
        for r in &results {
            println!(
                "{:>5} {:>8.2}% {:>8.2} {:>8.2} {:>8.2} {:>10.2} {:>10.2} {:>10.1} {:>6}",
                r["nodes"],
                r["delivery_ratio"].as_f64().unwrap_or(0.0) * 100.0,
                r["latency_ms_p50"].as_f64().unwrap_or(0.0),
                r["latency_ms_p99"].as_f64().unwrap_or(0.0),
                r["latency_ms_max"].as_f64().unwrap_or(0.0),
                r["cpu_s_mean"].as_f64().unwrap_or(0.0),
                r["cpu_s_max"].as_f64().unwrap_or(0.0),
                r["peak_rss_mb_max"].as_f64().unwrap_or(0.0),
                r["duplicates"]
            );
        }
    }
    println!("\nresults written to target/bench/");
    Ok(())
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

fn unix_nanos(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn fanout(n: usize, rate: u32, seconds: u32) -> Result<serde_json::Value> {
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
    let cpu_before: Vec<f64> = nodes.iter().map(|n| cpu_seconds(n.pid())).collect();
    let first_event: Vec<usize> = nodes.iter().map(|n| n.seen.len()).collect();

    let count = (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut sent_at: HashMap<usize, u128> = HashMap::new();
    let begin = Instant::now();
    for seq in 0..count {
        let due = begin + interval * seq as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let now = unix_nanos(SystemTime::now());
        sent_at.insert(seq, now);
        nodes[0]
            .send(json!({"cmd": "send", "room": "lobby", "text": format!("bench {seq} {now}")}));
    }
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

    let mut latencies = Vec::new();
    let mut delivered = 0usize;
    let mut duplicates = 0usize;
    for (i, node) in nodes.iter().enumerate().skip(1) {
        let mut got = std::collections::HashSet::new();
        for (event, at) in node.seen.iter().zip(&node.seen_at).skip(first_event[i]) {
            let Event::Message { text, .. } = event else {
                continue;
            };
            let mut parts = text.split(' ');
            if parts.next() != Some("bench") {
                continue;
            }
            let (Some(seq), Some(sent)) = (
                parts.next().and_then(|s| s.parse::<usize>().ok()),
                parts.next().and_then(|s| s.parse::<u128>().ok()),
            ) else {
                continue;
            };
            if !got.insert(seq) {
                duplicates += 1;
                continue;
            }
            delivered += 1;
            latencies.push(unix_nanos(*at).saturating_sub(sent) as f64 / 1e6);
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
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
        "latency_ms_p50": percentile(&latencies, 50.0),
        "latency_ms_p99": percentile(&latencies, 99.0),
        "latency_ms_max": latencies.last().copied().unwrap_or(f64::NAN),
        "cpu_s_mean": cpu.iter().sum::<f64>() / n as f64,
        "cpu_s_max": cpu.iter().copied().fold(0.0, f64::max),
        "cpu_s_sender": cpu[0],
        "peak_rss_mb_mean": rss_mb.iter().sum::<f64>() / n as f64,
        "peak_rss_mb_max": rss_mb.iter().copied().fold(0.0, f64::max),
    });
    drop(nodes);
    Ok(result)
}

fn startup(runs: usize) -> Result<serde_json::Value> {
    let mut out = serde_json::Map::new();
    let dirs: Vec<tempfile::TempDir> = (0..runs)
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()?;
    for kind in ["fresh", "reused"] {
        let mut ready_ms = Vec::new();
        let mut rss_mb = Vec::new();
        for dir in &dirs {
            let data = dir.path().join("node");
            let t0 = Instant::now();
            let node = NodeProcess::start_with_dir("bench", data, "/ip4/127.0.0.1/tcp/0", &[]);
            ready_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            std::thread::sleep(Duration::from_secs(1));
            rss_mb.push(proc_status_kib(node.pid(), "VmRSS:") as f64 / 1024.0);
            node.quit();
        }
        ready_ms.sort_by(|a, b| a.total_cmp(b));
        rss_mb.sort_by(|a, b| a.total_cmp(b));
        out.insert(
            kind.to_owned(),
            json!({
                "runs": runs,
                "ready_ms_p50": percentile(&ready_ms, 50.0),
                "ready_ms_max": ready_ms.last(),
                "idle_rss_mb_p50": percentile(&rss_mb, 50.0),
                "ready_ms": ready_ms,
            }),
        );
    }
    Ok(serde_json::Value::Object(out))
}
