//! # hark-node — the Hark node engine
//!
//! A node finds peers (mDNS, static `--peer` addresses), joins rooms (gossipsub topics derived
//! from room keys, see `hark-proto`) and delivers sealed envelopes between members. The headless
//! binary `hark-node` and the terminal client `hark` both embed it through [`Node`].
//!
//! A map of the crate:
//! - [`config`]: [`NodeConfig`], everything a node is started with, and [`cli::NodeArgs`],
//!   the command-line options `hark` and `hark-node` share.
//! - [`settings`]: where the options come from: the command line over `HARK_*` variables over
//!   the TOML config file, merged and checked ([`settings::Settings`], `--print-config`).
//! - [`sd_notify`]: systemd readiness and watchdog pings (`Type=notify`), for `hark-node`.
//! - [`api`]: [`Command`]s in, [`Event`]s out: the whole surface a client sees. The JSON-lines
//!   control of `hark-node --json` is these two types serialised.
//! - [`store`]: SQLite in the data dir: identity key, joined rooms (with keys), room history
//!   (Automerge chunks per shard) and the message index.
//! - [`history`]: room history as Automerge documents, one per room and UTC day (pure).
//! - [`sync`]: the `/hark/sync/1` session protocol and its bookkeeping (pure).
//! - [`rooms`]: which rooms we are in, their keys and topics (pure state).
//! - [`validate`]: the verdict on one gossip message: decrypt, decode, author check, replay
//!   check (pure; the driver reports the engine's verdict to gossipsub for peer scoring).
//! - [`dialer`]: redial of static peers with exponential backoff (pure, takes `now`).
//! - [`netkey`]: the pre-shared network key file and plain-words connection failure reasons.
//! - [`voice`]: push-to-talk: Opus, jitter buffers, mixing, WAV in and out, the audio
//!   source and sink traits that devices and tests plug into.
//! - [`swarm`]: the libp2p transport and behaviour (gossipsub, mDNS, identify, ping, sync).
//! - [`engine`]: everything Hark decides, with no IO: `Engine::handle(Input, Now) -> Outputs`,
//!   one state per room and per peer, timers as outputs, a seeded RNG, the `Storage` port.
//!   The simulator in `hark-tests` runs many of these on a virtual clock.
//! - [`node`]: [`Node::start`] and the driver, the thin IO loop that turns swarm events,
//!   commands and due timers into engine inputs and carries out its outputs.
//! - [`clock`]: the wall clock, read in one place.
//! - [`web`]: the browser client (`--web`): HTTPS, join links, web users' keys, the page,
//!   push-to-talk over a WebSocket; the HTTP API's routes behind a session.
//! - [`hooks`]: outgoing hooks (`[[hook]]`): POST to a URL or run a command on a message,
//!   an alert or a mention, with retries and a dead-letter file.
//!
//! One message from keypress to peer: the client sends [`Command::Send`]; the engine adds
//! the message to the room's Automerge shard as one change, stores that change in SQLite,
//! reports `sent`, and publishes the change in an envelope sealed with the room key on the
//! room's chat topic. Gossipsub
//! signs it with the node's identity. A receiving node's gossipsub hands the message to the driver
//! and so to the engine, [`validate`] opens and checks it, the verdict goes back to gossipsub (accepted messages
//! are forwarded, rejected ones cost the sender score); the change is applied to the receiver's
//! shard, stored, and its message becomes [`Event::Message`]. Whatever gossip missed (a node
//! that was off, a partition) arrives by [`sync`] when peers meet, and every 30 s.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod dialer;
pub mod engine;
pub mod history;
pub mod hooks;
pub mod http;
pub mod netkey;
pub mod node;
pub mod rooms;
pub mod sd_notify;
pub mod settings;
pub mod store;
pub mod swarm;
pub mod sync;
pub mod validate;
pub mod voice;
pub mod web;

pub use api::{Command, Event, HistoryMessage, PeerInfo};
pub use config::NodeConfig;
pub use hark_proto::mention::mentions;
pub use node::{Node, NodeHandle, StartError};
