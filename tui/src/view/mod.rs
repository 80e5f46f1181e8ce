//! Drawing: turns an [`App`] into a frame. Nothing here changes state. Where each part goes
//! and how tall an entry is come from [`crate::layout`], which the reducer shares.

mod messages;
mod overlays;
mod panels;
mod status;

use std::time::Instant;

use ratatui::Frame;

use crate::app::App;
use crate::layout;

pub fn draw(frame: &mut Frame, app: &App, now: Instant) {
    let areas = layout::areas(frame.area());
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
