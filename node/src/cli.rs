//! Command-line options shared by `hark` and `hark-node` (SPEC §2).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use thiserror::Error;

use crate::config::{default_data_dir, default_name, NodeConfig};
use crate::netkey::{self, NetKeyError};

#[derive(Args, Clone, Debug)]
pub struct NodeArgs {
    /// Your name as others see it (default: $USER).
    #[arg(long, value_name = "NICK")]
    pub name: Option<String>,
    /// Where identity, rooms and history are kept (default: ~/.local/share/hark).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on, e.g. /ip4/0.0.0.0/tcp/7000 (repeatable; default: all interfaces,
    /// ephemeral TCP port, plus QUIC when no network key is set).
    #[arg(long = "listen", value_name = "MULTIADDR", value_parser = parse_multiaddr)]
    pub listen: Vec<Multiaddr>,
    /// A peer to connect to and keep connected, e.g. /ip4/10.0.0.5/tcp/7000/p2p/12D3Koo… (repeatable).
    #[arg(long = "peer", value_name = "MULTIADDR", value_parser = parse_peer)]
    pub peer: Vec<Multiaddr>,
    /// Do not discover peers on the local network with mDNS.
    #[arg(long)]
    pub no_mdns: bool,
    /// The private network's key file (swarm.key format; make one with `hark-node keygen`).
    /// Only nodes with the same key can connect.
    #[arg(long, value_name = "FILE")]
    pub network_key: Option<PathBuf>,
    /// A room name or invite to join at start, beside lobby and the rooms joined before (repeatable).
    #[arg(long = "join", value_name = "ROOM|INVITE")]
    pub join: Vec<String>,
    /// Voice frame length in milliseconds: 20 (default) or 10 (lower latency, more packets).
    #[arg(long, value_name = "MS", default_value_t = 20, value_parser = parse_frame_ms)]
    pub voice_frame_ms: u8,
}

fn parse_frame_ms(text: &str) -> Result<u8, String> {
    match text {
        "10" => Ok(10),
        "20" => Ok(20),
        _ => Err("must be 10 or 20".to_owned()),
    }
}

fn parse_multiaddr(text: &str) -> Result<Multiaddr, String> {
    text.parse().map_err(|e| format!("not a multiaddr ({e})"))
}

fn parse_peer(text: &str) -> Result<Multiaddr, String> {
    let addr = parse_multiaddr(text)?;
    match addr.iter().last() {
        Some(Protocol::P2p(_)) => Ok(addr),
        _ => Err("must end in /p2p/PEER_ID".to_owned()),
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("no data dir: set --data-dir (no home directory found)")]
    NoDataDir,
    #[error(transparent)]
    NetKey(#[from] NetKeyError),
    #[error("--name {0:?}: {1}")]
    BadName(String, &'static str),
    #[error("HARK_CLOCK_OFFSET_MS={0:?} is not a whole number of milliseconds")]
    BadClockOffset(String),
    #[error("HARK_VOICE_DROP_PERCENT={0:?} is not a whole number from 0 to 100")]
    BadVoiceDrop(String),
    #[error("--join {0:?}: {1}")]
    BadJoin(String, crate::rooms::JoinError),
}

impl NodeArgs {
    /// Turn the options into a node configuration, reading the network key file.
    pub fn into_config(self) -> Result<NodeConfig, ConfigError> {
        let name = self.name.unwrap_or_else(default_name);
        hark_proto::envelope::check_nick(&name)
            .map_err(|why| ConfigError::BadName(name.clone(), why))?;
        for target in &self.join {
            crate::rooms::parse_join_target(target)
                .map_err(|e| ConfigError::BadJoin(target.clone(), e))?;
        }
        let data_dir = self
            .data_dir
            .or_else(default_data_dir)
            .ok_or(ConfigError::NoDataDir)?;
        let network_key = self.network_key.as_deref().map(netkey::load).transpose()?;
        Ok(NodeConfig {
            name,
            data_dir,
            listen: self.listen,
            peers: self.peer,
            mdns: !self.no_mdns,
            network_key,
            join: self.join,
            relay: false,
            clock_offset_ms: clock_offset_from_env()?,
            voice_frame_ms: self.voice_frame_ms,
            voice_out: None,
            voice_drop_percent: voice_drop_from_env()?,
            memory_transport: false,
        })
    }
}

/// The test hook `HARK_CLOCK_OFFSET_MS`: milliseconds to add to this node's wall clock.
fn clock_offset_from_env() -> Result<i64, ConfigError> {
    match std::env::var("HARK_CLOCK_OFFSET_MS") {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| ConfigError::BadClockOffset(text)),
        Err(_) => Ok(0),
    }
}

/// The test hook `HARK_VOICE_DROP_PERCENT`: the share of received voice frames to drop.
fn voice_drop_from_env() -> Result<u8, ConfigError> {
    match std::env::var("HARK_VOICE_DROP_PERCENT") {
        Ok(text) => text
            .trim()
            .parse()
            .ok()
            .filter(|p| *p <= 100)
            .ok_or(ConfigError::BadVoiceDrop(text)),
        Err(_) => Ok(0),
    }
}

/// Parse the command line of `program`. `--help` and `--version` print and give exit code 0;
/// any other problem prints one line naming it (not clap's usage block) and gives exit code 2.
pub fn parse_args<P: clap::Parser>(program: &str) -> Result<P, std::process::ExitCode> {
    use clap::error::ErrorKind;
    match P::try_parse() {
        Ok(parsed) => Ok(parsed),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            Err(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!(
                "{program}: {} (see {program} --help)",
                one_line(&e.to_string())
            );
            Err(std::process::ExitCode::from(2))
        }
    }
}

/// The lines of a clap error before its first blank line, joined: the problem without the
/// usage block (a missing argument is listed on the line after the message).
fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    lines.join(" ").trim_start_matches("error: ").to_owned()
}

/// The version both programs print: the crate version and the git commit it was built from
/// (`unknown` outside a git checkout, unless the source bundle recorded it; see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("HARK_COMMIT"),
    ")"
);

/// The command line of `hark`. Defined here, beside [`NodeCli`], so that the man pages and
/// shell completions (`hark-dist docs`) are generated from the very definitions the programs
/// parse.
#[derive(Parser, Debug)]
#[command(
    name = "hark",
    version = VERSION,
    about = "Hark: chat and push-to-talk for private networks with no internet and no server",
    long_about = "Hark: chat and push-to-talk for private networks with no internet and no server. \
                  The terminal client runs a node of its own: it joins the room `lobby` (and any \
                  --join rooms), finds peers on the LAN by mDNS and --peer, and keeps every room's \
                  history in its data dir. Logs go to hark.log in the data dir.",
    after_help = "Inside hark, F1 lists the keys and commands."
)]
pub struct HarkCli {
    #[command(flatten)]
    pub node: NodeArgs,
}

/// The command line of `hark-node`.
#[derive(Parser, Debug)]
#[command(
    name = "hark-node",
    version = VERSION,
    propagate_version = true,
    about = "Hark node without a screen: relay, bot, or JSON-lines control",
    long_about = "Runs the Hark node headless. It joins the room `lobby` (and any --join rooms), finds \
                  peers by mDNS and --peer, and relays room traffic. With --json it reads commands \
                  and writes events as JSON lines (see docs/protocol.md); logs go to stderr."
)]
pub struct NodeCli {
    #[command(subcommand)]
    pub command: Option<NodeSub>,
    #[command(flatten)]
    pub node: NodeArgs,
    /// Read JSON commands on stdin, write JSON events on stdout, one per line. The node quits
    /// when stdin closes.
    #[arg(long)]
    pub json: bool,
    /// Run as an always-on relay: keep every room's full history loaded and answer history
    /// sync for any room member, so late joiners catch up after the senders are gone.
    #[arg(long)]
    pub relay: bool,
    /// Write every received push-to-talk spurt to DIR as a WAV file (48 kHz mono); the path is
    /// reported in the `voice_end` event.
    #[arg(long, value_name = "DIR")]
    pub voice_out: Option<PathBuf>,
}

/// The sub-commands of `hark-node`.
#[derive(Subcommand, Debug)]
pub enum NodeSub {
    /// Write a new private-network key file (swarm.key format, mode 0600).
    Keygen {
        /// Where to write the key; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        network: PathBuf,
    },
    /// Talk to a running node (hark or hark-node) through its control socket,
    /// DATA_DIR/control.sock. Exit 0 done, 1 refused by the node, 2 usage or no node running.
    Ctl(crate::control::ctl::CtlArgs),
    /// Send one message and stay until a peer holds it: exit 0 then, or a one-line reason on
    /// stderr and exit 1 after --deliver-timeout. Takes the usual network options.
    Send(crate::control::oneshot::SendArgs),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_become_one_line() {
        let text = "error: the following required arguments were not provided:\n  --network <FILE>\n\nUsage: x\n";
        assert_eq!(
            one_line(text),
            "the following required arguments were not provided: --network <FILE>"
        );
    }
}
