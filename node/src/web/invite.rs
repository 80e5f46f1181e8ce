//! `hark-node web-invite [--data-dir DIR] [--name NAME] [--room ROOM]… [--hours H]`: a one-time
//! join link for the browser client of the node running on DIR.
//!
//! The command writes the link's grant into `DIR/web/invites/` (only the data dir's owner can:
//! the same trust as the control socket) after checking, through the control socket, that a
//! node runs there, and reads the node's URL from `DIR/web/url`, which only a node serving
//! `--web` writes. The page shows a clear message for a link that is bad, used or expired.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::users::{write_invite, InviteGrant};

/// How long a join link stays valid unless `--hours` says otherwise.
pub const DEFAULT_HOURS: u64 = 24;

#[derive(Args, Debug, Clone)]
pub struct WebInviteArgs {
    /// The running node's data dir (default: ~/.local/share/hark).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The name proposed to the new user (they may change it when they join).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// A room the user is put in besides lobby, e.g. a private room of this node (repeatable).
    #[arg(long = "room", value_name = "ROOM")]
    pub rooms: Vec<String>,
    /// Hours before the link expires (1 to 8760, a year).
    #[arg(long, value_name = "H", default_value_t = DEFAULT_HOURS,
          value_parser = clap::value_parser!(u64).range(1..=8_760))]
    pub hours: u64,
    /// Do not print the link as a QR code.
    #[arg(long)]
    pub no_qr: bool,
}

/// Make a join link for the node on `data_dir`: its URL (`https://…/#join=TOKEN`).
pub fn make_link(
    data_dir: &std::path::Path,
    name: Option<String>,
    rooms: Vec<String>,
    hours: u64,
) -> Result<String, String> {
    if let Some(name) = &name {
        hark_proto::envelope::check_own_nick(name)
            .map_err(|why| format!("the name {name:?}: {why}"))?;
    }
    let web = super::web_dir(data_dir);
    let url = std::fs::read_to_string(web.join(super::URL_FILE)).map_err(|_| {
        format!(
            "the node on {} does not serve the web client: start it with --web ADDR",
            data_dir.display()
        )
    })?;
    let rooms = rooms
        .iter()
        .map(|r| {
            let room = r.trim().trim_start_matches('#').to_lowercase();
            hark_proto::RoomName::parse(&room)
                .map(|_| room)
                .map_err(|why| format!("--room {r:?}: {why}"))
        })
        .collect::<Result<_, _>>()?;
    let grant = InviteGrant {
        name,
        rooms,
        expires_ms: crate::clock::wall_ms().saturating_add(hours.saturating_mul(3_600_000)),
    };
    let token = write_invite(&web, &grant)?;
    // The page fills its name box with the proposed name (the fragment never leaves the
    // browser).
    let proposed = grant
        .name
        .as_deref()
        .map(|name| format!("&name={}", url_escape(name)))
        .unwrap_or_default();
    Ok(format!("{}#join={token}{proposed}", url.trim()))
}

/// `text` percent-encoded for a URL's fragment (every byte but unreserved ASCII).
fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Join links for the web client a node serves, for that node's own UI (`/web-invite` in
/// `hark`): the same one-time links as `hark-node web-invite` makes, lobby only, valid
/// [`DEFAULT_HOURS`]. Handed out by [`super::serve`], so only a node that serves `--web` has one.
#[derive(Clone, Debug)]
pub struct JoinLinks {
    data_dir: PathBuf,
}

impl JoinLinks {
    pub(super) fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
        }
    }

    /// A new link (`https://…/#join=TOKEN`), proposing `name` to the new user.
    pub fn make(&self, name: Option<String>) -> Result<String, String> {
        make_link(&self.data_dir, name, Vec::new(), DEFAULT_HOURS)
    }
}

/// A QR code of `text` for a terminal (two rows per character line).
pub fn qr_text(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build(),
    )
}

pub fn main(args: &WebInviteArgs) -> ExitCode {
    let Some(data_dir) = args
        .data_dir
        .clone()
        .or_else(crate::config::default_data_dir)
    else {
        eprintln!("hark-node web-invite: no data dir: give --data-dir DIR");
        return ExitCode::from(2);
    };
    let socket = crate::control::socket::socket_path(&data_dir);
    if std::os::unix::net::UnixStream::connect(&socket).is_err() {
        eprintln!(
            "hark-node web-invite: no node running on {} (no control socket at {})",
            data_dir.display(),
            socket.display()
        );
        return ExitCode::from(2);
    }
    match make_link(&data_dir, args.name.clone(), args.rooms.clone(), args.hours) {
        Ok(link) => {
            println!("{link}");
            if !args.no_qr {
                if let Some(qr) = qr_text(&link) {
                    eprintln!("{qr}");
                }
            }
            eprintln!(
                "One person, once, within {} h. The browser warns about the node's own \
                 certificate: compare its SHA-256 fingerprint with the node's log.",
                args.hours
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hark-node web-invite: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::users::Users;
    use super::*;

    #[test]
    fn join_links_of_a_serving_node_let_one_person_in() {
        let dir = tempfile::tempdir().unwrap();
        let links = JoinLinks::new(dir.path());
        // No URL written: the node does not serve the web client (any more).
        let refused = links.make(None).unwrap_err();
        assert!(refused.contains("--web ADDR"), "{refused}");

        let web = super::super::web_dir(dir.path());
        std::fs::create_dir_all(&web).unwrap();
        std::fs::write(web.join(super::super::URL_FILE), "https://10.0.0.5:8443/\n").unwrap();
        assert!(links
            .make(Some("a b".into()))
            .unwrap_err()
            .contains("\"a b\""));
        let link = links.make(Some("carol".into())).unwrap();
        // The page proposes the name from the link's fragment.
        let (token, proposed) = link
            .strip_prefix("https://10.0.0.5:8443/#join=")
            .and_then(|rest| rest.split_once("&name="))
            .unwrap_or_else(|| panic!("{link}"));
        assert_eq!(proposed, "carol");
        assert_eq!(url_escape("Zoë-1 #2"), "Zo%C3%AB-1%20%232");
        let mut users = Users::open(&web).unwrap();
        let now = crate::clock::wall_ms();
        let (user, _session) = users.redeem(token, None, now).unwrap();
        assert_eq!(user.name, "carol");
        assert_eq!(user.rooms.len(), 1, "lobby only: {:?}", user.rooms);
        assert!(users.redeem(token, None, now).is_err(), "once only");
        // Valid for DEFAULT_HOURS, not longer.
        let again = links.make(None).unwrap();
        let token = again.rsplit('=').next().unwrap();
        let late = now + (DEFAULT_HOURS + 1) * 3_600_000;
        assert!(users.redeem(token, None, late).is_err());
    }
}
