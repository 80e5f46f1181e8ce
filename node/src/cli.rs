//! Command-line options shared by `hark` and `hark-node` (SPEC §2).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use libp2p::Multiaddr;
use thiserror::Error;

use crate::netkey::NetKeyError;
use crate::settings::{Origin, Settings};

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
    /// A file of rooms and invites to join, one a line (`#` comments), readable by its owner
    /// only (mode 0600): keeps invites off the command line.
    #[arg(long, value_name = "FILE")]
    pub join_file: Option<PathBuf>,
    /// Voice frame length in milliseconds: 20 (default) or 10 (lower latency, more packets).
    #[arg(long, value_name = "MS", value_parser = parse_frame_ms)]
    pub voice_frame_ms: Option<u8>,
    /// Voice bitrate in bit/s, 6000 to 128000 (default 48000: a LAN has room for it, and it
    /// sounds better under loss; 24000 was the default before).
    #[arg(long, value_name = "BITS")]
    pub voice_bitrate: Option<i32>,
    #[command(flatten)]
    pub http: crate::http::HttpArgs,
    /// Serve the browser client over HTTPS on ADDR (IP:PORT, e.g. 0.0.0.0:8443): chat and
    /// push-to-talk from any phone on the LAN. People get in with a one-time link from
    /// `hark-node web-invite` (or `/web-invite` in hark). See docs/web.md.
    #[arg(long, value_name = "ADDR")]
    pub web: Option<std::net::SocketAddr>,
    /// The config file: TOML, one key per long option (`name = "bob"`, `peer = [...]`).
    /// Default: $XDG_CONFIG_HOME/hark/config.toml (~/.config/hark/config.toml), if it exists.
    /// Every option can also be set as HARK_NAME, HARK_DATA_DIR, HARK_PEER (comma-separated), ….
    /// The command line wins over the environment, which wins over the file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the configuration in effect (command line, environment, file and defaults) as
    /// TOML, and exit.
    #[arg(long)]
    pub print_config: bool,
}

fn parse_frame_ms(text: &str) -> Result<u8, String> {
    match text {
        "10" => Ok(10),
        "20" => Ok(20),
        _ => Err("must be 10 or 20".to_owned()),
    }
}

fn parse_multiaddr(text: &str) -> Result<Multiaddr, String> {
    crate::settings::parse_multiaddr(text)
}

fn parse_peer(text: &str) -> Result<Multiaddr, String> {
    crate::settings::parse_peer(text)
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("no data dir: set --data-dir (no home directory found)")]
    NoDataDir,
    #[error(transparent)]
    NetKey(#[from] NetKeyError),
    /// A bad value, a bad or missing config file: the whole one-line message.
    #[error("{0}")]
    Invalid(String),
    #[error("HARK_CLOCK_OFFSET_MS={0:?} is not a whole number of milliseconds")]
    BadClockOffset(String),
    #[error("HARK_VOICE_DROP_PERCENT={0:?} is not a whole number from 0 to 100")]
    BadVoiceDrop(String),
    #[error("HARK_TEST_FSYNC_DELAY_MS={0:?} is not a whole number of milliseconds up to 60000")]
    BadFsyncDelay(String),
}

impl NodeArgs {
    /// What the command line itself sets (a switch that is off is "not set").
    pub fn command_line(&self) -> Settings {
        let strings = |addrs: &[Multiaddr]| {
            (!addrs.is_empty()).then(|| addrs.iter().map(ToString::to_string).collect())
        };
        Settings {
            name: self.name.clone(),
            data_dir: self.data_dir.clone(),
            listen: strings(&self.listen),
            peer: strings(&self.peer),
            no_mdns: self.no_mdns.then_some(true),
            network_key: self.network_key.clone(),
            join: (!self.join.is_empty()).then(|| self.join.clone()),
            join_file: self.join_file.clone(),
            voice_frame_ms: self.voice_frame_ms,
            voice_bitrate: self.voice_bitrate,
            http: self.http.http,
            http_token: self.http.http_token.clone(),
            web: self.web,
            ..Settings::default()
        }
    }

    /// The settings in effect: these options and `extra` (the program's own options, from its
    /// command line), over the `HARK_*` environment, over the config file. Each source is
    /// checked on its own; a missing default config file is no error, a missing `--config`
    /// (or `HARK_CONFIG`) file is.
    pub fn settings(&self, extra: Settings) -> Result<Settings, ConfigError> {
        let cli = self.command_line().or(extra);
        cli.check(&Origin::CommandLine)?;
        let env = Settings::from_env()?;
        env.check(&Origin::Env)?;
        let from_env = std::env::var_os("HARK_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let file = match self.config.clone().or(from_env) {
            Some(path) => Settings::from_file(&path, true)?,
            None => match crate::settings::default_config_file() {
                Some(path) => Settings::from_file(&path, false)?,
                None => Settings::default(),
            },
        };
        Ok(cli.or(env).or(file))
    }
}

/// [`NodeArgs::settings`] for a program's `main`: a problem is one line on stderr
/// (`PROGRAM: …`) and exit code 2; `--print-config` prints the settings in effect and gives
/// exit code 0.
pub fn settings_or_exit(
    program: &str,
    args: &NodeArgs,
    extra: Settings,
) -> Result<Settings, std::process::ExitCode> {
    match args.settings(extra) {
        Ok(settings) if args.print_config => {
            let source = match (&args.config, std::env::var_os("HARK_CONFIG")) {
                (Some(path), _) => path.display().to_string(),
                (None, Some(path)) if !path.is_empty() => PathBuf::from(path).display().to_string(),
                _ => crate::settings::default_config_file()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "no config file".to_owned()),
            };
            print!(
                "# {program}: the configuration in effect (command line > HARK_* > {source} > defaults)\n{}",
                settings.effective().to_toml()
            );
            Err(std::process::ExitCode::SUCCESS)
        }
        Ok(settings) => Ok(settings),
        Err(e) => {
            eprintln!("{program}: {e}");
            Err(std::process::ExitCode::from(2))
        }
    }
}

/// The test-only switches the production binaries read: each one set gets a warning at start,
/// so that a node running with a shifted clock or dropped voice is never a mystery. Call once
/// logging is set up.
pub fn warn_test_switches() {
    for var in [
        "HARK_CLOCK_OFFSET_MS",
        "HARK_VOICE_DROP_PERCENT",
        "HARK_TEST_FSYNC_DELAY_MS",
    ] {
        if let Some(value) = std::env::var_os(var) {
            tracing::warn!(
                "TEST-ONLY SWITCH {var}={} IS SET: this node is running with a test hook; unset it for real use",
                value.to_string_lossy()
            );
        }
    }
}

/// The test hook `HARK_CLOCK_OFFSET_MS`: milliseconds to add to this node's wall clock.
pub(crate) fn clock_offset_from_env() -> Result<i64, ConfigError> {
    match std::env::var("HARK_CLOCK_OFFSET_MS") {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| ConfigError::BadClockOffset(text)),
        Err(_) => Ok(0),
    }
}

/// The test hook `HARK_VOICE_DROP_PERCENT`: the share of received voice frames to drop.
pub(crate) fn voice_drop_from_env() -> Result<u8, ConfigError> {
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

/// The test hook `HARK_TEST_FSYNC_DELAY_MS`: how much longer than the disk each fsync of
/// the node's own messages takes, to test a slow disk.
pub(crate) fn fsync_delay_from_env() -> Result<u64, ConfigError> {
    match std::env::var("HARK_TEST_FSYNC_DELAY_MS") {
        Ok(text) => text
            .trim()
            .parse()
            .ok()
            .filter(|ms| *ms <= 60_000)
            .ok_or(ConfigError::BadFsyncDelay(text)),
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
    /// sync for any room member, so late joiners catch up after the senders are gone; and, as
    /// a blind relay, keep the sealed messages of DMs and private rooms it is not in (no key,
    /// bounded in blind.db) for members who come back later.
    #[arg(long)]
    pub relay: bool,
    /// Write every received push-to-talk spurt to DIR as a WAV file (48 kHz mono); the path is
    /// reported in the `voice_end` event.
    #[arg(long, value_name = "DIR")]
    pub voice_out: Option<PathBuf>,
    /// Without --json, print every message (room, sender, text) on stdout, and so into the
    /// journal. Off by default: a relay's log holds no message text.
    #[arg(long)]
    pub print_messages: bool,
}

impl NodeCli {
    /// The options only `hark-node` has, as settings (a switch that is off is "not set").
    pub fn own_settings(&self) -> Settings {
        Settings {
            relay: self.relay.then_some(true),
            json: self.json.then_some(true),
            voice_out: self.voice_out.clone(),
            print_messages: self.print_messages.then_some(true),
            ..Settings::default()
        }
    }
}

/// The sub-commands of `hark-node`.
#[derive(Subcommand, Debug)]
// Parsed once at start: the size of `Send`'s node options does not matter.
#[allow(clippy::large_enum_variant)]
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
    /// Show the safety number shared with PEER (its digits and a QR code) from the node
    /// running on the data dir, to compare with PEER's screen; --confirm marks PEER verified.
    /// Exit 0 done, 1 refused (unknown or ambiguous name), 2 usage or no node running.
    Verify(crate::control::ctl::VerifyArgs),
    /// Print a one-time join link for the browser client of the node running on the data dir
    /// (it must serve --web). The link lets one person in, once.
    WebInvite(crate::web::invite::WebInviteArgs),
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
