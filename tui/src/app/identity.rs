//! Who is who: the names each key uses, the marks beside authors (verified, shared name),
//! and `/verify` with the safety number the node answers.

use hark_node::Command;

use super::{App, Effect, Now, Overlay};
use crate::commands::VerifyStep;
use crate::identities::IdMark;
use crate::replies::Request;
use crate::style::display_name;
use crate::timeline::NoticeLevel;

impl App {
    /// `peer_id` uses `name`; true when another key already used it (marks may change).
    pub(super) fn note_name(&mut self, peer_id: &str, name: &str) -> bool {
        let clash = self.identities.note(peer_id, name);
        if clash {
            self.refresh_marks();
        }
        clash
    }

    /// Set the mark beside every message's author anew (verified, or a shared name).
    pub(super) fn refresh_marks(&mut self) {
        let identities = &self.identities;
        for room in &mut self.rooms {
            for message in room.timeline.messages_mut() {
                message.mark = identities.mark(&message.from, &message.name);
            }
        }
    }

    /// The mark to show after a person's name (people list, messages).
    pub fn mark(&self, peer_id: &str, name: &str) -> IdMark {
        self.identities.mark(peer_id, name)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_safety_number(
        &mut self,
        answered: Option<Request>,
        peer: String,
        name: String,
        number: String,
        verified: bool,
        same_name: Vec<String>,
        now: Now,
    ) {
        let was = self.identities.is_verified(&peer);
        self.identities.set_verified(&peer, verified);
        self.note_name(&peer, &name);
        self.refresh_marks();
        let who = display_name(if name.is_empty() { "?" } else { &name }, &peer);
        let here = self.current;
        match answered {
            Some(Request::Verify {
                step: VerifyStep::Show,
            })
            | None => {
                self.overlay = Some(Overlay::Safety {
                    peer,
                    name,
                    number,
                    verified,
                    same_name,
                });
            }
            Some(_) if verified && !was => {
                self.notice(
                    here,
                    format!("{who} is marked verified ✓"),
                    NoticeLevel::Info,
                    now,
                );
            }
            Some(_) if !verified && was => {
                self.notice(
                    here,
                    format!("{who} is no longer marked verified"),
                    NoticeLevel::Info,
                    now,
                );
            }
            Some(_) => {
                let state = if verified { "already" } else { "was not" };
                self.set_hint(format!("{who} {state} marked verified"), false, now.at);
            }
        }
    }

    /// The peer `/verify` means: a name (or `name#abcd`) heard here, else what was typed, for
    /// the node to resolve (a peer id, or a name it heard).
    pub(super) fn verify(&mut self, who: &str, step: VerifyStep, now: Now) -> Vec<Effect> {
        let (name, short) = match who.split_once('#') {
            Some((name, short)) => (name, Some(short)),
            None => (who, None),
        };
        let keys: Vec<String> = self
            .identities
            .keys_named(name)
            .into_iter()
            .filter(|k| short.is_none_or(|s| k.ends_with(s)))
            .collect();
        let peer = match &keys[..] {
            [one] => one.clone(),
            [] => who.to_owned(),
            several => {
                let ids: Vec<String> = several.iter().map(|k| display_name(name, k)).collect();
                self.set_hint(
                    format!(
                        "several keys use the name {name}: {} (add the #id)",
                        ids.join(", ")
                    ),
                    true,
                    now.at,
                );
                return Vec::new();
            }
        };
        let confirm = match step {
            VerifyStep::Show => None,
            VerifyStep::Confirm => Some(true),
            VerifyStep::Revoke => Some(false),
        };
        vec![self.send(
            Command::Verify { peer, confirm },
            Some(Request::Verify { step }),
        )]
    }
}
