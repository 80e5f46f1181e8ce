//! # hark-node — the Hark node engine
//!
//! A node finds peers (mDNS, static `--peer` addresses), joins rooms (gossipsub topics derived
//! from room keys, see `hark-proto`) and delivers sealed envelopes between members. The headless
//! binary `hark-node` and the terminal client `hark` both embed it through [`Node`].
//!
//! A map of the crate:
//! - [`config`]: [`NodeConfig`], everything a node is started with, and [`cli::NodeArgs`],
//!   the command-line options `hark` and `hark-node` share.
//! - [`api`]: [`Command`]s in, [`Event`]s out: the whole surface a client sees. The JSON-lines
//!   control of `hark-node --json` is these two types serialised.
//! - [`store`]: SQLite in the data dir: identity key and joined rooms (with keys).
//! - [`rooms`]: which rooms we are in, their keys and topics (pure state).
//! - [`validate`]: the verdict on one gossip message: decrypt, decode, author check, replay
//!   check (pure; the event loop reports the verdict to gossipsub for peer scoring).
//! - [`dialer`]: redial of static peers with exponential backoff (pure, takes `now`).
//! - [`netkey`]: the pre-shared network key file and plain-words connection failure reasons.
//! - [`swarm`]: the libp2p transport and behaviour (gossipsub, mDNS, identify, ping).
//! - [`node`]: the event loop that moves bytes between the swarm, the state above and the client.
//!
//! One message from keypress to peer: the client sends [`Command::Send`]; the event loop builds
//! an envelope, seals it with the room key and publishes it on the room's chat topic. Gossipsub
//! signs it with the node's identity. A receiving node's gossipsub hands the message to the event
//! loop, [`validate`] opens and checks it, the verdict goes back to gossipsub (accepted messages
//! are forwarded, rejected ones cost the sender score) and an accepted one becomes
//! [`Event::Message`].

pub mod api;
pub mod cli;
pub mod config;
pub mod dialer;
pub mod netkey;
pub mod node;
pub mod rooms;
pub mod store;
pub mod swarm;
pub mod validate;

pub use api::{Command, Event, PeerInfo};
pub use config::NodeConfig;
pub use node::{Node, NodeHandle, StartError};
