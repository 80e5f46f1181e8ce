//! The control socket: `DATA_DIR/control.sock` (mode 0600), the JSON lines of `--json` to many
//! clients at once. Each connection is an attached client with its own bounded queue (the
//! slow-client policy of `node/events.rs`: the network never waits for a client) and its own
//! filter (`subscribe`). Commands are read after `ready`, the first line out.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use std::time::Duration;

use futures::FutureExt;
use tokio::io::{AsyncWriteExt, BufReader, Interest};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};

use super::lines::{Line, LineReader};
use super::{line_error, parse_line, Answered, Filter, Request, MAX_LINE, SOCKET_NAME};
use crate::api::{Command, Event};
use crate::node::ClientLink;

/// The socket's path in a data dir.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Listen on the data dir's control socket and serve clients until the node stops. A socket
/// file left by a node that died is replaced: the data dir's lock already keeps out a second
/// live node.
pub fn serve(data_dir: &Path, link: ClientLink) -> std::io::Result<()> {
    let path = socket_path(data_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::debug!(path = %path.display(), "removed a stale control socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    tracing::debug!(path = %path.display(), "control socket listening");
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(serve_client(stream, link.clone()));
                    }
                    Err(e) => {
                        tracing::warn!("control socket: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
                _ = link.stopped() => break,
            }
        }
        let _ = std::fs::remove_file(&path);
    });
    Ok(())
}

async fn serve_client(stream: UnixStream, link: ClientLink) {
    let Ok(attached) = link.attach(Filter::all()).await else {
        return;
    };
    let (read, write) = stream.into_split();
    let client = attached.client;
    let served = Served {
        allow_quit: false,
        gone: peer_gone,
    };
    serve_lines(BufReader::new(read), write, attached, &link, served, |_| {}).await;
    link.detach(client);
}

/// Whether a socket client that sent its last line has gone away altogether (closed, not
/// only done writing). One that follows nothing (`ctl`'s `subscribe` to no kinds) would
/// otherwise be noticed only at a write that never comes, and kept, with its descriptor,
/// for as long as the node runs.
fn peer_gone(write: &OwnedWriteHalf) -> bool {
    match write.ready(Interest::WRITABLE).now_or_never() {
        Some(Ok(ready)) => ready.is_write_closed(),
        Some(Err(_)) => true,
        // Not writable now (its queue is full): it is there, or it will be noticed by the
        // hang-up making the socket ready.
        None => false,
    }
}

/// How often a client whose input has ended is checked for having gone away.
const GONE_CHECK: Duration = Duration::from_secs(1);

/// How a conversation of [`serve_lines`] is held: whether the client may stop the node
/// (only the node's own client may), and how to tell that its output has gone away.
pub struct Served<W> {
    pub allow_quit: bool,
    pub gone: fn(&W) -> bool,
}

impl<W> Served<W> {
    /// The node's own client (`hark-node --json`): may `quit`; its output is gone when a
    /// write fails.
    pub fn own() -> Self {
        Self {
            allow_quit: true,
            gone: |_| false,
        }
    }
}

/// One client's conversation: its events out as lines, its lines in as requests. Used by the
/// socket and by `hark-node --json` on stdin/stdout ([`Served`]). Returns when the node stops
/// or the output is gone; at end of input the node's own client gets what it asked for and
/// returns with `InputClosed`, a socket client goes on getting events until it goes away.
pub async fn serve_lines<R, W>(
    read: R,
    mut write: W,
    attached: crate::node::Attached,
    link: &ClientLink,
    served: Served<W>,
    mut observe: impl FnMut(&Answered),
) -> Ended
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let crate::node::Attached { client, mut events } = attached;
    let mut lines = LineReader::new(read, MAX_LINE);
    let mut reading = false;
    let mut input_open = true;
    let allow_quit = served.allow_quit;
    let mut gone_check = tokio::time::interval(GONE_CHECK);
    gone_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = gone_check.tick(), if !input_open => {
                if (served.gone)(&write) {
                    return Ended::OutputGone;
                }
            }
            item = events.recv() => match item {
                Some(answered) => {
                    // What else already waits goes out in the same write: a catch-up's 100k
                    // lines in ≈ 300 writes rather than 100k (docs/performance.md, issue 11).
                    let mut out = String::new();
                    let mut next = Some(answered);
                    let mut input_answered = false;
                    while let Some(answered) = next.take() {
                        if answered.origin.as_ref().is_some_and(|o| o.cmd == BARRIER) {
                            // Every answer to the commands before the end of input is out.
                            input_answered = true;
                            break;
                        }
                        reading |= matches!(answered.event, Event::Ready { .. });
                        observe(&answered);
                        out.push_str(&answered.to_line());
                        out.push('\n');
                        if out.len() < WRITE_BATCH {
                            next = events.try_recv().ok();
                        }
                    }
                    if !out.is_empty() && write_text(&mut write, &out).await.is_err() {
                        return Ended::OutputGone;
                    }
                    if input_answered {
                        return Ended::InputClosed(events);
                    }
                }
                None => return Ended::NodeStopped,
            },
            line = lines.next_line(), if reading && input_open => match line {
                Ok(Some(line)) => {
                    let reply = match &line {
                        Line::Text(text) => match parse_line(client, text) {
                            Ok(None) => None,
                            Ok(Some(Request::Command { command: Command::Quit, origin }))
                                if !allow_quit =>
                            {
                                Some(Answered {
                                    event: Event::error(
                                        "bad_command",
                                        "quit is not taken on the control socket: stop the node's process",
                                    ),
                                    origin,
                                })
                            }
                            Ok(Some(request)) => {
                                if link.request(request).await.is_err() {
                                    return stopped(&mut events, &mut write, &mut observe).await;
                                }
                                None
                            }
                            Err(error) => Some(*error),
                        },
                        other => line_error(client, other),
                    };
                    if let Some(reply) = reply {
                        if write_line(&mut write, &reply).await.is_err() {
                            return Ended::OutputGone;
                        }
                    }
                }
                // End of input: keep sending events until the node stops or the output goes.
                Ok(None) | Err(_) => {
                    input_open = false;
                    if allow_quit {
                        // The node answers in order: once this is answered, so is the rest.
                        let barrier = Request::Command {
                            origin: Some(super::Origin {
                                client,
                                id: None,
                                cmd: BARRIER.to_owned(),
                            }),
                            command: Command::Peers,
                        };
                        if link.request(barrier).await.is_err() {
                            return stopped(&mut events, &mut write, &mut observe).await;
                        }
                    }
                }
            },
        }
    }
}

/// The node stopped (a `quit` from this client, say) while we were reading input: what it
/// answered before stopping still goes out, so that `history` then `quit` on stdin prints the
/// history.
async fn stopped<W: tokio::io::AsyncWrite + Unpin>(
    events: &mut tokio::sync::mpsc::Receiver<Answered>,
    write: &mut W,
    observe: &mut impl FnMut(&Answered),
) -> Ended {
    let mut out = String::new();
    while let Ok(answered) = events.try_recv() {
        if answered.origin.as_ref().is_some_and(|o| o.cmd == BARRIER) {
            continue;
        }
        observe(&answered);
        out.push_str(&answered.to_line());
        out.push('\n');
    }
    if !out.is_empty() && write_text(write, &out).await.is_err() {
        return Ended::OutputGone;
    }
    Ended::NodeStopped
}

/// The name of the command sent at the end of input, whose answer means all others are out
/// (not a name a client can send: it is not valid as a JSON-lines command).
const BARRIER: &str = "\u{0}end of input";

/// Why [`serve_lines`] returned.
pub enum Ended {
    NodeStopped,
    OutputGone,
    /// End of input (only for the node's own client): the events that still come.
    InputClosed(tokio::sync::mpsc::Receiver<Answered>),
}

/// Event lines written together, at most about this many bytes (one pipe buffer).
const WRITE_BATCH: usize = 64 * 1024;

pub async fn write_line<W: tokio::io::AsyncWrite + Unpin>(
    write: &mut W,
    answered: &Answered,
) -> std::io::Result<()> {
    let mut line = answered.to_line();
    line.push('\n');
    write_text(write, &line).await
}

/// Whole lines, written and flushed.
async fn write_text<W: tokio::io::AsyncWrite + Unpin>(
    write: &mut W,
    text: &str,
) -> std::io::Result<()> {
    write.write_all(text.as_bytes()).await?;
    write.flush().await
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;
    use crate::control::Origin;

    /// Records each write it is given.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl tokio::io::AsyncWrite for Writes {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.get_mut().0.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn waiting_events_go_out_in_few_writes_in_order_up_to_the_end_of_input() {
        let (link, _requests) = ClientLink::unattached();
        let (sink, events) = tokio::sync::mpsc::channel(4_096);
        let count = 3_000;
        for n in 0..count {
            let message = Event::Message {
                room: "lobby".into(),
                id: format!("{n:032x}"),
                from: "peer".into(),
                name: "alice".into(),
                ts: n,
                tick: 0,
                kind: "text".into(),
                text: format!("message {n} with \"quotes\""),
            };
            sink.try_send(Answered::broadcast(message)).unwrap();
        }
        let barrier = Answered {
            event: Event::Peers { peers: vec![] },
            origin: Some(Origin {
                client: 1,
                id: None,
                cmd: BARRIER.to_owned(),
            }),
        };
        sink.try_send(barrier).unwrap();
        sink.try_send(Answered::broadcast(Event::Lagged { missed: 1 }))
            .unwrap();
        let mut out = Writes::default();
        let attached = crate::node::Attached { client: 1, events };
        let ended = serve_lines(
            tokio::io::empty(),
            &mut out,
            attached,
            &link,
            Served::own(),
            |_| {},
        )
        .await;
        let Ended::InputClosed(mut rest) = ended else {
            panic!("the barrier ends the input");
        };
        // What came after the barrier is left for the caller.
        assert!(matches!(
            rest.try_recv().unwrap().event,
            Event::Lagged { .. }
        ));
        let text: Vec<u8> = out.0.concat();
        let lines: Vec<&str> = std::str::from_utf8(&text).unwrap().lines().collect();
        assert_eq!(lines.len(), count as usize);
        for (n, line) in lines.iter().enumerate() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["event"], "message");
            assert_eq!(value["ts"], n);
        }
        assert!(
            out.0.len() <= text.len() / WRITE_BATCH + 2,
            "{} writes for {} bytes",
            out.0.len(),
            text.len()
        );
    }
}
