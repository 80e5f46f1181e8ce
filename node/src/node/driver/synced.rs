//! The driver's share of the store's fsync thread (`store/wal_sync.rs`): sends that wait for
//! their fsync, each answered in the context of the command that made it once its ticket is
//! done, and the requests that wait behind them.
//!
//! A client's answers keep the order it asked in (its `sent` before the answer to what it
//! asked next; `hark-node --json` relies on it at the end of its input), so a client's
//! requests wait while one of its sends waits. Nobody else's do: another client's commands,
//! the HTTP API's `/metrics`, and a web user's voice frames go on while a slow disk fsyncs.

use std::collections::{HashSet, VecDeque};

use tokio::sync::mpsc;

use super::Driver;
use crate::control::{ClientId, Origin, Request};
use crate::engine::Input;

/// A ticket of the store's fsync thread, done or failed.
pub type Synced = (u64, Result<(), String>);

/// Requests held behind their client's sends, at most: then the driver stops reading
/// requests (as the command queue's bound would have it), so a client cannot grow this.
const MAX_HELD: usize = 1_024;

/// Whose order a request keeps: its client's, or (`None`) the embedding client's, whose
/// commands carry no origin.
type Asker = Option<ClientId>;

/// Sends waiting for the store's fsync: the ticket, and the command's client context (its
/// client, and what `sent` counts) to answer in once it is done.
pub(super) struct AwaitingSync {
    done: mpsc::UnboundedReceiver<Synced>,
    waiting: VecDeque<(u64, Option<Origin>, Option<&'static str>)>,
    /// Requests whose client has a send waiting (or a request held before them), in the order
    /// they came.
    held: VecDeque<(Asker, Request)>,
    /// Clients whose requests need no order between them (`ClientLink::attach_unordered`).
    unordered: HashSet<ClientId>,
}

impl AwaitingSync {
    pub(super) fn new(done: mpsc::UnboundedReceiver<Synced>) -> Self {
        Self {
            done,
            waiting: VecDeque::new(),
            held: VecDeque::new(),
            unordered: HashSet::new(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// No send waits and no request is held: a `quit` may stop the node.
    pub(super) fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.held.is_empty()
    }

    /// Too many requests held: read no more until some are taken.
    pub(super) fn is_full(&self) -> bool {
        self.held.len() >= MAX_HELD
    }

    /// The next ticket done. If the fsync thread has stopped, none will ever be: every
    /// waiting send fails, so that the engine stops waiting (and sends nothing more that
    /// could carry them) and requests flow again.
    pub(super) async fn next(&mut self) -> Synced {
        match self.done.recv().await {
            Some(synced) => synced,
            None => (
                u64::MAX,
                Err("the store's fsync thread has stopped".to_owned()),
            ),
        }
    }

    /// Hold `request` if its client must wait; otherwise give it back to be handled now.
    fn hold_if_waiting(&mut self, request: Request) -> Option<Request> {
        match &request {
            Request::Attach {
                client,
                ordered: false,
                ..
            } => {
                self.unordered.insert(*client);
            }
            Request::Detach { client } => {
                self.unordered.remove(client);
            }
            _ => {}
        }
        match asker(&request) {
            Some(Some(client)) if self.unordered.contains(&client) => Some(request),
            Some(asker) if self.sending(asker) || self.held.iter().any(|(a, _)| *a == asker) => {
                self.held.push_back((asker, request));
                None
            }
            _ => Some(request),
        }
    }

    /// The first held request whose client no longer waits.
    fn next_free(&mut self) -> Option<Request> {
        let index = self.held.iter().enumerate().position(|(i, (asker, _))| {
            !self.sending(*asker) && !self.held.iter().take(i).any(|(a, _)| a == asker)
        })?;
        self.held.remove(index).map(|(_, request)| request)
    }

    fn sending(&self, asker: Asker) -> bool {
        self.waiting
            .iter()
            .any(|(_, origin, _)| origin.as_ref().map(|o| o.client) == asker)
    }
}

/// Whose order `request` keeps; `None` for those that answer nobody in order (a new client,
/// the counters, a voice frame), which never wait.
fn asker(request: &Request) -> Option<Asker> {
    match request {
        Request::Command { origin, .. } | Request::SendAs { origin, .. } => {
            Some(origin.as_ref().map(|o| o.client))
        }
        Request::Subscribe { origin, .. } | Request::Ptt { origin, .. } => {
            Some(Some(origin.client))
        }
        Request::Detach { client } => Some(Some(*client)),
        Request::Attach { .. } | Request::Stats { .. } | Request::VoiceFrame { .. } => None,
    }
}

impl Driver {
    /// A client's request: handled now, or held while a send of that client's waits.
    pub(super) fn take_request(&mut self, request: Request) {
        if let Some(request) = self.awaiting_sync.hold_if_waiting(request) {
            self.on_request(request);
        }
    }

    /// The engine's send waits for the fsync `ticket`: remember the command's context.
    pub(super) fn await_sync(&mut self, ticket: u64) {
        self.awaiting_sync
            .waiting
            .push_back((ticket, self.answering.clone(), self.sending_kind));
    }

    /// The store's fsync `ticket` is done: each send it covers is answered in the context of
    /// the command that made it, then the requests held behind them are handled.
    pub(super) fn on_synced(&mut self, (ticket, result): Synced) {
        while let Some(&(next, _, _)) = self.awaiting_sync.waiting.front() {
            if next > ticket {
                break;
            }
            let Some((next, origin, kind)) = self.awaiting_sync.waiting.pop_front() else {
                break;
            };
            self.answering = origin;
            self.sending_kind = kind;
            self.handle(Input::Synced {
                ticket: next,
                result: result.clone(),
            });
            self.sending_kind = None;
            self.answering = None;
        }
        // Each may make a send that waits again, holding its client's next ones.
        while let Some(request) = self.awaiting_sync.next_free() {
            self.on_request(request);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Command;

    fn origin(client: ClientId, cmd: &str) -> Option<Origin> {
        Some(Origin {
            client,
            id: None,
            cmd: cmd.to_owned(),
        })
    }

    fn peers(client: ClientId) -> Request {
        Request::Command {
            origin: origin(client, "peers"),
            command: Command::Peers,
        }
    }

    fn asked_by(request: &Request) -> Option<ClientId> {
        match request {
            Request::Command { origin, .. } => origin.as_ref().map(|o| o.client),
            Request::Detach { client } => Some(*client),
            _ => None,
        }
    }

    #[test]
    fn only_the_client_whose_send_waits_is_held_and_in_the_order_it_asked() {
        let (_done, done_rx) = mpsc::unbounded_channel();
        let mut sync = AwaitingSync::new(done_rx);
        sync.waiting.push_back((1, origin(7, "send"), Some("text")));

        // Another client, the embedding client, the counters: handled now.
        assert!(sync.hold_if_waiting(peers(8)).is_some());
        let embedding = Request::Command {
            origin: None,
            command: Command::Peers,
        };
        assert!(sync.hold_if_waiting(embedding).is_some());
        let (reply, _) = tokio::sync::oneshot::channel();
        assert!(sync.hold_if_waiting(Request::Stats { reply }).is_some());

        // The sender's next requests wait, and so does its leaving.
        assert!(sync.hold_if_waiting(peers(7)).is_none());
        assert!(sync
            .hold_if_waiting(Request::Detach { client: 7 })
            .is_none());
        assert!(!sync.is_idle());
        assert!(sync.next_free().is_none(), "its send still waits");

        // Once the send is done they come back in order; a new send of its would hold the rest.
        sync.waiting.clear();
        let first = sync.next_free().expect("the held command");
        assert!(matches!(first, Request::Command { .. }) && asked_by(&first) == Some(7));
        sync.waiting.push_back((2, origin(7, "send"), Some("text")));
        assert!(sync.next_free().is_none(), "behind the new send");
        assert!(
            sync.hold_if_waiting(peers(9)).is_some(),
            "other clients still go on"
        );
        sync.waiting.clear();
        let second = sync.next_free().expect("the held detach");
        assert!(matches!(second, Request::Detach { client: 7 }));
        assert!(sync.is_idle());
    }

    #[test]
    fn a_client_that_matches_answers_by_id_is_never_held() {
        let (_done, done_rx) = mpsc::unbounded_channel();
        let mut sync = AwaitingSync::new(done_rx);
        let (sink, _events) = mpsc::channel(1);
        let attach = Request::Attach {
            client: 3,
            sink,
            filter: Default::default(),
            ordered: false,
        };
        assert!(sync.hold_if_waiting(attach).is_some());
        // One of its requests (a web user's message) waits for its fsync; the next (another
        // user's) is handled at once.
        sync.waiting.push_back((1, origin(3, "send"), Some("text")));
        assert!(sync.hold_if_waiting(peers(3)).is_some());
        assert!(sync.held.is_empty());
    }
}
