//! `/metrics`: the node's counters in the Prometheus text format (version 0.0.4), every name
//! prefixed `hark_`.

use std::fmt::Write;
use std::time::Duration;

use crate::node::Stats;

/// The message kinds, always listed (a counter exists before its first message).
const KINDS: [&str; 3] = ["text", "me", "alert"];
/// The drop reasons, always listed (`validate::Drop`).
const DROPS: [&str; 8] = [
    "unsigned",
    "unauthentic",
    "malformed",
    "oversized",
    "forged_author",
    "replayed",
    "newer_version",
    "overloaded",
];

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP hark_{name} {help}");
        let _ = writeln!(self.0, "# TYPE hark_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let _ = write!(self.0, "hark_{name}");
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn render(stats: &Stats, uptime: Duration, store_bytes: u64) -> String {
    let mut out = Out(String::new());
    out.one(
        "up",
        "gauge",
        "1 once the node is ready (its listeners are up).",
        f64::from(u8::from(stats.ready)),
    );
    out.one(
        "uptime_seconds",
        "gauge",
        "Seconds since the HTTP API started with the node.",
        uptime.as_secs_f64(),
    );
    out.one("peers", "gauge", "Connected peers.", stats.peers as f64);
    out.one("rooms", "gauge", "Joined rooms.", stats.rooms.len() as f64);
    out.one(
        "clients",
        "gauge",
        "Attached clients (control socket connections, HTTP event streams, the API itself).",
        stats.clients as f64,
    );
    let by_kind = |out: &mut Out,
                   name: &str,
                   help: &str,
                   counts: &std::collections::BTreeMap<String, u64>| {
        out.family(name, "counter", help);
        for kind in KINDS {
            let n = counts.get(kind).copied().unwrap_or(0);
            out.sample(name, &[("kind", kind)], n as f64);
        }
    };
    by_kind(
        &mut out,
        "messages_received_total",
        "Messages of others shown (live and synced), by kind.",
        &stats.messages_in,
    );
    by_kind(
        &mut out,
        "messages_sent_total",
        "Our messages stored durably and published, by kind.",
        &stats.messages_out,
    );
    out.family(
        "gossip_drops_total",
        "counter",
        "Gossip messages dropped, by reason.",
    );
    for reason in DROPS {
        let n = stats.drops.get(reason).copied().unwrap_or(0);
        out.sample("gossip_drops_total", &[("reason", reason)], n as f64);
    }
    for (reason, n) in &stats.drops {
        if !DROPS.contains(&reason.as_str()) {
            out.sample("gossip_drops_total", &[("reason", reason)], *n as f64);
        }
    }
    out.one(
        "sync_sessions",
        "gauge",
        "History sync sessions in progress, both ways.",
        stats.sync_sessions as f64,
    );
    out.one(
        "syncs_completed_total",
        "counter",
        "History sync sessions completed.",
        stats.syncs_completed as f64,
    );
    out.one(
        "sync_received_messages_total",
        "counter",
        "Messages new to us brought by history sync.",
        stats.sync_received as f64,
    );
    out.one(
        "catchup_waiting_bytes",
        "gauge",
        "Bytes of history changes waiting for their dependencies.",
        stats.waiting_bytes as f64,
    );
    out.one(
        "unstored_messages",
        "gauge",
        "Messages received by gossip and shown, not stored yet (stored within three seconds).",
        stats.unstored_messages as f64,
    );
    if let (Some(min), Some(max)) = (stats.score_min, stats.score_max) {
        out.one(
            "peer_score_min",
            "gauge",
            "Lowest gossipsub score among connected peers.",
            min,
        );
        out.one(
            "peer_score_max",
            "gauge",
            "Highest gossipsub score among connected peers.",
            max,
        );
    }
    out.one(
        "voice_spurts_total",
        "counter",
        "Voice talk-spurts played out.",
        stats.voice_spurts as f64,
    );
    out.family(
        "voice_frames_lost_total",
        "counter",
        "Voice frames that did not arrive in time, by what replaced them.",
    );
    out.sample(
        "voice_frames_lost_total",
        &[("repair", "fec")],
        stats.voice_frames_recovered as f64,
    );
    out.sample(
        "voice_frames_lost_total",
        &[("repair", "plc")],
        stats.voice_frames_concealed as f64,
    );
    out.one(
        "voice_playout_overloaded_total",
        "counter",
        "Voice frames dropped because playout was behind.",
        stats.playout_overloaded as f64,
    );
    out.one(
        "store_bytes",
        "gauge",
        "Size of the SQLite store (hark.db with its WAL).",
        store_bytes as f64,
    );
    out.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_kinds_always_listed() {
        let mut stats = Stats::default();
        stats.messages_out.insert("alert".into(), 2);
        stats.drops.insert("replayed".into(), 1);
        stats.unstored_messages = 4;
        let text = render(&stats, Duration::from_secs(3), 10);
        assert!(text.contains("hark_unstored_messages 4\n"));
        assert!(text.contains("hark_messages_sent_total{kind=\"alert\"} 2\n"));
        assert!(text.contains("hark_messages_sent_total{kind=\"text\"} 0\n"));
        assert!(text.contains("hark_gossip_drops_total{reason=\"replayed\"} 1\n"));
        assert!(text.contains("hark_uptime_seconds 3\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("hark_"), "{line}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }
}
