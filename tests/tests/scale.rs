//! Twenty real nodes in this process over libp2p's memory transport (`hark_tests::scale`, the
//! harness of `hark-bench scale`): every node receives every message.

use std::time::Duration;

use hark_tests::scale::{run, ScaleOptions};

#[test]
fn twenty_in_process_nodes_each_receive_every_message() {
    let opts = ScaleOptions {
        degree: 4,
        senders: 2,
        rate: 10.0,
        seconds: 1.0,
        idle_seconds: 0.0,
        drain: Duration::from_secs(20),
        // Warm-up ends only once a probe round reached all 20 (or fails after 30 s).
        warmup_coverage: 1.0,
        warmup_deadline: Duration::from_secs(30),
        ..ScaleOptions::new(20)
    };
    let row = run(&opts).expect("a scale run of 20 nodes");
    assert_eq!(row["expected"], 10 * 19, "{row:#}");
    assert_eq!(row["delivered"], row["expected"], "{row:#}");
    assert_eq!(row["delivered_ratio"], 1.0, "{row:#}");
    assert_eq!(row["nodes_not_stopped"], 0, "{row:#}");
}
