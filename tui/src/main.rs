//! `hark`: the workstation client with an embedded node.
//!
//! Until the full-screen ratatui interface lands (issue 4) this is a plain line client: type a
//! line to send it to the current room; `/join ROOM|INVITE`, `/create ROOM`, `/room ROOM`,
//! `/me TEXT`, `/alert TEXT`, `/history [N]`, `/peers`, `/quit`. Logs go to `hark.log` in the data dir.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use hark_node::api::short_id;
use hark_node::cli::NodeArgs;
use hark_node::{Command, Event, Node};
use tokio::io::AsyncBufReadExt;

#[derive(Parser, Debug)]
#[command(
    name = "hark",
    version,
    about = "Hark: chat for private networks with no internet and no server"
)]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

fn main() -> ExitCode {
    let cli: Cli = match hark_node::cli::parse_args("hark") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let config = match cli.node.into_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("hark: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = log_to_file(&config.data_dir) {
        eprintln!("hark: cannot open the log file: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hark: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hark: {e}");
            ExitCode::from(2)
        }
    }
}

fn log_to_file(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("hark.log"))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("hark_node=info,warn"));
    tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_env_filter(filter)
        .init();
    Ok(())
}

async fn run(config: hark_node::NodeConfig) -> anyhow::Result<()> {
    let (node, mut events) = Node::start(config).await?;
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut room = "lobby".to_owned();
    let mut stdin_closed = false;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => show(&event, &mut room),
                None => break,
            },
            line = stdin.next_line(), if !stdin_closed => {
                let command = match line {
                    Ok(Some(line)) => parse_line(line.trim(), &mut room),
                    Ok(None) | Err(_) => {
                        stdin_closed = true;
                        Some(Command::Quit)
                    }
                };
                // A failed send means the node already stopped; the event loop then ends.
                if let Some(command) = command {
                    let _ = node.send(command).await;
                }
            }
        }
    }
    node.stopped().await;
    Ok(())
}

fn parse_line(line: &str, room: &mut String) -> Option<Command> {
    let (word, rest) = line
        .split_once(' ')
        .map_or((line, ""), |(w, r)| (w, r.trim()));
    let room_now = room.clone();
    match word {
        "" => None,
        "/quit" => Some(Command::Quit),
        "/peers" => Some(Command::Peers),
        "/join" => Some(Command::Join {
            room: Some(rest.to_owned()),
            invite: None,
        }),
        "/create" => Some(Command::Create {
            room: rest.to_owned(),
        }),
        "/leave" => Some(Command::Leave {
            room: if rest.is_empty() {
                room_now
            } else {
                rest.to_owned()
            },
        }),
        "/me" => Some(Command::Me {
            room: room_now,
            text: rest.to_owned(),
        }),
        "/alert" => Some(Command::Alert {
            room: room_now,
            text: rest.to_owned(),
        }),
        "/history" => Some(Command::History {
            room: room_now,
            limit: rest.parse().ok(),
        }),
        "/room" => {
            *room = rest.trim_start_matches('#').to_owned();
            say(&format!("now talking in #{room}"));
            None
        }
        w if w.starts_with('/') => {
            say("commands: /join ROOM|INVITE, /create ROOM, /room ROOM, /leave, /me, /alert, /history [N], /peers, /quit");
            None
        }
        _ => Some(Command::Send {
            room: room_now,
            text: line.to_owned(),
        }),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|_| out.flush());
}

fn show(event: &Event, room: &mut String) {
    match event {
        Event::Ready {
            name,
            peer_id,
            listen,
        } => {
            say(&format!(
                "hark: you are {name}#{} in #lobby. Type to talk, /quit to leave.",
                short_id(peer_id)
            ));
            for addr in listen {
                say(&format!("  listening on {addr}"));
            }
        }
        Event::Message { kind, .. } => {
            // An alert rings the terminal bell.
            let bell = if kind == "alert" { "\x07" } else { "" };
            say(&format!(
                "{bell}{}",
                event.message_line().unwrap_or_default()
            ));
        }
        Event::Created { room: r, invite } => {
            say(&format!("created #{r}; invite others with:\n  {invite}"))
        }
        Event::Joined { room: r } => {
            *room = r.clone();
            say(&format!("joined #{r}"));
        }
        Event::Left { room: r } => say(&format!("left #{r}")),
        Event::PeerConnected { peer_id } => {
            say(&format!("-- peer {} connected", short_id(peer_id)))
        }
        Event::PeerDisconnected { peer_id } => say(&format!("-- peer {} left", short_id(peer_id))),
        Event::Peers { peers } => {
            say(&format!("{} peers:", peers.len()));
            for p in peers {
                say(&format!(
                    "  {}#{} {}",
                    p.name,
                    short_id(&p.peer_id),
                    p.addrs.join(" ")
                ));
            }
        }
        Event::History { room: r, messages } => {
            say(&format!("-- last {} messages in #{r}:", messages.len()));
            for m in messages {
                let line = Event::Message {
                    room: r.clone(),
                    id: m.id.clone(),
                    from: m.from.clone(),
                    name: m.name.clone(),
                    ts: m.ts,
                    kind: m.kind.clone(),
                    text: m.text.clone(),
                }
                .message_line()
                .unwrap_or_default();
                say(&line);
            }
        }
        Event::Synced {
            room: r,
            peer_id,
            received,
        } if *received > 0 => say(&format!(
            "-- #{r}: {received} messages arrived from {}'s history",
            short_id(peer_id)
        )),
        Event::Synced { .. } => {}
        Event::Nick { name } => say(&format!("-- you are now {name}")),
        Event::Invite { room: r, invite } => say(&format!("invite to #{r}:\n  {invite}")),
        Event::SearchResults { .. } => {}
        Event::Error { detail, .. } => say(&format!("! {detail}")),
        Event::Sent { .. } | Event::Typing { .. } | Event::Presence { .. } => {}
    }
}
