//! Push-to-talk: the key's state machine (hold where the terminal reports key releases,
//! toggle elsewhere) and the [`Voice`] seam the UI talks through.
//!
//! [`crate::audio::DeviceVoice`] is the real implementation (the sound card through cpal);
//! [`NoVoice`] stands in when there is no audio device. The event loop ([`crate::run`]) hands
//! the source a talk-spurt reads from to the node, and the sink to play received voice.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use hark_node::voice::{AudioSink, AudioSource};

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
    /// Begin a talk-spurt: the source the node reads it from (until it returns `Last`,
    /// which it does after [`Voice::stop_talking`]).
    fn start_talking(&mut self, room: &str) -> Result<Box<dyn AudioSource>, String>;
    fn stop_talking(&mut self);
    /// Where received voice is played (taken once, at start), if anywhere.
    fn take_sink(&mut self) -> Option<Box<dyn AudioSink>> {
        None
    }
    /// The mic's peak level of the last captured frame (0..=32767), for the status bar.
    fn level(&self) -> Option<Arc<AtomicU16>> {
        None
    }
}

/// No audio device: every attempt says so.
pub struct NoVoice;

pub const NO_VOICE: &str = "voice not available: no audio device";

impl Voice for NoVoice {
    fn available(&self) -> Result<(), String> {
        Err(NO_VOICE.to_owned())
    }
    fn start_talking(&mut self, _room: &str) -> Result<Box<dyn AudioSource>, String> {
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
    /// The mic level while talking (see [`Voice::level`]).
    pub level: Option<Arc<AtomicU16>>,
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
            level: None,
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

    /// Another program asked through the control socket (`hark-node ctl ptt start|stop ROOM`,
    /// a foot pedal, a hotkey daemon): start talking in `room`, or stop, whatever the mode.
    pub fn remote(&mut self, room: &str, start: bool) -> PttAction {
        if !start {
            return match self.talking.take() {
                Some(_) => PttAction::Stop,
                None => PttAction::None,
            };
        }
        if let Err(reason) = &self.available {
            return PttAction::Unavailable(reason.clone());
        }
        if self.talking.is_some() {
            return PttAction::None;
        }
        self.talking = Some(room.to_owned());
        PttAction::Start {
            room: room.to_owned(),
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
            (Ok(()), Some(room), _) => match &self.level {
                Some(level) => format!(
                    "● TALKING in #{room} {}",
                    meter(level.load(Ordering::Relaxed))
                ),
                None => format!("● TALKING in #{room}"),
            },
            (Ok(()), None, PttMode::Hold) => "hold F2 to talk".to_owned(),
            (Ok(()), None, PttMode::Toggle) => "F2 talk".to_owned(),
        }
    }
}

/// A level meter, 8 cells on a log scale (each cell 6 dB, the top one full scale).
pub fn meter(peak: u16) -> String {
    const CELLS: usize = 8;
    let lit = if peak == 0 {
        0
    } else {
        let db = 20.0 * (f32::from(peak) / 32767.0).log10();
        ((db / 6.0 + CELLS as f32).ceil().max(0.0) as usize).min(CELLS)
    };
    format!("[{}{}]", "|".repeat(lit), " ".repeat(CELLS - lit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_ptt_starts_and_stops_in_either_mode() {
        for mode in [PttMode::Hold, PttMode::Toggle] {
            let mut ptt = Ptt::new(mode, Ok(()));
            assert_eq!(
                ptt.remote("ops", true),
                PttAction::Start { room: "ops".into() }
            );
            assert_eq!(ptt.remote("ops", true), PttAction::None, "already talking");
            assert_eq!(ptt.remote("ops", false), PttAction::Stop);
            assert_eq!(ptt.remote("ops", false), PttAction::None);
        }
        let mut none = Ptt::new(PttMode::Toggle, Err("no microphone".into()));
        assert_eq!(
            none.remote("ops", true),
            PttAction::Unavailable("no microphone".into())
        );
    }

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

    #[test]
    fn the_meter_shows_the_level_while_talking() {
        assert_eq!(meter(0), "[        ]");
        assert_eq!(meter(32767), "[||||||||]");
        assert_eq!(meter(16384), "[||||||| ]");
        assert_eq!(meter(1), "[        ]");
        let mut ptt = Ptt::new(PttMode::Toggle, Ok(()));
        ptt.level = Some(Arc::new(AtomicU16::new(32767)));
        ptt.pressed("ops");
        assert_eq!(ptt.label(), "● TALKING in #ops [||||||||]");
    }
}
