//! Talk-spurts under way: each is numbered when it starts, so that its end (`voice_sent`, or
//! `voice_failed`) answers the `voice` command that started it, and so that a one-shot node
//! can wait for them before it stops.

use std::collections::HashMap;

use tokio::sync::oneshot;

use super::Driver;
use crate::control::Origin;
use crate::engine::Input;
use crate::voice::sender::Outgoing;

#[derive(Default)]
pub(super) struct Talks {
    /// By number: the command each answers when it ends (`None` for the embedding client's
    /// microphone).
    under_way: HashMap<u64, Option<Origin>>,
    last: u64,
    /// Waiting for none to be under way.
    waiters: Vec<oneshot::Sender<()>>,
}

impl Talks {
    /// A new talk-spurt, answering `origin` when it ends: its number.
    pub(super) fn start(&mut self, origin: Option<Origin>) -> u64 {
        self.last += 1;
        self.under_way.insert(self.last, origin);
        self.last
    }

    /// Answer `reply` once no talk-spurt is under way (now, if none is).
    pub(super) fn when_none(&mut self, reply: oneshot::Sender<()>) {
        if self.under_way.is_empty() {
            let _ = reply.send(());
        } else {
            self.waiters.push(reply);
        }
    }

    /// Talk-spurt `talk` ended: the command it answers.
    fn ended(&mut self, talk: u64) -> Option<Origin> {
        let origin = self.under_way.remove(&talk).flatten();
        if self.under_way.is_empty() {
            for waiter in self.waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
        origin
    }
}

impl Driver {
    /// A talk-spurt's frame goes out; its end answers the command that started it.
    pub(super) fn on_voice_out(&mut self, out: Outgoing) {
        let origin = match &out {
            Outgoing::Frame { .. } => None,
            Outgoing::Done { talk, .. } | Outgoing::Failed { talk, .. } => self.talks.ended(*talk),
        };
        self.answering = origin;
        self.handle(Input::VoiceOut(out));
        self.answering = None;
    }
}
