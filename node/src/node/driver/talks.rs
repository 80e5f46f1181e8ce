//! Talk-spurts under way: each is numbered when it starts, so that its end (`voice_sent`, or
//! `voice_failed`) answers the `voice` command that started it, and so that a one-shot node
//! can wait for them before it stops.

use std::collections::HashMap;

use tokio::sync::oneshot;

use super::Driver;
use crate::control::{ClientId, Origin};
use crate::engine::Input;
use crate::voice::sender::Outgoing;

#[derive(Default)]
pub(super) struct Talks {
    /// By number: the command each answers when it ends (`None` for the embedding client's
    /// microphone).
    under_way: HashMap<u64, Option<Origin>>,
    last: u64,
    /// Each waiting for none of its client's to be under way.
    waiters: Vec<(ClientId, oneshot::Sender<()>)>,
}

impl Talks {
    /// A new talk-spurt, answering `origin` when it ends: its number.
    pub(super) fn start(&mut self, origin: Option<Origin>) -> u64 {
        self.last += 1;
        self.under_way.insert(self.last, origin);
        self.last
    }

    /// Answer `reply` once none of `client`'s talk-spurts is under way (now, if none is).
    pub(super) fn when_none(&mut self, client: ClientId, reply: oneshot::Sender<()>) {
        if self.any_of(client) {
            self.waiters.push((client, reply));
        } else {
            let _ = reply.send(());
        }
    }

    fn any_of(&self, client: ClientId) -> bool {
        self.under_way
            .values()
            .any(|origin| origin.as_ref().is_some_and(|o| o.client == client))
    }

    /// Talk-spurt `talk` ended: the command it answers.
    fn ended(&mut self, talk: u64) -> Option<Origin> {
        self.under_way.remove(&talk).flatten()
    }

    /// Answer those waiting for clients with no talk-spurt left.
    fn answer_waiters(&mut self) {
        let waiters = std::mem::take(&mut self.waiters);
        for (client, reply) in waiters {
            if self.any_of(client) {
                self.waiters.push((client, reply));
            } else {
                let _ = reply.send(());
            }
        }
    }
}

impl Driver {
    /// A talk-spurt's frame goes out; its end answers the command that started it.
    pub(super) fn on_voice_out(&mut self, out: Outgoing) {
        let origin = match &out {
            Outgoing::Frame { .. } => None,
            Outgoing::Done { talk, .. } | Outgoing::Failed { talk, .. } => self.talks.ended(*talk),
        };
        let ended = origin.is_some();
        self.answering = origin;
        self.handle(Input::VoiceOut(out));
        self.answering = None;
        // After its `voice_sent` is on its way to the client.
        if ended {
            self.talks.answer_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(client: ClientId) -> Option<Origin> {
        Some(Origin {
            client,
            id: None,
            cmd: "voice".to_owned(),
        })
    }

    #[test]
    fn a_client_waits_for_its_own_talk_spurts_only() {
        let mut talks = Talks::default();
        let mine = talks.start(origin(1));
        let theirs = talks.start(origin(2));
        let microphone = talks.start(None);
        let (reply, mut answered) = oneshot::channel();
        talks.when_none(1, reply);
        assert!(answered.try_recv().is_err(), "its own talk is under way");

        assert_eq!(talks.ended(mine).map(|o| o.client), Some(1));
        talks.answer_waiters();
        assert!(
            answered.try_recv().is_ok(),
            "another client's talk and the microphone do not hold it"
        );
        assert!(talks.under_way.contains_key(&theirs) && talks.under_way.contains_key(&microphone));

        let (reply, mut answered) = oneshot::channel();
        talks.when_none(3, reply);
        assert!(answered.try_recv().is_ok(), "nothing of its own: at once");
    }
}
