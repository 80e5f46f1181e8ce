//! The driver's share of the store's fsync thread (`store/wal_sync.rs`): sends that wait for
//! their fsync, each answered in the context of the command that made it once its ticket is
//! done.

use std::collections::VecDeque;

use tokio::sync::mpsc;

use super::Driver;
use crate::control::Origin;
use crate::engine::Input;

/// A ticket of the store's fsync thread, done or failed.
pub type Synced = (u64, Result<(), String>);

/// Sends waiting for the store's fsync: the ticket, and the command's client context (its
/// client, and what `sent` counts) to answer in once it is done.
pub(super) struct AwaitingSync {
    done: mpsc::UnboundedReceiver<Synced>,
    waiting: VecDeque<(u64, Option<Origin>, Option<&'static str>)>,
}

impl AwaitingSync {
    pub(super) fn new(done: mpsc::UnboundedReceiver<Synced>) -> Self {
        Self {
            done,
            waiting: VecDeque::new(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
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
}

impl Driver {
    /// The engine's send waits for the fsync `ticket`: remember the command's context.
    pub(super) fn await_sync(&mut self, ticket: u64) {
        self.awaiting_sync
            .waiting
            .push_back((ticket, self.answering.clone(), self.sending_kind));
    }

    /// The store's fsync `ticket` is done: each send it covers is answered in the context of
    /// the command that made it.
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
    }
}
