//! Keys: each [`Action`] edits the input line, moves between rooms and pages, opens or
//! closes overlays, or keys the microphone; typing tells the room (rate-limited).

use std::time::Duration;

use hark_node::Command;

use super::{App, Effect, Now, Overlay};
use crate::keys::Action;
use crate::timeline::NoticeLevel;
use crate::voice::PttAction;

/// Our typing notices: at most one per room this often (the node's own limit too).
const TYPING_EVERY: Duration = Duration::from_secs(2);

impl App {
    pub fn on_paste(&mut self, text: &str, now: Now) -> Vec<Effect> {
        self.completion = None;
        self.input.insert_str(text);
        self.typed(now).into_iter().collect()
    }

    pub fn on_action(&mut self, action: Action, now: Now) -> Vec<Effect> {
        if action != Action::Complete {
            self.completion = None;
        }
        let mut effects = Vec::new();
        match action {
            Action::Insert(c) => {
                self.input.insert_char(c);
                effects.extend(self.typed(now));
            }
            Action::Backspace => self.input.backspace(),
            Action::Delete => self.input.delete(),
            Action::Left => self.input.left(),
            Action::Right => self.input.right(),
            Action::WordLeft => self.input.word_left(),
            Action::WordRight => self.input.word_right(),
            Action::LineStart => self.input.home(),
            Action::LineEnd => self.input.end(),
            Action::DeleteWordLeft => self.input.delete_word_left(),
            Action::DeleteWordRight => self.input.delete_word_right(),
            Action::DeleteToSpaceLeft => self.input.delete_to_space_left(),
            Action::DeleteToStart => self.input.delete_to_start(),
            Action::DeleteToEnd => self.input.delete_to_end(),
            Action::HistoryBack => self.input.history_back(),
            Action::HistoryForward => self.input.history_forward(),
            Action::Complete => self.complete(),
            Action::Submit => {
                if self.overlay.is_some() && self.input.is_empty() {
                    self.overlay = None;
                } else {
                    effects.extend(self.submit(now));
                }
            }
            Action::PageUp => effects.extend(self.page_up()),
            Action::PageDown => self.page_down(),
            Action::ScrollTop => effects.extend(self.scroll_top()),
            Action::ScrollBottom => self.follow_current(),
            Action::NextRoom => {
                let next = (self.current + 1) % self.rooms.len().max(1);
                self.switch_to(next);
            }
            Action::PrevRoom => {
                let count = self.rooms.len().max(1);
                self.switch_to((self.current + count - 1) % count);
            }
            Action::GoToRoom(index) => {
                if index < self.rooms.len() {
                    self.switch_to(index);
                } else {
                    self.set_hint(format!("no room {}", index + 1), false, now.at);
                }
            }
            Action::Help => {
                self.overlay = match self.overlay {
                    Some(Overlay::Help) => None,
                    _ => Some(Overlay::Help),
                };
            }
            Action::PttPress => {
                let room = self
                    .current_room()
                    .map(|r| r.name.clone())
                    .unwrap_or_default();
                let action = self.ptt.pressed(&room);
                effects.extend(self.ptt_action(action, now));
            }
            Action::PttRelease => {
                let action = self.ptt.released();
                effects.extend(self.ptt_action(action, now));
            }
            Action::Escape => {
                if self.overlay.is_some() {
                    self.overlay = None;
                } else if self.alert.is_some() {
                    self.alert = None;
                } else {
                    self.hint = None;
                }
            }
            Action::Quit => effects.push(Effect::Quit),
            Action::Redraw => {}
        }
        effects
    }

    pub(super) fn ptt_action(&mut self, action: PttAction, now: Now) -> Option<Effect> {
        match action {
            PttAction::None => None,
            PttAction::Unavailable(reason) => {
                if !self.told_no_voice {
                    self.told_no_voice = true;
                    let here = self.current;
                    self.notice(here, reason.clone(), NoticeLevel::Error, now);
                }
                self.set_hint(reason, true, now.at);
                None
            }
            action => Some(Effect::Talk(action)),
        }
    }

    /// The user typed into the line: tell the room, at most every 2 s, unless it is a command.
    fn typed(&mut self, now: Now) -> Option<Effect> {
        if self.input.text().starts_with('/') || self.input.text().trim().is_empty() {
            return None;
        }
        let room = self.rooms.get_mut(self.current)?;
        if !room.confirmed
            || room
                .last_typing_sent
                .is_some_and(|at| now.at.duration_since(at) < TYPING_EVERY)
        {
            return None;
        }
        room.last_typing_sent = Some(now.at);
        Some(Effect::Node(Command::Typing {
            room: room.name.clone(),
        }))
    }
}
