//! One-shot sends that arrive: `hark-node send …`, and `hark-node --json` at the end of its
//! input. The process stays until a peer is known to hold each message it sent (a sync session
//! that began after the message was stored completed: `delivered`), and says so on stderr and
//! exits 1 when that does not happen within the deadline. It never reports success for a
//! message that only this process holds.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use tokio::io::BufReader;
use tokio::sync::{mpsc, Notify};

use super::socket::{serve_lines, write_line, Ended};
use super::{Answered, ClientId, Filter};
use crate::api::{Command, Event};
use crate::cli::NodeArgs;
use crate::node::NodeHandle;

/// How long a one-shot waits for a peer to hold its messages, by default.
pub const DEFAULT_DELIVER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args, Debug)]
pub struct SendArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// The room to send to.
    #[arg(long, value_name = "ROOM", default_value = "lobby")]
    pub room: String,
    /// The message.
    #[arg(long, value_name = "TEXT")]
    pub text: String,
    /// Send it as an alert (the panic button).
    #[arg(long)]
    pub alert: bool,
    /// Give up after this many seconds without a peer holding the message (exit 1).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub deliver_timeout: f64,
}

impl SendArgs {
    pub fn command(&self) -> Command {
        let (room, text) = (self.room.clone(), self.text.clone());
        if self.alert {
            Command::Alert { room, text }
        } else {
            Command::Send { room, text }
        }
    }

    pub fn timeout(&self) -> Result<Duration, String> {
        Duration::try_from_secs_f64(self.deliver_timeout)
            .map_err(|_| format!("--deliver-timeout {}: not a duration", self.deliver_timeout))
    }
}

/// What the process has sent and what peers are known to hold.
#[derive(Default)]
struct Tracker {
    sent: Vec<(String, String)>,
    delivered: HashSet<String>,
    holders: HashSet<String>,
    peers_met: HashSet<String>,
}

impl Tracker {
    fn undelivered(&self) -> Vec<&(String, String)> {
        self.sent
            .iter()
            .filter(|(_, id)| !self.delivered.contains(id))
            .collect()
    }

    fn reason(&self, timeout: Duration) -> String {
        let waiting = self.undelivered();
        let what = match waiting.as_slice() {
            [(room, id)] => format!("message {id} in {room}"),
            more => format!("{} messages", more.len()),
        };
        let why = if self.peers_met.is_empty() {
            "no peer was reachable"
        } else {
            "no peer confirmed holding it"
        };
        format!(
            "{what} not delivered within {} s: {why}; it is kept in the data dir and goes out when this node next meets a peer",
            timeout.as_secs_f64()
        )
    }
}

/// Watch the embedding client's events (every broadcast: `delivered`, peers) until the node
/// stops.
fn watch(mut primary: mpsc::Receiver<Event>, tracker: Arc<Mutex<Tracker>>, changed: Arc<Notify>) {
    tokio::spawn(async move {
        while let Some(event) = primary.recv().await {
            let mut t = tracker.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                Event::Delivered { id, peers, .. } => {
                    t.delivered.insert(id);
                    t.holders.extend(peers);
                }
                Event::PeerConnected { peer_id } => {
                    t.peers_met.insert(peer_id);
                }
                _ => continue,
            }
            drop(t);
            changed.notify_one();
        }
        changed.notify_one();
    });
}

/// Wait until every message sent is delivered (true), or the timeout passes (false).
async fn wait_delivered(
    node: &NodeHandle,
    tracker: &Arc<Mutex<Tracker>>,
    changed: &Notify,
    timeout: Duration,
    mut also: Option<&mut mpsc::Receiver<Answered>>,
) -> bool {
    let pending = |t: &Arc<Mutex<Tracker>>| {
        !t.lock()
            .unwrap_or_else(|e| e.into_inner())
            .undelivered()
            .is_empty()
    };
    if !pending(tracker) {
        return true;
    }
    if node.confirm_delivery().await.is_err() {
        return false;
    }
    let deadline = tokio::time::Instant::now() + timeout;
    // Only a JSON client's stdout is taken over (made non-blocking when it is a pipe):
    // `hark-node send` prints its result with a plain blocking write afterwards.
    let mut stdout = also.is_some().then(super::stdout::stdout);
    while pending(tracker) {
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep_until(deadline) => return false,
            // Events keep going to a JSON client's stdout while it waits.
            Some(answered) = async {
                match also.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(stdout) = stdout.as_mut() {
                    let _ = write_line(stdout, &answered).await;
                }
            }
        }
    }
    true
}

async fn stop(node: NodeHandle) {
    crate::sd_notify::stopping();
    let _ = node.send(Command::Quit).await;
    node.stopped().await;
}

/// `hark-node send`: start, send, wait for a peer to hold it, stop.
pub async fn run_send(
    node: NodeHandle,
    mut primary: mpsc::Receiver<Event>,
    command: Command,
    timeout: Duration,
) -> ExitCode {
    // `ready` first, then the answer to our one command.
    loop {
        match primary.recv().await {
            Some(Event::Ready { .. }) => break,
            Some(_) => continue,
            None => return fail_send("the node stopped before it was ready"),
        }
    }
    if node.send(command).await.is_err() {
        return fail_send("the node stopped");
    }
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let (room, id) = loop {
        match primary.recv().await {
            Some(Event::Sent { room, id }) => break (room, id),
            Some(Event::Error { code, detail }) => {
                stop(node).await;
                return fail_send(&format!("{code}: {detail}"));
            }
            Some(Event::PeerConnected { peer_id }) => {
                tracker
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .peers_met
                    .insert(peer_id);
            }
            Some(_) => {}
            None => return fail_send("the node stopped"),
        }
    };
    tracker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .sent
        .push((room.clone(), id.clone()));
    let changed = Arc::new(Notify::new());
    watch(primary, tracker.clone(), changed.clone());
    let delivered = wait_delivered(&node, &tracker, &changed, timeout, None).await;
    let reason = tracker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .reason(timeout);
    let holders: Vec<String> = tracker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .holders
        .iter()
        .cloned()
        .collect();
    stop(node).await;
    if delivered {
        println!("delivered {id} in {room} to {}", holders.join(" "));
        ExitCode::SUCCESS
    } else {
        fail_send(&reason)
    }
}

fn fail_send(reason: &str) -> ExitCode {
    eprintln!("hark-node send: {reason}");
    ExitCode::from(1)
}

/// `hark-node --json`: stdin and stdout are a client of the node like a socket client (ids
/// echoed, `subscribe`, bounded lines); at the end of stdin the node stays until a peer holds
/// each message sent, then stops (exit 0), or says why not on stderr (exit 1 after `timeout`).
pub async fn run_json(
    node: NodeHandle,
    primary: mpsc::Receiver<Event>,
    timeout: Duration,
    mut on_ready: impl FnMut(&str),
) -> ExitCode {
    let link = node.link();
    let Ok(attached) = link.attach(Filter::all()).await else {
        return ExitCode::SUCCESS;
    };
    let client = attached.client;
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let changed = Arc::new(Notify::new());
    watch(primary, tracker.clone(), changed.clone());
    let stdin = BufReader::new(tokio::io::stdin());
    let observer = {
        let tracker = tracker.clone();
        move |answered: &Answered| match &answered.event {
            Event::Ready { peer_id, .. } => on_ready(peer_id),
            Event::Sent { room, id } => tracker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .sent
                .push((room.clone(), id.clone())),
            _ => {}
        }
    };
    let served = serve_lines(
        stdin,
        super::stdout::stdout(),
        attached,
        &link,
        super::socket::Served::own(),
        observer,
    );
    let ended = tokio::select! {
        ended = served => ended,
        _ = shutdown_signal() => {
            tracing::info!("stopping");
            stop(node).await;
            return ExitCode::SUCCESS;
        }
    };
    let mut events = match ended {
        Ended::NodeStopped | Ended::OutputGone => {
            link.detach(client);
            stop(node).await;
            return ExitCode::SUCCESS;
        }
        Ended::InputClosed(events) => events,
    };
    // A `voice` command's WAV plays to the end first (its `voice_sent` is its answer).
    let interrupted = tokio::select! {
        () = wait_talks(&node, client, &mut events) => false,
        _ = shutdown_signal() => true,
    };
    if interrupted {
        link.detach(client);
        stop(node).await;
        return ExitCode::SUCCESS;
    }
    let delivered = tokio::select! {
        delivered = wait_delivered(&node, &tracker, &changed, timeout, Some(&mut events)) => delivered,
        _ = shutdown_signal() => true,
    };
    let reason = tracker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .reason(timeout);
    // Whatever is still queued for stdout goes out before the node stops.
    let mut stdout = super::stdout::stdout();
    while let Ok(answered) = events.try_recv() {
        let _ = write_line(&mut stdout, &answered).await;
    }
    link.detach(client);
    stop(node).await;
    if delivered {
        ExitCode::SUCCESS
    } else {
        eprintln!("hark-node: {reason}");
        ExitCode::from(1)
    }
}

/// Wait until no talk-spurt is under way, the events meanwhile going to stdout.
async fn wait_talks(node: &NodeHandle, client: ClientId, events: &mut mpsc::Receiver<Answered>) {
    let ended = node.talks_ended(client);
    tokio::pin!(ended);
    let mut stdout = super::stdout::stdout();
    loop {
        tokio::select! {
            _ = &mut ended => return,
            Some(answered) = events.recv() => {
                let _ = write_line(&mut stdout, &answered).await;
            }
        }
    }
}

/// SIGTERM (systemd, kill) or SIGINT (Ctrl+C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `hark-node send …` from `main`: the usual options, a node, one message.
pub fn main_send(args: &SendArgs) -> ExitCode {
    let usage = |e: &dyn std::fmt::Display| {
        eprintln!("hark-node send: {e}");
        ExitCode::from(2)
    };
    // The same options as the node proper: command line > HARK_* > config file.
    let settings = match crate::cli::settings_or_exit(
        "hark-node send",
        &args.node,
        crate::settings::Settings::default(),
    ) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let mut config = match settings.node_config() {
        Ok(config) => config,
        Err(e) => return usage(&e),
    };
    // A sender that lives for seconds runs no hooks: the relay's config is for the relay.
    config.hooks.clear();
    let timeout = match args.timeout() {
        Ok(timeout) => timeout,
        Err(e) => return usage(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage(&e),
    };
    let command = args.command();
    let code = runtime.block_on(async move {
        match crate::node::Node::start(config).await {
            Ok((node, events)) => run_send(node, events, command, timeout).await,
            Err(e) => usage(&e),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}
