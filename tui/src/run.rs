//! The event loop: node events, terminal events, signals and a timer go into the [`App`];
//! its effects go out to the node, the terminal and the voice side; the screen is redrawn
//! after every batch. The node runs on its own task, so nothing here waits on the network.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use crossterm::event::{Event as TermEvent, EventStream};
use futures::StreamExt;
use hark_node::{Command, Event, Node, NodeConfig, NodeHandle};
use ratatui::layout::Rect;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::app::{App, Effect, Now};
use crate::keys;
use crate::saved_rooms;
use crate::style::LocalTime;
use crate::terminal::{self, Term};
use crate::view;
use crate::voice::{Ptt, PttAction, Voice};

/// Redraw at least this often: typing marks expire, alerts flash, hints fade.
const TICK: Duration = Duration::from_millis(250);
/// Redraw this often while talking, for the mic level meter.
const METER_TICK: Duration = Duration::from_millis(50);
/// How long quitting waits for the node to close its store.
const NODE_STOP_WAIT: Duration = Duration::from_secs(3);

pub struct Options {
    pub config: NodeConfig,
    pub clock: LocalTime,
    pub voice: Box<dyn Voice>,
    /// `--http`: the HTTP API, served once the node runs.
    pub http: Option<hark_node::http::HttpPlan>,
    /// `--web`: the browser client, served once the node runs (hark_node::web).
    pub web: Option<std::net::SocketAddr>,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let Options {
        config,
        clock,
        mut voice,
        http,
        web,
    } = options;
    let data_dir: PathBuf = config.data_dir.clone();
    let network_key = config.network_key.is_some();
    let mut rooms = saved_rooms::load(&data_dir);
    for target in &config.join {
        if let Ok(room) = hark_node::rooms::parse_join_target(target) {
            rooms.push(room.name.to_string());
        }
    }
    // The node starts before the terminal is taken, so a start-up error prints plainly.
    let (node, events) = Node::start(config).await?;
    if let Some(plan) = http {
        hark_node::http::serve(plan, &data_dir, node.link())
            .await
            .map_err(anyhow::Error::msg)?;
    }
    // The pages hear what this node plays, beside the speaker; the URL and its QR code go to
    // hark.log; join links come from `/web-invite` (or `hark-node web-invite --data-dir DIR`).
    let (web_sink, join_links) = match web {
        Some(addr) => {
            let served = hark_node::web::serve(addr, &data_dir, node.link())
                .await
                .map_err(anyhow::Error::msg)?;
            (Some(served.sink), Some(served.join_links))
        }
        None => {
            hark_node::web::not_serving(&data_dir);
            (None, None)
        }
    };
    let (mut terminal, guard, ptt_mode) =
        terminal::setup().context("cannot set up the terminal")?;
    let mut ptt = Ptt::new(ptt_mode, voice.available());
    ptt.level = voice.level();
    let sink: Option<Box<dyn hark_node::voice::AudioSink>> = match (voice.take_sink(), web_sink) {
        (Some(speaker), Some(web)) => Some(Box::new(hark_node::web::voice::Both(
            speaker,
            Box::new(web),
        ))),
        (Some(speaker), None) => Some(speaker),
        (None, Some(web)) => Some(Box::new(web)),
        (None, None) => None,
    };
    if let Some(sink) = sink {
        let _ = node.set_audio_sink(sink).await;
    }
    // `ptt` on the control socket keys this microphone.
    let _ = node.accept_ptt().await;
    let mut app = App::new(&rooms, network_key, ptt, clock);
    app.serves_web = join_links.is_some();
    let result = event_loop(
        &mut terminal,
        &mut app,
        &node,
        events,
        voice.as_mut(),
        &data_dir,
        join_links.as_ref(),
    )
    .await;
    // Give the terminal back first: the user sees the shell while the node closes its store.
    drop(terminal);
    drop(guard);
    let _ = node.send(Command::Quit).await;
    if tokio::time::timeout(NODE_STOP_WAIT, node.stopped())
        .await
        .is_err()
    {
        tracing::warn!("the node did not stop in time");
    }
    result
}

async fn event_loop(
    terminal: &mut Term,
    app: &mut App,
    node: &NodeHandle,
    mut events: mpsc::Receiver<Event>,
    voice: &mut dyn Voice,
    data_dir: &std::path::Path,
    join_links: Option<&hark_node::web::invite::JoinLinks>,
) -> anyhow::Result<()> {
    let mut keys_in = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut meter_tick = tokio::time::interval(METER_TICK);
    meter_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    draw(terminal, app)?;
    loop {
        let effects = tokio::select! {
            event = events.recv() => match event {
                Some(event) => {
                    let mut effects = app.on_event(event, Now::real());
                    // Take what else is queued before drawing: a sync can bring hundreds.
                    while let Ok(event) = events.try_recv() {
                        effects.extend(app.on_event(event, Now::real()));
                    }
                    effects
                }
                None => anyhow::bail!("the node stopped unexpectedly (see hark.log in the data dir)"),
            },
            input = keys_in.next() => match input {
                Some(Ok(TermEvent::Key(key))) => match keys::action(key) {
                    Some(action) => app.on_action(action, Now::real()),
                    None => Vec::new(),
                },
                Some(Ok(TermEvent::Paste(text))) => app.on_paste(&text, Now::real()),
                Some(Ok(TermEvent::Resize(..))) => {
                    terminal.autoresize()?;
                    Vec::new()
                }
                Some(Ok(_)) => Vec::new(),
                Some(Err(e)) => return Err(e).context("cannot read the terminal"),
                None => return Ok(()),
            },
            _ = tick.tick() => {
                app.tick(tokio::time::Instant::now().into_std());
                Vec::new()
            }
            // The level meter moves while talking.
            _ = meter_tick.tick(), if app.ptt.talking.is_some() => Vec::new(),
            _ = terminate.recv() => return Ok(()),
            _ = hangup.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
        };
        // A queue, as an answer (a join link) brings effects of its own.
        let mut effects = std::collections::VecDeque::from(effects);
        while let Some(effect) = effects.pop_front() {
            match effect {
                Effect::Node(command) => {
                    tracing::debug!(?command, "to node");
                    if node.send(command).await.is_err() {
                        anyhow::bail!(
                            "the node stopped unexpectedly (see hark.log in the data dir)"
                        );
                    }
                }
                Effect::Bell => terminal::bell(),
                Effect::Copy(text) => terminal::copy_to_clipboard(&text),
                Effect::SaveRooms(rooms) => {
                    if let Err(e) = saved_rooms::save(data_dir, &rooms) {
                        tracing::warn!("cannot remember the rooms: {e}");
                    }
                }
                Effect::Talk(PttAction::Start { room }) => match voice.start_talking(&room) {
                    Ok(source) => {
                        if node.talk(&room, source).await.is_err() {
                            anyhow::bail!(
                                "the node stopped unexpectedly (see hark.log in the data dir)"
                            );
                        }
                    }
                    Err(reason) => {
                        app.ptt.failed();
                        app.set_hint(reason, true, Now::real().at);
                    }
                },
                Effect::Talk(_) => voice.stop_talking(),
                Effect::Mute { peer_id, muted } => match peer_id.parse() {
                    Ok(peer) => {
                        if node.mute(peer, muted).await.is_err() {
                            anyhow::bail!(
                                "the node stopped unexpectedly (see hark.log in the data dir)"
                            );
                        }
                    }
                    Err(_) => tracing::warn!(peer_id, "cannot mute: not a peer id"),
                },
                Effect::WebInvite { name } => {
                    let made = match join_links {
                        Some(links) => links.make(name.clone()),
                        None => Err(crate::app::NO_WEB.to_owned()),
                    };
                    effects.extend(app.on_web_invite(name, made, Now::real()));
                }
                Effect::Quit => return Ok(()),
            }
        }
        draw(terminal, app)?;
    }
}

fn draw(terminal: &mut Term, app: &mut App) -> anyhow::Result<()> {
    let size = terminal.size()?;
    app.size = Rect::new(0, 0, size.width, size.height);
    let now = std::time::Instant::now();
    terminal.draw(|frame| view::draw(frame, app, now))?;
    Ok(())
}
