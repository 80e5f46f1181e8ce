//! Which answer belongs to which command.
//!
//! The node handles commands one at a time, in order, and answers each (except `typing`) with
//! exactly one event: its result or an `error`. (`create` answers `created` and then `joined`;
//! a `send` that was stored but could not be published answers `sent` and then a
//! `publish_failed` error, which answers nothing further.) So a queue of the commands sent,
//! oldest first, tells which command an `error` is about — the node's error events carry no
//! room or command — and which of our lines a `sent` confirms.

use std::collections::VecDeque;

use hark_node::Event;

use crate::timeline::MessageKind;

/// Why a `history` was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryReason {
    /// At start, for a room remembered from the last run: an error means we are no longer in it.
    Startup,
    /// A room just joined.
    Opened,
    /// The user scrolled to the top of what was loaded.
    More,
    /// The node said we fell behind: a room reloads what it shows.
    Lagged,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Send {
        room: String,
        kind: MessageKind,
        text: String,
    },
    History {
        room: String,
        reason: HistoryReason,
    },
    /// `quiet`: asked at start only to learn whether a room is private.
    Invite {
        room: String,
        quiet: bool,
    },
    Join,
    Create,
    Leave,
    Search,
    Nick,
    Peers,
    Verify {
        step: crate::commands::VerifyStep,
    },
    /// `/members` or `/admin` (`quiet: false`: shown as a notice).
    Members {
        quiet: bool,
    },
}

impl Request {
    /// Whether `event` is this request's answer (errors answer anything).
    fn answered_by(&self, event: &Event) -> bool {
        matches!(
            (self, event),
            (_, Event::Error { .. })
                | (Request::Send { .. }, Event::Sent { .. })
                | (Request::History { .. }, Event::History { .. })
                | (Request::Invite { .. }, Event::Invite { .. })
                | (Request::Join, Event::Joined { .. })
                | (Request::Create, Event::Joined { .. })
                | (Request::Leave, Event::Left { .. })
                | (Request::Search, Event::SearchResults { .. })
                | (Request::Nick, Event::Nick { .. })
                | (Request::Peers, Event::Peers { .. })
                | (Request::Verify { .. }, Event::SafetyNumber { .. })
                | (Request::Members { .. }, Event::Members { .. })
        )
    }
}

#[derive(Debug, Default)]
pub struct Replies {
    /// Each request, with the line the user typed for it (given back if the node refuses it).
    waiting: VecDeque<(Request, Option<String>)>,
}

impl Replies {
    pub fn expect(&mut self, request: Request) {
        self.waiting.push_back((request, None));
    }

    /// The line the user typed for the request queued last.
    pub fn typed_for_newest(&mut self, line: String) {
        if let Some((_, typed)) = self.waiting.back_mut() {
            *typed = Some(line);
        }
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// The request `event` answers, if it answers one, and the line typed for it. Events that
    /// answer nothing (messages, `created` before its `joined`, a `publish_failed` after
    /// `sent`) leave the queue alone.
    pub fn answer(&mut self, event: &Event) -> Option<(Request, Option<String>)> {
        match event {
            Event::Error { code, .. } if code == "publish_failed" => return None,
            // A direct-message room opens when the other side writes: it answers nothing.
            Event::Joined { room } if room.starts_with('@') => return None,
            Event::Error { .. }
            | Event::Sent { .. }
            | Event::History { .. }
            | Event::Invite { .. }
            | Event::Joined { .. }
            | Event::Left { .. }
            | Event::SearchResults { .. }
            | Event::Nick { .. }
            | Event::Peers { .. }
            | Event::SafetyNumber { .. }
            | Event::Members { .. } => {}
            _ => return None,
        }
        // Normally the oldest request; should the two ever disagree, the oldest that this kind
        // of event can answer, so one surprise does not shift every later answer.
        let at = self
            .waiting
            .iter()
            .position(|(r, _)| r.answered_by(event))?;
        if at > 0 {
            tracing::warn!(skipped = at, ?event, "an answer skipped older requests");
        }
        self.waiting.remove(at)
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}
