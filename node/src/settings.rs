//! Where a node's options come from (SPEC §8 "Config"): the command line, then `HARK_*`
//! environment variables, then the config file (`--config FILE`, default
//! `$XDG_CONFIG_HOME/hark/config.toml`), then the defaults.
//!
//! [`Settings`] is the config file's format, one key per long option (`name`, `data-dir`,
//! `listen`, …), and also what each of the other sources is read into, so that merging is a
//! field-by-field `or` and `--print-config` writes the same format back. Each source is checked
//! on its own, so that an error names where the bad value came from (`--name`, `HARK_NAME`, or
//! the file and its key). Adding an option: a field here, a line in [`Settings::or`], one in
//! [`Settings::from_env`], its check in [`Settings::check`], and the key in docs/operations.md.

use std::path::{Path, PathBuf};

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

use crate::cli::ConfigError;
use crate::config::{default_data_dir, default_name, NodeConfig};

/// Every option a node takes, each unset (`None`) unless its source sets it. Keys are the
/// long options' names; unknown keys are an error.
#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_mdns: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<Vec<String>>,
    /// Rooms and invites to join, one a line, from a file only its owner can read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_frame_ms: Option<u8>,
    /// Voice bitrate, bit/s (docs/performance.md, "Voice quality").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_bitrate: Option<i32>,
    /// The HTTP API's address, and its bearer token's file (docs/protocol.md, "HTTP").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<std::net::SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_token: Option<PathBuf>,
    /// The browser client's HTTPS address (docs/web.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web: Option<std::net::SocketAddr>,
    // hark-node only (`hark` reads and ignores them, so that one file serves both).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_out: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub print_messages: Option<bool>,
    /// Outgoing hooks (`[[hook]]` tables; config file only), run by [`crate::hooks`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hook: Vec<Hook>,
}

/// One outgoing hook: when a `room` sees one of the kinds in `on`, POST the message as JSON to
/// `url`, or run `command` with it on stdin. Exactly one of `url` and `command`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Hook {
    pub room: String,
    pub on: Vec<HookOn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// What a `url` hook POSTs: the `message` event as JSON lines carry it (default), or
    /// `{"text": …}` for Mattermost/Slack-compatible incoming webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<HookFormat>,
    /// Attempts after the first failed one before the message goes to the dead-letter file
    /// (default 5: retried after 0.5, 1, 2, 4 and 8 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Seconds one attempt may take (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// The body of a `url` hook's POST.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HookFormat {
    /// The `message` event, as on the JSON lines.
    Event,
    /// `{"text":"…"}`: Mattermost and Slack incoming webhooks.
    Slack,
}

/// What a hook fires on.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HookOn {
    Message,
    Alert,
    Mention,
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone)]
pub enum Origin {
    CommandLine,
    Env,
    File(PathBuf),
}

impl Origin {
    /// How the user wrote `key` in this source: `--data-dir`, `HARK_DATA_DIR`, or
    /// `FILE: data-dir`.
    pub fn label(&self, key: &str) -> String {
        match self {
            Origin::CommandLine => format!("--{key}"),
            Origin::Env => env_name(key),
            Origin::File(path) => format!("{}: {key}", path.display()),
        }
    }
}

/// The environment variable for a key: `data-dir` → `HARK_DATA_DIR`.
pub fn env_name(key: &str) -> String {
    format!("HARK_{}", key.to_ascii_uppercase().replace('-', "_"))
}

/// The default config file: `$XDG_CONFIG_HOME/hark/config.toml` (`~/.config/hark/config.toml`).
pub fn default_config_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "hark").map(|dirs| dirs.config_dir().join("config.toml"))
}

fn bad(
    origin: &Origin,
    key: &str,
    value: impl std::fmt::Debug,
    why: impl std::fmt::Display,
) -> ConfigError {
    ConfigError::Invalid(format!("{} {value:?}: {why}", origin.label(key)))
}

impl Settings {
    /// Field by field: `self` where set, otherwise `lower` (a list set in `self` replaces the
    /// whole list below it).
    pub fn or(self, lower: Settings) -> Settings {
        Settings {
            name: self.name.or(lower.name),
            data_dir: self.data_dir.or(lower.data_dir),
            listen: self.listen.or(lower.listen),
            peer: self.peer.or(lower.peer),
            no_mdns: self.no_mdns.or(lower.no_mdns),
            network_key: self.network_key.or(lower.network_key),
            join: self.join.or(lower.join),
            join_file: self.join_file.or(lower.join_file),
            voice_frame_ms: self.voice_frame_ms.or(lower.voice_frame_ms),
            voice_bitrate: self.voice_bitrate.or(lower.voice_bitrate),
            http: self.http.or(lower.http),
            http_token: self.http_token.or(lower.http_token),
            web: self.web.or(lower.web),
            relay: self.relay.or(lower.relay),
            json: self.json.or(lower.json),
            voice_out: self.voice_out.or(lower.voice_out),
            print_messages: self.print_messages.or(lower.print_messages),
            hook: if self.hook.is_empty() {
                lower.hook
            } else {
                self.hook
            },
        }
    }

    /// The `HARK_*` variables that are set (and not empty). Lists are comma-separated; switches
    /// take `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`.
    pub fn from_env() -> Result<Settings, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let text = |key: &str| get(&env_name(key)).filter(|v| !v.trim().is_empty());
        let list = |key: &str| {
            text(key).map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
        };
        let switch = |key: &str| -> Result<Option<bool>, ConfigError> {
            let Some(v) = text(key) else { return Ok(None) };
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(Some(true)),
                "0" | "false" | "no" | "off" => Ok(Some(false)),
                _ => Err(bad(&Origin::Env, key, &v, "must be true or false")),
            }
        };
        let voice_frame_ms = match text("voice-frame-ms") {
            Some(v) => Some(
                v.trim()
                    .parse()
                    .map_err(|_| bad(&Origin::Env, "voice-frame-ms", &v, "must be 10 or 20"))?,
            ),
            None => None,
        };
        let voice_bitrate = match text("voice-bitrate") {
            Some(v) => Some(v.trim().parse().map_err(|_| {
                bad(
                    &Origin::Env,
                    "voice-bitrate",
                    &v,
                    "must be a number of bit/s",
                )
            })?),
            None => None,
        };
        let http = match text("http") {
            Some(v) => Some(v.trim().parse().map_err(|_| {
                bad(
                    &Origin::Env,
                    "http",
                    &v,
                    "must be IP:PORT, e.g. 127.0.0.1:8080",
                )
            })?),
            None => None,
        };
        let web = match text("web") {
            Some(v) => Some(v.trim().parse().map_err(|_| {
                bad(
                    &Origin::Env,
                    "web",
                    &v,
                    "must be IP:PORT, e.g. 0.0.0.0:8443",
                )
            })?),
            None => None,
        };
        Ok(Settings {
            name: text("name"),
            data_dir: text("data-dir").map(PathBuf::from),
            listen: list("listen"),
            peer: list("peer"),
            no_mdns: switch("no-mdns")?,
            network_key: text("network-key").map(PathBuf::from),
            join: list("join"),
            join_file: text("join-file").map(PathBuf::from),
            voice_frame_ms,
            voice_bitrate,
            http,
            http_token: text("http-token").map(PathBuf::from),
            web,
            relay: switch("relay")?,
            json: switch("json")?,
            voice_out: text("voice-out").map(PathBuf::from),
            print_messages: switch("print-messages")?,
            hook: Vec::new(),
        })
    }

    /// Read a config file. `explicit` (from `--config` or `HARK_CONFIG`): a missing file is an
    /// error; otherwise (the default path) a missing file is no settings.
    pub fn from_file(path: &Path, explicit: bool) -> Result<Settings, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Settings::default())
            }
            Err(e) => {
                return Err(ConfigError::Invalid(format!(
                    "config file {}: {e}",
                    path.display()
                )))
            }
        };
        let settings = Self::parse(&text).map_err(|why| {
            ConfigError::Invalid(format!("config file {}: {why}", path.display()))
        })?;
        settings.check(&Origin::File(path.to_path_buf()))?;
        Ok(settings)
    }

    /// Parse config-file text; the error is one line (with the line number when known).
    pub fn parse(text: &str) -> Result<Settings, String> {
        toml::from_str(text).map_err(|e: toml::de::Error| {
            let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: {message}")
                }
                None => message,
            }
        })
    }

    /// Check the values one source set, so that an error names that source.
    pub fn check(&self, origin: &Origin) -> Result<(), ConfigError> {
        if let Some(name) = &self.name {
            hark_proto::envelope::check_own_nick(name)
                .map_err(|why| bad(origin, "name", name, why))?;
        }
        for addr in self.listen.iter().flatten() {
            parse_multiaddr(addr).map_err(|why| bad(origin, "listen", addr, why))?;
        }
        for addr in self.peer.iter().flatten() {
            parse_peer(addr).map_err(|why| bad(origin, "peer", addr, why))?;
        }
        for target in self.join.iter().flatten() {
            crate::rooms::parse_join_target(target)
                .map_err(|why| bad(origin, "join", target, why))?;
        }
        if let Some(ms) = self.voice_frame_ms {
            if ms != 10 && ms != 20 {
                return Err(bad(origin, "voice-frame-ms", ms, "must be 10 or 20"));
            }
        }
        if let Some(bitrate) = self.voice_bitrate {
            use crate::voice::codec::{MAX_BITRATE, MIN_BITRATE};
            if !(MIN_BITRATE..=MAX_BITRATE).contains(&bitrate) {
                let why = format!("must be {MIN_BITRATE} to {MAX_BITRATE} (bit/s)");
                return Err(bad(origin, "voice-bitrate", bitrate, why));
            }
        }
        for (i, hook) in self.hook.iter().enumerate() {
            let at = origin.label(&format!("hook {} (room {:?})", i + 1, hook.room));
            let why = if crate::rooms::parse_join_target(&hook.room).is_err()
                || hook.room.starts_with("hark:")
            {
                Some("room must be a room name".to_owned())
            } else if hook.on.is_empty() {
                Some("on must list at least one of message, alert, mention".to_owned())
            } else {
                match (&hook.url, &hook.command) {
                    (Some(_), Some(_)) | (None, None) => {
                        Some("give exactly one of url and command".to_owned())
                    }
                    (Some(url), None)
                        if !(url.starts_with("http://") || url.starts_with("https://")) =>
                    {
                        Some(format!("url {url:?} must start with http:// or https://"))
                    }
                    (None, Some(command)) if command.trim().is_empty() => {
                        Some("command is empty".to_owned())
                    }
                    (None, Some(_)) if hook.format.is_some() => {
                        Some("format is for url hooks (a command gets the event)".to_owned())
                    }
                    _ if hook.timeout == Some(0) => Some("timeout must be at least 1".to_owned()),
                    _ if hook.retries.is_some_and(|r| r > 20) => {
                        Some("retries must be at most 20".to_owned())
                    }
                    _ => None,
                }
            };
            if let Some(why) = why {
                return Err(ConfigError::Invalid(format!("{at}: {why}")));
            }
        }
        Ok(())
    }

    /// Every option with its value in effect: the defaults filled in where no source set one
    /// (what `--print-config` shows).
    pub fn effective(self) -> Settings {
        Settings {
            name: Some(self.name.unwrap_or_else(default_name)),
            data_dir: self.data_dir.or_else(default_data_dir),
            listen: Some(self.listen.unwrap_or_default()),
            peer: Some(self.peer.unwrap_or_default()),
            no_mdns: Some(self.no_mdns.unwrap_or(false)),
            network_key: self.network_key,
            join: Some(self.join.unwrap_or_default()),
            join_file: self.join_file,
            voice_frame_ms: Some(self.voice_frame_ms.unwrap_or(20)),
            voice_bitrate: Some(
                self.voice_bitrate
                    .unwrap_or(crate::voice::codec::DEFAULT_BITRATE),
            ),
            http: self.http,
            http_token: self.http_token,
            web: self.web,
            relay: Some(self.relay.unwrap_or(false)),
            json: Some(self.json.unwrap_or(false)),
            voice_out: self.voice_out,
            print_messages: Some(self.print_messages.unwrap_or(false)),
            hook: self.hook,
        }
    }

    /// As config-file text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot write the config: {e}\n"))
    }

    /// The node configuration these settings describe: reads the network key and the join
    /// file. `relay` and `voice-out` are left to `hark-node` (`hark` ignores them).
    pub fn node_config(&self) -> Result<NodeConfig, ConfigError> {
        let data_dir = self
            .data_dir
            .clone()
            .or_else(default_data_dir)
            .ok_or(ConfigError::NoDataDir)?;
        let network_key = self
            .network_key
            .as_deref()
            .map(crate::netkey::load)
            .transpose()?;
        let parse_all = |list: &Option<Vec<String>>,
                         parse: fn(&str) -> Result<Multiaddr, String>| {
            list.iter()
                .flatten()
                .map(|a| parse(a).map_err(ConfigError::Invalid))
                .collect::<Result<Vec<_>, _>>()
        };
        let mut join = self.join.clone().unwrap_or_default();
        if let Some(path) = &self.join_file {
            join.extend(read_join_file(path)?);
        }
        Ok(NodeConfig {
            name: self.name.clone().unwrap_or_else(default_name),
            data_dir,
            listen: parse_all(&self.listen, parse_multiaddr)?,
            peers: parse_all(&self.peer, parse_peer)?,
            mdns: !self.no_mdns.unwrap_or(false),
            network_key,
            join,
            relay: false,
            clock_offset_ms: crate::cli::clock_offset_from_env()?,
            voice_frame_ms: self.voice_frame_ms.unwrap_or(20),
            voice_bitrate: self
                .voice_bitrate
                .unwrap_or(crate::voice::codec::DEFAULT_BITRATE),
            voice_out: None,
            voice_drop_percent: crate::cli::voice_drop_from_env()?,
            fsync_delay_ms: crate::cli::fsync_delay_from_env()?,
            memory_transport: false,
            hooks: self.hook.clone(),
        })
    }
}

/// The rooms and invites of a join file: one a line; blank lines and `#` comments skipped. The
/// file holds room keys, so it must be private to its owner (mode 0600 or 0400).
pub fn read_join_file(path: &Path) -> Result<Vec<String>, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |why: String| ConfigError::Invalid(format!("join-file {}: {why}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(fail(format!(
            "mode {mode:04o} lets group or others at the invites in it; chmod 0600 it"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let mut targets = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The line itself may be a secret invite: the error names its number only.
        crate::rooms::parse_join_target(line)
            .map_err(|why| fail(format!("line {}: {why}", i + 1)))?;
        targets.push(line.to_owned());
    }
    Ok(targets)
}

pub(crate) fn parse_multiaddr(text: &str) -> Result<Multiaddr, String> {
    text.parse().map_err(|e| format!("not a multiaddr ({e})"))
}

pub(crate) fn parse_peer(text: &str) -> Result<Multiaddr, String> {
    let addr = parse_multiaddr(text)?;
    match addr.iter().last() {
        Some(Protocol::P2p(_)) => Ok(addr),
        _ => Err("must end in /p2p/PEER_ID".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses_and_prints_back() {
        let text = r#"
name = "relay"
data-dir = "/var/lib/hark"
listen = ["/ip4/0.0.0.0/tcp/7000"]
peer = ["/ip4/10.0.0.5/tcp/7000/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"]
no-mdns = true
network-key = "/etc/hark/swarm.key"
join = ["ops"]
join-file = "/etc/hark/invites"
voice-frame-ms = 10
relay = true
json = false
voice-out = "/var/lib/hark/voice"
print-messages = true

[[hook]]
room = "ops"
on = ["alert", "mention"]
url = "http://10.0.0.9/hook"

[[hook]]
room = "lobby"
on = ["message"]
command = "logger -t hark"
"#;
        let settings = Settings::parse(text).unwrap();
        settings.check(&Origin::File("c.toml".into())).unwrap();
        assert_eq!(settings.name.as_deref(), Some("relay"));
        assert_eq!(settings.hook.len(), 2);
        assert_eq!(settings.hook[0].on, vec![HookOn::Alert, HookOn::Mention]);
        let again = Settings::parse(&settings.to_toml()).unwrap();
        assert_eq!(again, settings);
    }

    #[test]
    fn unknown_keys_are_one_line_errors_naming_the_key() {
        let e = Settings::parse("name = \"a\"\nnmae = \"b\"\n").unwrap_err();
        assert!(e.contains("nmae") && e.starts_with("line 2:"), "{e}");
        assert!(!e.contains('\n'));
        let e = Settings::parse(
            "[[hook]]\nroom = \"a\"\non = [\"message\"]\nurl = \"http://x\"\nmethod = \"GET\"\n",
        )
        .unwrap_err();
        assert!(e.contains("method"), "{e}");
        let e = Settings::parse("[[hook]]\nroom = \"a\"\non = [\"msg\"]\nurl = \"http://x\"\n")
            .unwrap_err();
        assert!(e.contains("msg"), "{e}");
    }

    #[test]
    fn hooks_are_checked() {
        let check = |hook: &str| {
            Settings::parse(hook)
                .unwrap()
                .check(&Origin::File("c.toml".into()))
                .map_err(|e| e.to_string())
        };
        let both = check(
            "[[hook]]\nroom = \"a\"\non = [\"message\"]\nurl = \"http://x\"\ncommand = \"true\"\n",
        );
        assert!(both.unwrap_err().contains("exactly one"));
        let none = check("[[hook]]\nroom = \"a\"\non = [\"message\"]\n");
        assert!(none.unwrap_err().contains("exactly one"));
        let empty = check("[[hook]]\nroom = \"a\"\non = []\ncommand = \"true\"\n");
        assert!(empty.unwrap_err().contains("at least one"));
        let ftp = check("[[hook]]\nroom = \"a\"\non = [\"alert\"]\nurl = \"ftp://x\"\n");
        assert!(ftp.unwrap_err().contains("http://"));
    }

    #[test]
    fn env_lists_switches_and_errors() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let s = Settings::from_vars(vars(&[
            ("HARK_NAME", "bob"),
            ("HARK_JOIN", "ops, radio,,"),
            ("HARK_NO_MDNS", "yes"),
            ("HARK_RELAY", "0"),
            ("HARK_DATA_DIR", ""),
        ]))
        .unwrap();
        assert_eq!(s.name.as_deref(), Some("bob"));
        assert_eq!(s.join, Some(vec!["ops".to_owned(), "radio".to_owned()]));
        assert_eq!(s.no_mdns, Some(true));
        assert_eq!(s.relay, Some(false));
        assert_eq!(s.data_dir, None);
        let e = Settings::from_vars(vars(&[("HARK_NO_MDNS", "maybe")])).unwrap_err();
        assert!(e.to_string().starts_with("HARK_NO_MDNS"), "{e}");
        let s = Settings::from_vars(vars(&[("HARK_PEER", "/ip4/1.2.3.4/tcp/1")])).unwrap();
        let e = s.check(&Origin::Env).unwrap_err().to_string();
        assert!(e.starts_with("HARK_PEER") && e.contains("/p2p/"), "{e}");
    }

    #[test]
    fn precedence_is_field_by_field() {
        let cli = Settings {
            name: Some("cli".into()),
            ..Settings::default()
        };
        let env = Settings {
            name: Some("env".into()),
            join: Some(vec!["a".into()]),
            ..Settings::default()
        };
        let file = Settings {
            join: Some(vec!["b".into()]),
            relay: Some(true),
            ..Settings::default()
        };
        let merged = cli.or(env).or(file);
        assert_eq!(merged.name.as_deref(), Some("cli"));
        assert_eq!(merged.join, Some(vec!["a".to_owned()]));
        assert_eq!(merged.relay, Some(true));
    }

    #[test]
    fn voice_bitrate_from_each_source_is_checked() {
        let file = Settings::parse("voice-bitrate = 32000\n").unwrap();
        file.check(&Origin::File("c.toml".into())).unwrap();
        assert_eq!(file.voice_bitrate, Some(32_000));
        assert_eq!(file.clone().effective().voice_bitrate, Some(32_000));
        assert_eq!(
            Settings::default().effective().voice_bitrate,
            Some(crate::voice::codec::DEFAULT_BITRATE)
        );
        let low = Settings::parse("voice-bitrate = 500\n").unwrap();
        let e = low.check(&Origin::File("c.toml".into())).unwrap_err();
        assert!(e.to_string().contains("voice-bitrate"), "{e}");
        let env =
            Settings::from_vars(|name| (name == "HARK_VOICE_BITRATE").then(|| "40000".to_owned()))
                .unwrap();
        assert_eq!(env.voice_bitrate, Some(40_000));
        let e =
            Settings::from_vars(|name| (name == "HARK_VOICE_BITRATE").then(|| "fast".to_owned()))
                .unwrap_err();
        assert!(e.to_string().starts_with("HARK_VOICE_BITRATE"), "{e}");
    }

    #[test]
    fn join_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("invites");
        std::fs::write(&path, "# rooms\nops\n\n  radio  \n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_join_file(&path).unwrap_err().to_string();
        assert!(e.contains("0644") && e.contains("chmod 0600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_join_file(&path).unwrap(), vec!["ops", "radio"]);
        std::fs::write(&path, "ops\nhark:notaninvite\n").unwrap();
        let e = read_join_file(&path).unwrap_err().to_string();
        assert!(e.contains("line 2") && !e.contains("notaninvite"), "{e}");
    }
}
