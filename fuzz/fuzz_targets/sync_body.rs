#![no_main]
//! What a node does with the opened body of a `/hark/sync/1` request or response, and with a
//! history change that arrives by gossip: decode the `SyncBody`, then hand every shard's
//! Automerge sync message to a `Shard` (an empty one and one that already holds messages).
//! Raw input is also tried directly as an Automerge sync message and as a gossip change.
//!
//! Random bytes rarely get past Automerge's framing and checksums, so part of the input is used
//! to *mutate* well-formed templates (sync messages that carry changes, raw changes) and, in
//! another mode, to *build* hostile but well-formed changes (any actor, puts of any value under
//! any key, deletes, nested objects, sequence inserts) that are then delivered by a real sync
//! exchange. Nothing may panic, and whatever a shard accepts must still let it answer.
//!
//! The code lives in `tests/src/sync_fuzz.rs` (included below by path), so `make test` replays
//! the inputs the fuzzer found and a few hundred seeded random ones with the very same code.
//!
//! ## Panics inside Automerge: `catch_unwind` and the fuzz build
//!
//! `Shard` runs Automerge under `catch_unwind`, so a panic inside Automerge becomes
//! `ShardError::Panicked` in the node (whose profiles keep the default `panic = "unwind"` and
//! install no aborting hook) instead of a crash. Checked for cargo-fuzz 0.13.2 and
//! libfuzzer-sys 0.4.13:
//! - cargo fuzz does *not* pass `-Cpanic=abort`: its RUSTFLAGS are the sancov passes,
//!   `--cfg fuzzing`, `-Cdebug-assertions` and codegen-units; the panic strategy is the
//!   profile's, here the default `unwind`. So `catch_unwind` does work in this build.
//! - but libfuzzer-sys' `initialize` (run by `fuzz_target!` before any input) installs a panic
//!   hook that calls `process::abort()` *before* unwinding starts, so a panic is reported as a
//!   crash even where `Shard` would catch it. A target could swap the hook in `init:` to test
//!   the guard itself.
//!
//! This target keeps the aborting hook on purpose: a panic inside Automerge on network input is
//! a bug to report or fix even where the node would survive it, and a panic *outside* the guard
//! (Hark's own code, or Automerge calls `Shard` does not wrap: `Change::from_bytes`,
//! `Change::decode` in `valid_record`, `get_changes`, `save_after`) would take the node down.
//! A panic the guard does catch leaves the shard possibly half-updated; the node then drops it
//! and reloads it from the store (`RoomHistory::receive`).
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run sync_body` (or `make fuzz`). Crashes it ever found are
//! kept in `fuzz/regressions/sync_body/` and replayed by `tests/tests/history_hostile.rs`; its
//! first minute found three (non-canonical change, two changes with one actor and seq, a new
//! actor starting past seq 1), all through `Shard::apply_gossip`. Slow: about 20 inputs/s,
//! mostly Automerge's own debug checks (cargo fuzz builds with `-Cdebug-assertions` unless
//! `-O`), which are what caught the first two; `-O` runs faster and checks less.

#[path = "../../tests/src/sync_fuzz.rs"]
mod sync_fuzz;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sync_fuzz::run(data));
