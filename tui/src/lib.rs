//! # hark-tui — the terminal client `hark`
//!
//! A full-screen ratatui client around an embedded [`hark_node::Node`]: it sends
//! [`hark_node::Command`]s and shows [`hark_node::Event`]s, and never reaches into the node.
//!
//! A map of the crate (state, drawing and IO apart, as gitui and iamb keep them):
//! - [`app`]: the whole UI state. Node events and key actions go in, [`app::Effect`]s come
//!   out (commands for the node, the bell, quitting). Pure: time is an argument.
//! - [`timeline`]: a room's messages in (timestamp, id) order and the scroll anchor that keeps
//!   the view still while messages arrive above or below it.
//! - [`people`]: who is in a room, typing marks that expire, talking marks;
//!   [`identities`]: verified peers and names used by more than one key.
//! - [`input`]: the input line (editing, word moves, history); [`commands`]: `/command`
//!   parsing with one-line hints; [`keys`]: which key does what.
//! - [`replies`]: which node answer (or error) belongs to which command.
//! - [`voice`]: the push-to-talk key's state machine and the [`voice::Voice`] seam.
//! - [`view`]: drawing the app into a frame (sidebar, messages, people, input, status bar,
//!   overlays); [`style`]: author colours, times, mention matching, text sanitising.
//! - [`layout`]: the geometry the app and the view share: where each part of the screen goes
//!   and how many lines an entry takes. The view reads the app; the app never reads the view.
//! - [`terminal`]: raw mode and the alternate screen, restored on every exit and on panic.
//! - [`run`]: the event loop joining node, terminal, timer and signals; [`saved_rooms`]: the
//!   sidebar's room list across restarts.

pub mod app;
pub mod audio;
pub mod commands;
pub mod identities;
pub mod input;
pub mod keys;
pub mod layout;
pub mod people;
pub mod replies;
pub mod run;
pub mod saved_rooms;
pub mod style;
pub mod terminal;
pub mod timeline;
pub mod view;
pub mod voice;
