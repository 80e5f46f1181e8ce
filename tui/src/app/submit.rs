//! Enter: a typed line becomes a message or a command for the node (or a hint), and
//! `/mute`, which the client handles itself.

use hark_node::Command;

use super::{App, Effect, Now, Overlay, NO_WEB};
use crate::commands::{self, Submitted, UiCommand};
use crate::replies::Request;
use crate::timeline::{MessageKind, NoticeLevel};

const SEARCH_LIMIT: usize = 200;

impl App {
    /// Enter: the line becomes a command for the node, or a hint. A line that fails is never
    /// lost: it stays in the input (a hint), or comes back when the node refuses it.
    pub(super) fn submit(&mut self, now: Now) -> Vec<Effect> {
        let line = self.input.submit();
        self.hint = None;
        let queued = self.replies.len();
        let effects = self.submit_line(&line, now);
        if self.replies.len() > queued {
            self.replies.typed_for_newest(line);
        } else if self.hint.as_ref().is_some_and(|h| h.error) && self.input.is_empty() {
            self.input.set(&line, line.len());
        }
        effects
    }

    fn submit_line(&mut self, line: &str, now: Now) -> Vec<Effect> {
        let parsed = match commands::parse(line) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => {
                if !line.is_empty() {
                    self.set_hint("nothing sent: the line is blank", false, now.at);
                }
                return Vec::new();
            }
            Err(hint) => {
                self.set_hint(hint, true, now.at);
                return Vec::new();
            }
        };
        let here = self.current_room().map(|r| r.name.clone());
        let need_room = |this: &mut Self| -> Option<String> {
            if here.is_none() {
                this.set_hint("not in any room: /join lobby", true, now.at);
            }
            here.clone()
        };
        let say = |this: &mut Self, kind: MessageKind, text: String| -> Vec<Effect> {
            let Some(room) = need_room(this) else {
                return Vec::new();
            };
            this.follow_current();
            if let Some(r) = this.rooms.get_mut(this.current) {
                // A sent line ends our typing: the next keystroke may announce typing again.
                r.last_typing_sent = None;
            }
            let command = match kind {
                MessageKind::Text => Command::Send {
                    room: room.clone(),
                    text: text.clone(),
                },
                MessageKind::Me => Command::Me {
                    room: room.clone(),
                    text: text.clone(),
                },
                MessageKind::Alert => Command::Alert {
                    room: room.clone(),
                    text: text.clone(),
                },
            };
            vec![this.send(command, Some(Request::Send { room, kind, text }))]
        };
        match parsed {
            Submitted::Say(text) => say(self, MessageKind::Text, text),
            Submitted::Command(command) => match command {
                UiCommand::Me(text) => say(self, MessageKind::Me, text),
                UiCommand::Alert(text) => say(self, MessageKind::Alert, text),
                UiCommand::Join(target) => {
                    // The node tells a name from an invite (also one without its `hark:`).
                    let join = Command::Join {
                        room: Some(target),
                        invite: None,
                    };
                    vec![self.send(join, Some(Request::Join))]
                }
                UiCommand::Create(room) => {
                    vec![self.send(Command::Create { room }, Some(Request::Create))]
                }
                UiCommand::Invite(room) => match room.or_else(|| need_room(self)) {
                    Some(room) => vec![self.send(
                        Command::Invite { room: room.clone() },
                        Some(Request::Invite { room, quiet: false }),
                    )],
                    None => Vec::new(),
                },
                UiCommand::Leave(room) => match room.or_else(|| need_room(self)) {
                    Some(room) => vec![self.send(Command::Leave { room }, Some(Request::Leave))],
                    None => Vec::new(),
                },
                UiCommand::Nick(name) => {
                    vec![self.send(Command::Nick { name }, Some(Request::Nick))]
                }
                UiCommand::Peers => vec![self.send(Command::Peers, Some(Request::Peers))],
                UiCommand::Search(text) => match need_room(self) {
                    Some(room) => vec![self.send(
                        Command::Search {
                            room,
                            text,
                            limit: Some(SEARCH_LIMIT),
                        },
                        Some(Request::Search),
                    )],
                    None => Vec::new(),
                },
                UiCommand::Mute(who, muted) => self.mute(&who, muted, now),
                UiCommand::Verify(who, step) => self.verify(&who, step, now),
                UiCommand::Msg(who, text) => self.direct_message(&who, text, now),
                UiCommand::Kick(peer) => match need_room(self) {
                    Some(room) => vec![self.send(Command::Kick { room, peer }, None)],
                    None => Vec::new(),
                },
                UiCommand::Admin(peer) => match need_room(self) {
                    Some(room) => vec![self.send(
                        Command::Promote { room, peer },
                        Some(Request::Members { quiet: false }),
                    )],
                    None => Vec::new(),
                },
                UiCommand::Members => match need_room(self) {
                    Some(room) => vec![self.send(
                        Command::Members { room },
                        Some(Request::Members { quiet: false }),
                    )],
                    None => Vec::new(),
                },
                UiCommand::WebInvite(name) => {
                    if self.serves_web {
                        vec![Effect::WebInvite { name }]
                    } else {
                        self.set_hint(NO_WEB, false, now.at);
                        Vec::new()
                    }
                }
                UiCommand::Help => {
                    self.overlay = Some(Overlay::Help);
                    Vec::new()
                }
                UiCommand::Quit => vec![Effect::Quit],
            },
        }
    }

    /// `/mute NICK` / `/unmute NICK`: NICK is a name in this room, or `name#abcd` (the last
    /// four characters of the peer id) when several people share the name.
    fn mute(&mut self, who: &str, muted: bool, now: Now) -> Vec<Effect> {
        let (name, short) = match who.split_once('#') {
            Some((name, short)) => (name, Some(short)),
            None => (who, None),
        };
        let matches: Vec<(String, String)> = self
            .current_room()
            .map(|room| {
                room.people
                    .sorted(&|_| true)
                    .into_iter()
                    .filter(|p| p.name.eq_ignore_ascii_case(name))
                    .filter(|p| short.is_none_or(|s| p.peer_id.ends_with(s)))
                    .map(|p| (p.peer_id.clone(), p.name.clone()))
                    .collect()
            })
            .unwrap_or_default();
        match &matches[..] {
            [] => {
                self.set_hint(format!("no one called {who} in this room"), true, now.at);
                Vec::new()
            }
            [(peer_id, name)] => {
                let short = &peer_id[peer_id.len().saturating_sub(4)..];
                let what = if muted { "muted" } else { "unmuted" };
                let here = self.current;
                self.notice(
                    here,
                    format!("{what} {name}#{short}"),
                    NoticeLevel::Info,
                    now,
                );
                vec![Effect::Mute {
                    peer_id: peer_id.clone(),
                    muted,
                }]
            }
            _ => {
                self.set_hint(
                    format!(
                        "several people are called {who}: add their #id, as in /mute {who}#3f9a"
                    ),
                    true,
                    now.at,
                );
                Vec::new()
            }
        }
    }
}
