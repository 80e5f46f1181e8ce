//! Drawing: turns an [`App`] into a frame. Nothing here changes state.
//!
//! ```text
//! ┌ Rooms ─┐┌ #ops · 3 peers · private ─┐┌ People ─┐
//! │ sidebar ││ messages                  ││ people  │
//! └─────────┘└───────────────────────────┘└─────────┘
//! ┌ hint or room ─────────────────────────────────────┐
//! │ > input                                           │
//! └───────────────────────────────────────────────────┘
//!  status bar                                  F1 help
//! ```
//! Narrow terminals lose the people list first (below 70 columns), then the sidebar (below
//! 50).

pub mod lines;
mod messages;
mod overlays;
mod panels;
mod status;

use std::time::Instant;

use ratatui::layout::{Constraint, Layout, Margin, Rect};
use ratatui::Frame;

use crate::app::App;

/// Where each part of the screen goes.
#[derive(Clone, Copy, Debug)]
pub struct Areas {
    pub sidebar: Option<Rect>,
    pub messages: Rect,
    pub people: Option<Rect>,
    pub input: Rect,
    pub status: Rect,
}

pub fn areas(area: Rect) -> Areas {
    let [main, input, status] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(area);
    let (sidebar_width, people_width) = match area.width {
        w if w >= 110 => (20, 26),
        w if w >= 70 => (14, 18),
        w if w >= 50 => (14, 0),
        _ => (0, 0),
    };
    let [sidebar, messages, people] = Layout::horizontal([
        Constraint::Length(sidebar_width),
        Constraint::Min(10),
        Constraint::Length(people_width),
    ])
    .areas(main);
    Areas {
        sidebar: (sidebar_width > 0).then_some(sidebar),
        messages,
        people: (people_width > 0).then_some(people),
        input,
        status,
    }
}

/// A bordered block's inside.
pub fn inner(area: Rect) -> Rect {
    area.inner(Margin {
        horizontal: 1,
        vertical: 1,
    })
}

pub fn draw(frame: &mut Frame, app: &App, now: Instant) {
    let areas = areas(frame.area());
    if let Some(sidebar) = areas.sidebar {
        panels::sidebar(frame, sidebar, app);
    }
    messages::pane(frame, areas.messages, app, now);
    if let Some(people) = areas.people {
        panels::people(frame, people, app, now);
    }
    panels::input(frame, areas.input, app);
    status::bar(frame, areas.status, app, now);
    if let Some(alert) = &app.alert {
        overlays::alert(frame, areas.messages, alert, now);
    }
    if let Some(overlay) = &app.overlay {
        overlays::overlay(frame, frame.area(), areas.messages, overlay, app);
    }
}
