//! `hark-node ctl …`: one command against a running node's control socket.
//!
//! Exit status: 0 done; 1 refused by the node (its one-line reason on stderr); 2 usage, or no
//! node running at `DATA_DIR/control.sock`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::socket::socket_path;

#[derive(Args, Debug)]
pub struct CtlArgs {
    /// The running node's data directory (default: $HARK_DATA_DIR, else the platform's,
    /// ~/.local/share/hark on Linux).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub action: CtlAction,
}

#[derive(Subcommand, Debug)]
pub enum CtlAction {
    /// Send a chat line; returns once it is stored durably (`sent`), printing that event.
    Send { room: String, text: String },
    /// Send an action line (/me).
    Me { room: String, text: String },
    /// Send a direct message to PEER (a peer id, or a name the node heard) in the room
    /// `@PEER_ID`; returns once it is stored durably (`sent`), printing that event.
    Dm { peer: String, text: String },
    /// Send an alert (the panic button).
    Alert { room: String, text: String },
    /// Print a room's stored messages as JSON lines, oldest first.
    History {
        room: String,
        /// How many (default 100, at most 10 000).
        #[arg(long)]
        limit: Option<usize>,
        /// Only messages before this message id: the next page back.
        #[arg(long, value_name = "ID")]
        before: Option<String>,
    },
    /// Print the connected peers (one `peers` event).
    Peers,
    /// Follow events as JSON lines (all rooms, or only those named) until the node stops.
    Tail { rooms: Vec<String> },
    /// Key (start) or release (stop) the microphone of a running `hark` in ROOM.
    Ptt { action: PttAction, room: String },
    /// Take PEER (a peer id, or a name heard) out of a private room: it moves to a new key
    /// (owner and admins only); prints the `kicked` event.
    Kick { room: String, peer: String },
    /// Make PEER an admin of a private room (its owner only); prints `members`.
    Promote { room: String, peer: String },
    /// Print a private room's owner, admins, members and key epoch (one `members` event).
    Members { room: String },
    /// Print the safety number shared with PEER (one `safety_number` event); see
    /// `hark-node verify` for the same on a screen.
    Verify {
        peer: String,
        #[command(flatten)]
        mark: VerifyMark,
    },
}

/// What `verify` does to the peer's mark besides showing the number.
#[derive(Args, Debug, Default, Clone, Copy)]
pub struct VerifyMark {
    /// The numbers matched: mark PEER verified.
    #[arg(long, conflicts_with = "revoke")]
    pub confirm: bool,
    /// Take PEER's verified mark away.
    #[arg(long)]
    pub revoke: bool,
}

impl VerifyMark {
    fn confirm(self) -> Option<bool> {
        match (self.confirm, self.revoke) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

/// `hark-node verify PEER`: the safety number to compare with PEER, from a running node.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The running node's data directory (as for `ctl`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A peer id, or a name heard by the node (`bob`, or `bob#a1c2` when several use it).
    pub peer: String,
    #[command(flatten)]
    pub mark: VerifyMark,
    /// Print the `safety_number` event as a JSON line instead of text and a QR code.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum PttAction {
    Start,
    Stop,
}

/// How long `ctl` waits for a node's `ready` once connected.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Run `ctl` (inside a tokio runtime).
pub async fn run(args: &CtlArgs) -> ExitCode {
    run_with(args, print).await
}

/// Run `ctl`, giving each event it prints to `show` (false: stop, the output is gone).
async fn run_with(args: &CtlArgs, show: impl Fn(&Value) -> bool) -> ExitCode {
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| std::env::var_os("HARK_DATA_DIR").map(PathBuf::from))
        .or_else(crate::config::default_data_dir);
    let Some(data_dir) = data_dir else {
        return usage("no data directory: pass --data-dir DIR");
    };
    let path = socket_path(&data_dir);
    let stream = match UnixStream::connect(&path).await {
        Ok(stream) => stream,
        Err(_) => return usage(&format!("no node running at {}", path.display())),
    };
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    // `ready` comes first; commands are read after it. A node that took the connection but
    // says nothing (stopping, or stuck) is not waited for forever.
    match tokio::time::timeout(READY_WITHIN, next_event(&mut lines)).await {
        Ok(Some(event)) if event["event"] == "ready" => {}
        Ok(_) => return usage(&format!("no node running at {}", path.display())),
        Err(_) => {
            return usage(&format!(
                "the node at {} did not answer within {} s",
                path.display(),
                READY_WITHIN.as_secs()
            ))
        }
    }
    let id = "ctl";
    let (command, tail) = match &args.action {
        CtlAction::Send { room, text } => (json!({"cmd":"send","room":room,"text":text}), false),
        CtlAction::Me { room, text } => (json!({"cmd":"me","room":room,"text":text}), false),
        CtlAction::Dm { peer, text } => (json!({"cmd":"dm","to":peer,"text":text}), false),
        CtlAction::Alert { room, text } => (json!({"cmd":"alert","room":room,"text":text}), false),
        CtlAction::History {
            room,
            limit,
            before,
        } => (
            json!({"cmd":"history","room":room,"limit":limit,"before":before}),
            false,
        ),
        CtlAction::Peers => (json!({"cmd":"peers"}), false),
        CtlAction::Tail { rooms } => {
            let rooms = (!rooms.is_empty()).then_some(rooms);
            (json!({"cmd":"subscribe","rooms":rooms}), true)
        }
        CtlAction::Ptt { action, room } => {
            let action = match action {
                PttAction::Start => "start",
                PttAction::Stop => "stop",
            };
            (json!({"cmd":"ptt","room":room,"action":action}), false)
        }
        CtlAction::Kick { room, peer } => (json!({"cmd":"kick","room":room,"peer":peer}), false),
        CtlAction::Promote { room, peer } => {
            (json!({"cmd":"promote","room":room,"peer":peer}), false)
        }
        CtlAction::Members { room } => (json!({"cmd":"members","room":room}), false),
        CtlAction::Verify { peer, mark } => (
            json!({"cmd":"verify","peer":peer,"confirm":mark.confirm()}),
            false,
        ),
    };
    let mut command = command;
    command["id"] = id.into();
    // Only the answer matters to a one-off command: follow nothing else.
    let quiet = json!({"cmd":"subscribe","kinds":[]});
    let mut out = String::new();
    if !tail {
        out.push_str(&quiet.to_string());
        out.push('\n');
    }
    out.push_str(&command.to_string());
    out.push('\n');
    if write.write_all(out.as_bytes()).await.is_err() {
        return refused("the node closed the connection");
    }
    loop {
        let Some(event) = next_event(&mut lines).await else {
            return if tail {
                ExitCode::SUCCESS
            } else {
                refused("the node closed the connection before answering")
            };
        };
        let name = event["event"].as_str().unwrap_or_default();
        let answers = event.get("cmd_id") == Some(&Value::from(id));
        if name == "error" && answers {
            let code = event["code"].as_str().unwrap_or("error");
            let detail = event["detail"].as_str().unwrap_or_default();
            return refused(&format!("{code}: {detail}"));
        }
        if tail {
            if !answers && name != "ready" && !show(&event) {
                return ExitCode::SUCCESS;
            }
            continue;
        }
        if !answers {
            continue;
        }
        let mut event = event;
        if let Some(map) = event.as_object_mut() {
            map.remove("cmd_id");
            if map.get("id") == Some(&Value::from(id)) {
                map.remove("id");
            }
        }
        if let CtlAction::History { .. } = args.action {
            for message in event["messages"].as_array().into_iter().flatten() {
                if !show(message) {
                    break;
                }
            }
        } else {
            show(&event);
        }
        return ExitCode::SUCCESS;
    }
}

async fn next_event(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
) -> Option<Value> {
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => match serde_json::from_str::<Value>(&line) {
                Ok(value) => return Some(value),
                Err(_) => continue,
            },
            Ok(None) | Err(_) => return None,
        }
    }
}

/// One JSON line on stdout; false when stdout is gone.
fn print(value: &Value) -> bool {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}").and_then(|_| out.flush()).is_ok()
}

/// The command a user typed, which names its errors: `hark-node ctl`, or `hark-node verify`.
static PROGRAM: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

fn program() -> &'static str {
    PROGRAM.get().copied().unwrap_or("hark-node ctl")
}

fn usage(message: &str) -> ExitCode {
    eprintln!("{}: {message}", program());
    ExitCode::from(2)
}

fn refused(message: &str) -> ExitCode {
    eprintln!("{}: {message}", program());
    ExitCode::from(1)
}

/// `hark-node ctl …` from `main`: its own small runtime.
pub fn main(args: &CtlArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage(&e.to_string()),
    };
    runtime.block_on(run(args))
}

/// `hark-node verify …` from `main`: `ctl verify`, shown for people unless `--json`.
pub fn main_verify(args: &VerifyArgs) -> ExitCode {
    let _ = PROGRAM.set("hark-node verify");
    let ctl = CtlArgs {
        data_dir: args.data_dir.clone(),
        action: CtlAction::Verify {
            peer: args.peer.clone(),
            mark: args.mark,
        },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage(&e.to_string()),
    };
    if args.json {
        runtime.block_on(run(&ctl))
    } else {
        runtime.block_on(run_with(&ctl, |event| {
            use std::io::Write;
            let text = super::safety::safety_text(event);
            let mut out = std::io::stdout().lock();
            write!(out, "{text}").and_then(|_| out.flush()).is_ok()
        }))
    }
}
