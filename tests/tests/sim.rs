//! The deterministic simulator on short runs: delivery, order and convergence under loss,
//! restarts and a partition; the same seed gives the same run; state stays flat over days.

use std::time::Duration;

use hark_tests::sim::{Sim, SimConfig};

fn small_crowd(seed: u64) -> SimConfig {
    SimConfig {
        writers: 3,
        write_for: Duration::from_secs(40),
        settle: Duration::from_secs(40),
        restart_share: 0.1,
        down_for: (Duration::from_secs(3), Duration::from_secs(15)),
        ..SimConfig::crowd(30, seed)
    }
}

#[test]
fn a_crowd_with_loss_and_restarts_gets_everything_in_one_order() {
    let report = Sim::new(small_crowd(7)).run();
    println!("{report:?}");
    assert!(report.messages >= 100, "writers wrote: {}", report.messages);
    assert!(report.restarts >= 3);
    assert!(
        report.delivered_live >= 0.999,
        "live delivery {:.5}",
        report.delivered_live
    );
    assert_eq!(report.delivered_final, 1.0, "anti-entropy brings the rest");
    assert!(
        report.converged,
        "every node holds every message in one order"
    );
    assert_eq!(report.rejected, 0, "honest nodes never reject each other");
    assert_eq!(report.duplicates, 0, "each message is shown once");
}

#[test]
fn one_seed_gives_one_run() {
    let config = SimConfig {
        nodes: 16,
        write_for: Duration::from_secs(15),
        settle: Duration::from_secs(10),
        ..small_crowd(11)
    };
    let first = Sim::new(config.clone()).run();
    let second = Sim::new(config.clone()).run();
    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first.messages, second.messages);
    assert_eq!(first.sync_bytes, second.sync_bytes);
    let other = Sim::new(SimConfig { seed: 12, ..config }).run();
    assert_ne!(first.trace_hash, other.trace_hash, "the seed matters");
}

#[test]
fn both_sides_of_a_partition_write_and_converge_after_it_heals() {
    let config = SimConfig {
        writers: 4,
        write_for: Duration::from_secs(30),
        settle: Duration::from_secs(20),
        restart_share: 0.0,
        partition: Some((Duration::from_secs(5), Duration::from_secs(32))),
        ..SimConfig::crowd(30, 3)
    };
    let report = Sim::new(config).run();
    println!("{report:?}");
    let heal_ms = report
        .heal_convergence_ms
        .expect("every node held every message after the heal");
    assert!(
        heal_ms < 5_000.0,
        "converged {heal_ms:.0} ms after the heal"
    );
    assert!(report.converged);
    assert!(report.delivered_live >= 0.999);
    assert_eq!(report.duplicates, 0);
}

#[test]
fn a_day_and_a_half_of_a_quiet_room_keeps_every_node_flat() {
    // `hark-bench sim --soak` runs the same for 72 hours.
    let config = hark_tests::sim::soak(5, 36);
    let report = Sim::new(config).run();
    assert!(report.converged);
    let samples = &report.footprints;
    assert!(samples.len() >= 35);
    // Past the first day, nothing grows but Automerge sync states, one per peer and day shard.
    let (early, late) = samples.split_at(samples.len() / 2);
    let max = |s: &[(f64, hark_node::engine::Footprint, usize)],
               f: fn(&hark_node::engine::Footprint) -> usize| {
        s.iter().map(|(_, fp, _)| f(fp)).max().unwrap_or(0)
    };
    for (what, field) in [
        (
            "peers",
            (|f: &hark_node::engine::Footprint| f.peers) as fn(&_) -> usize,
        ),
        ("sessions", |f| f.sessions),
        ("waiting bytes", |f| f.waiting_bytes),
        ("names", |f| f.names),
    ] {
        assert!(
            max(late, field) <= max(early, field).max(1),
            "{what} grew: {} then {}",
            max(early, field),
            max(late, field)
        );
    }
    // Pending timers come and go with sessions; a leak would climb hour after hour.
    let mean = |s: &[(f64, hark_node::engine::Footprint, usize)]| {
        s.iter().map(|x| x.2 as f64).sum::<f64>() / s.len().max(1) as f64
    };
    let (timers_early, timers_late) = (mean(early), mean(late));
    assert!(
        timers_late <= timers_early * 1.25 + 1.0,
        "timers grew: {timers_early:.1} then {timers_late:.1} on average"
    );
}
