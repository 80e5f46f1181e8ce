//! Push-to-talk: the key's state machine (hold where the terminal reports key releases,
//! toggle elsewhere) and the [`Voice`] seam the UI talks through.
//!
//! The node has no voice API yet. [`NoVoice`] says so; wiring real voice is an implementation
//! of [`Voice`] (start/stop a talk-spurt in a room) handed to [`crate::run`], and voice events
//! marking people as talking ([`crate::people::People::set_talking`]).

/// How the PTT key works on this terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PttMode {
    /// The terminal reports key releases (kitty keyboard protocol): talk while held.
    Hold,
    /// Press to start, press again to stop.
    Toggle,
}

/// What the UI can do with voice.
pub trait Voice {
    /// `Err(reason)` when there is no voice (no audio device, or no voice support), shown
    /// once to the user; text chat goes on.
    fn available(&self) -> Result<(), String>;
    fn start_talking(&mut self, room: &str) -> Result<(), String>;
    fn stop_talking(&mut self);
}

/// Voice is not built yet: every attempt says so.
pub struct NoVoice;

pub const NO_VOICE: &str = "voice not available: this version of hark has no voice yet";

impl Voice for NoVoice {
    fn available(&self) -> Result<(), String> {
        Err(NO_VOICE.to_owned())
    }
    fn start_talking(&mut self, _room: &str) -> Result<(), String> {
        Err(NO_VOICE.to_owned())
    }
    fn stop_talking(&mut self) {}
}

/// The PTT key's state.
#[derive(Clone, Debug)]
pub struct Ptt {
    pub mode: PttMode,
    /// `Err(reason)` when voice cannot work here.
    pub available: Result<(), String>,
    /// The room we are talking in.
    pub talking: Option<String>,
}

/// What a PTT key event asks of the voice side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PttAction {
    Start {
        room: String,
    },
    Stop,
    /// Nothing to do but tell the user why.
    Unavailable(String),
    None,
}

impl Ptt {
    pub fn new(mode: PttMode, available: Result<(), String>) -> Self {
        Self {
            mode,
            available,
            talking: None,
        }
    }

    /// The PTT key went down (auto-repeats are not presses).
    pub fn pressed(&mut self, room: &str) -> PttAction {
        if let Err(reason) = &self.available {
            return PttAction::Unavailable(reason.clone());
        }
        match (&self.talking, self.mode) {
            (Some(_), PttMode::Toggle) => {
                self.talking = None;
                PttAction::Stop
            }
            (Some(_), PttMode::Hold) => PttAction::None,
            (None, _) => {
                self.talking = Some(room.to_owned());
                PttAction::Start {
                    room: room.to_owned(),
                }
            }
        }
    }

    /// The PTT key came up (only reported in hold mode).
    pub fn released(&mut self) -> PttAction {
        if self.mode == PttMode::Hold && self.talking.take().is_some() {
            PttAction::Stop
        } else {
            PttAction::None
        }
    }

    /// Starting failed after all (the device went away): back to idle.
    pub fn failed(&mut self) {
        self.talking = None;
    }

    /// The mic state for the status bar.
    pub fn label(&self) -> String {
        match (&self.available, &self.talking, self.mode) {
            (Err(_), _, _) => "voice n/a".to_owned(),
            (Ok(()), Some(room), _) => format!("● TALKING in #{room}"),
            (Ok(()), None, PttMode::Hold) => "hold F2 to talk".to_owned(),
            (Ok(()), None, PttMode::Toggle) => "F2 talk".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_talks_while_held_and_toggle_flips() {
        let mut hold = Ptt::new(PttMode::Hold, Ok(()));
        assert_eq!(hold.pressed("ops"), PttAction::Start { room: "ops".into() });
        assert_eq!(hold.pressed("ops"), PttAction::None);
        assert_eq!(hold.released(), PttAction::Stop);
        let mut toggle = Ptt::new(PttMode::Toggle, Ok(()));
        assert!(matches!(toggle.pressed("ops"), PttAction::Start { .. }));
        assert_eq!(toggle.released(), PttAction::None);
        assert_eq!(toggle.pressed("ops"), PttAction::Stop);
    }

    #[test]
    fn without_voice_the_key_says_so() {
        let mut ptt = Ptt::new(PttMode::Toggle, NoVoice.available());
        assert_eq!(ptt.pressed("ops"), PttAction::Unavailable(NO_VOICE.into()));
        assert_eq!(ptt.label(), "voice n/a");
    }
}
