//! `hark-node`: the Hark node without a screen — an always-on relay, or a bot driven by JSON
//! lines on stdin/stdout (`--json`, SPEC §2.1).

use std::io::Write;
use std::process::ExitCode;

use hark_node::cli::{NodeCli as Cli, NodeSub as Sub};
use hark_node::{netkey, Command, Event, Node};
use tokio::io::AsyncBufReadExt;

fn main() -> ExitCode {
    let cli: Cli = match hark_node::cli::parse_args("hark-node") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_logging();
    // The control socket's client, and the one-shot sender (node/src/control/).
    match &cli.command {
        Some(Sub::Ctl(args)) => return hark_node::control::ctl::main(args),
        Some(Sub::Send(args)) => return hark_node::control::oneshot::main_send(args),
        Some(Sub::Verify(args)) => return hark_node::control::ctl::main_verify(args),
        // A join link for the browser client of a running node (node/src/web/invite.rs).
        Some(Sub::WebInvite(args)) => return hark_node::web::invite::main(args),
        _ => {}
    }
    if let Some(Sub::Keygen { network }) = cli.command {
        return match netkey::generate(&network) {
            Ok(key) => {
                println!(
                    "wrote network key {} (fingerprint {})",
                    network.display(),
                    key.fingerprint()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        };
    }
    // Options: command line > HARK_* > config file > defaults; --print-config exits here.
    let settings =
        match hark_node::cli::settings_or_exit("hark-node", &cli.node, cli.own_settings()) {
            Ok(settings) => settings,
            Err(code) => return code,
        };
    // --http: a non-loopback address without --http-token is refused here (exit 2).
    let http = match hark_node::http::plan_or_exit("hark-node", &(&settings).into()) {
        Ok(http) => http,
        Err(code) => return code,
    };
    hark_node::cli::warn_test_switches();
    let mut config = match settings.node_config() {
        Ok(config) => config,
        Err(e) => return fail(e),
    };
    config.relay = settings.relay.unwrap_or(false);
    if let Some(dir) = &settings.voice_out {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return fail(format!("--voice-out {}: {e}", dir.display()));
        }
    }
    config.voice_out = settings.voice_out.clone();
    PRINT_MESSAGES.store(
        settings.print_messages.unwrap_or(false),
        std::sync::atomic::Ordering::Relaxed,
    );
    let json = settings.json.unwrap_or(false);
    // One thread runs the node's tasks (swarm, connections, driver, clients): a message's way
    // through them is then function calls and local wake-ups, not futex hand-offs between
    // worker threads (measured in docs/performance.md). Heavy work has its own threads
    // (catch-up's shard workers, the store's flusher, voice encoding).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    let code = runtime.block_on(run(config, json, http, settings.web));
    // A read of stdin still blocked in tokio's pool (a supervisor that keeps the pipe open)
    // must not keep a stopped node's process alive; the node has flushed everything by now.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

fn fail(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("hark-node: {error}");
    ExitCode::from(2)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("hark_node=info,warn"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn run(
    config: hark_node::NodeConfig,
    json: bool,
    http: Option<hark_node::http::HttpPlan>,
    web: Option<std::net::SocketAddr>,
) -> ExitCode {
    let data_dir = config.data_dir.clone();
    let (node, mut events) = match Node::start(config).await {
        Ok(started) => started,
        Err(e) => return fail(e),
    };
    if let Some(plan) = http {
        if let Err(e) = hark_node::http::serve(plan, &data_dir, node.link()).await {
            return fail(e);
        }
    }
    if web.is_none() {
        hark_node::web::not_serving(&data_dir);
    }
    if let Some(addr) = web {
        // The browser client (node/src/web/): its pages hear what this node plays out.
        match hark_node::web::serve(addr, &data_dir, node.link()).await {
            Ok(served) => {
                if node.set_audio_sink(Box::new(served.sink)).await.is_err() {
                    return fail("the node stopped");
                }
            }
            Err(e) => return fail(e),
        }
    }
    let link = node.link();
    if json {
        // stdin/stdout as a client of the node, like a control socket client; at the end of
        // stdin it waits for its messages to reach a peer (node/src/control/oneshot.rs).
        return hark_node::control::oneshot::run_json(
            node,
            events,
            hark_node::control::oneshot::DEFAULT_DELIVER_TIMEOUT,
            // systemd (Type=notify): ready once `ready` is out, then watchdog pings.
            |peer_id| hark_node::sd_notify::ready(&format!("ready as {peer_id}"), link.clone()),
        )
        .await;
    }
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    // Commands are read only after `ready`, which must be the first line out.
    let mut reading = false;
    let mut stdin_closed = false;
    let mut quitting = false;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => {
                    reading |= json && matches!(event, Event::Ready { .. });
                    print_event(&event, json);
                    if let Event::Ready { peer_id, .. } = &event {
                        // systemd (Type=notify): ready once `ready` is out, then watchdog pings.
                        hark_node::sd_notify::ready(&format!("ready as {peer_id}"), link.clone());
                    }
                }
                None => break,
            },
            line = stdin.next_line(), if reading && !stdin_closed => match line {
                Ok(Some(line)) if line.trim().is_empty() => {}
                Ok(Some(line)) => match serde_json::from_str::<Command>(&line) {
                    Ok(command) => {
                        if node.send(command).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => print_event(&Event::error("bad_command", e.to_string()), json),
                },
                // End of input: a JSON client that goes away takes its node with it.
                Ok(None) | Err(_) => {
                    stdin_closed = true;
                    let _ = node.send(Command::Quit).await;
                }
            },
            _ = hark_node::control::oneshot::shutdown_signal(), if !quitting => {
                quitting = true;
                tracing::info!("stopping");
                hark_node::sd_notify::stopping();
                let _ = node.send(Command::Quit).await;
            }
        }
    }
    node.stopped().await;
    ExitCode::SUCCESS
}

fn print_event(event: &Event, json: bool) {
    let mut out = std::io::stdout().lock();
    let line = if json {
        serde_json::to_string(event).unwrap_or_else(|e| {
            format!("{{\"event\":\"error\",\"code\":\"internal\",\"detail\":\"{e}\"}}")
        })
    } else {
        match human(event) {
            Some(line) => line,
            None => return,
        }
    };
    // stdout gone (closed pipe): nothing useful left to do with the line.
    let _ = writeln!(out, "{line}").and_then(|_| out.flush());
}

/// `--print-messages`: plain output includes message text (off: no text in the journal).
static PRINT_MESSAGES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Plain lines for an operator watching a relay; message text only with `--print-messages`.
fn human(event: &Event) -> Option<String> {
    let messages = PRINT_MESSAGES.load(std::sync::atomic::Ordering::Relaxed);
    Some(match event {
        Event::Ready {
            peer_id,
            name,
            listen,
        } => format!("ready: {name} {peer_id}\n  {}", listen.join("\n  ")),
        Event::Message { .. } if messages => return event.message_line(),
        Event::PeerConnected { peer_id } => format!("peer connected: {peer_id}"),
        Event::PeerDisconnected { peer_id } => format!("peer disconnected: {peer_id}"),
        Event::Error { code, detail } => format!("error ({code}): {detail}"),
        Event::Synced {
            room,
            peer_id,
            received,
        } => format!("[{room}] history synced with {peer_id}: {received} new"),
        Event::VoiceStart { room, name, from } => {
            format!(
                "[{room}] {name}#{} is talking",
                hark_node::api::short_id(from)
            )
        }
        Event::VoiceEnd {
            room,
            name,
            frames,
            lost,
            wav,
            ..
        } => format!(
            "[{room}] {name} stopped talking ({frames} frames, {lost} lost){}",
            wav.as_deref().map(|w| format!(": {w}")).unwrap_or_default()
        ),
        _ => return None,
    })
}
