//! Events to the client. The network never waits on a client: the driver hands events over
//! without blocking, and a client that falls behind is told so.
//!
//! Policy (docs/architecture.md, "A slow client"):
//! - up to [`EVENT_QUEUE`](super::EVENT_QUEUE) events wait for the client (a 100k-message
//!   catch-up fits);
//! - typing and presence are ephemeral: once more than [`EPHEMERAL_BACKLOG`] events wait, they
//!   are dropped quietly (the next one says the same);
//! - anything else that does not fit is counted, never silently: as soon as there is room, the
//!   client gets `lagged {missed}` before any newer event, and reads what was stored (messages)
//!   back with `history`.

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::api::Event;
use crate::control::Answered;

/// Typing and presence are dropped once this many events wait.
pub const EPHEMERAL_BACKLOG: usize = 1_024;

/// What a client's queue holds: the embedding client's plain events, or a socket client's
/// events with the origin of the command they answer.
pub trait Queued {
    fn lagged(missed: u64) -> Self;
    /// Typing and presence (never an answer to a command).
    fn ephemeral(&self) -> bool;
}

impl Queued for Event {
    fn lagged(missed: u64) -> Self {
        Event::Lagged { missed }
    }

    fn ephemeral(&self) -> bool {
        matches!(self, Event::Typing { .. } | Event::Presence { .. })
    }
}

impl Queued for Answered {
    fn lagged(missed: u64) -> Self {
        Answered::broadcast(Event::Lagged { missed })
    }

    fn ephemeral(&self) -> bool {
        self.origin.is_none() && self.event.ephemeral()
    }
}

pub struct EventSink<T = Event> {
    tx: mpsc::Sender<T>,
    /// Events the client missed and has not been told about yet.
    missed: u64,
}

impl<T: Queued> EventSink<T> {
    pub fn new(tx: mpsc::Sender<T>) -> Self {
        Self { tx, missed: 0 }
    }

    /// Whether the client has gone (its end of the queue is dropped).
    pub fn closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Hand `event` to the client without waiting.
    pub fn send(&mut self, event: T) {
        let queued = self.tx.max_capacity() - self.tx.capacity();
        let ephemeral = event.ephemeral();
        if ephemeral && (queued >= EPHEMERAL_BACKLOG || self.missed > 0) {
            return;
        }
        if !self.flush_lag() {
            self.missed += 1;
            return;
        }
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.missed += 1,
            // A client that stopped reading is gone; the node keeps serving the mesh.
            Err(TrySendError::Closed(_)) => {}
        }
    }

    /// Tell the client what it missed, if there is room; true when nothing is left untold.
    pub fn flush_lag(&mut self) -> bool {
        if self.missed == 0 {
            return true;
        }
        match self.tx.try_send(T::lagged(self.missed)) {
            Ok(()) => {
                tracing::warn!(missed = self.missed, "the client fell behind and was told");
                self.missed = 0;
                true
            }
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Closed(_)) => {
                self.missed = 0;
                true
            }
        }
    }

    /// Whether a `lagged` notice still waits for room.
    pub fn lagging(&self) -> bool {
        self.missed > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: usize) -> Event {
        Event::Message {
            room: "lobby".into(),
            id: format!("{n:032x}"),
            from: "peer".into(),
            name: "alice".into(),
            ts: 0,
            tick: 0,
            kind: "text".into(),
            text: format!("message {n}"),
        }
    }

    #[test]
    fn a_client_that_falls_behind_is_told_before_anything_newer() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut sink = EventSink::new(tx);
        for n in 0..6 {
            sink.send(message(n));
        }
        assert!(sink.lagging());
        // The client reads two; the next event is preceded by the notice.
        rx.try_recv().unwrap();
        rx.try_recv().unwrap();
        sink.send(message(6));
        let rest: Vec<Event> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(rest.len(), 4);
        assert_eq!(rest[2], Event::Lagged { missed: 2 });
        assert_eq!(rest[3], message(6));
        assert!(!sink.lagging());
    }

    #[test]
    fn typing_is_dropped_quietly_when_the_client_is_behind() {
        let (tx, mut rx) = mpsc::channel(EPHEMERAL_BACKLOG + 8);
        let mut sink = EventSink::new(tx);
        for n in 0..EPHEMERAL_BACKLOG {
            sink.send(message(n));
        }
        sink.send(Event::Typing {
            room: "lobby".into(),
            from: "peer".into(),
            name: "bob".into(),
        });
        sink.send(message(EPHEMERAL_BACKLOG));
        assert!(!sink.lagging(), "dropping typing is not lagging");
        let all: Vec<Event> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(all.len(), EPHEMERAL_BACKLOG + 1);
        assert!(!all.iter().any(|e| matches!(e, Event::Typing { .. })));
    }
}
