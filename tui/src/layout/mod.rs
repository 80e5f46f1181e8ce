//! The screen's geometry, which the reducer ([`crate::app`]: page sizes, scrolling, when to load
//! more history) and the view ([`crate::view`]: drawing) must agree on: where each part of the
//! screen goes, and how many lines an entry takes at a width. Knows nothing of the app's state.
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

use ratatui::layout::{Constraint, Layout, Margin, Rect};

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
