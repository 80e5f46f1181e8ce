//! The status bar: who we are, peers, network key, mic, sync; `F1 help` on the right.
//! Segments that do not fit are dropped from the right, least important first.

use std::time::Instant;

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use crate::app::App;
use crate::style::display_name;

pub fn bar(frame: &mut Frame, area: Rect, app: &App, now: Instant) {
    let base = Style::new().fg(Color::White).bg(Color::DarkGray);
    let me = match &app.me {
        Some(me) => display_name(&me.name, &me.peer_id),
        None => "starting…".to_owned(),
    };
    let peers = match app.connected.len() {
        1 => "1 peer".to_owned(),
        n => format!("{n} peers"),
    };
    let key = if app.network_key {
        "network key ✓"
    } else {
        "network key ✗"
    };
    let sync = if app.syncing(now) {
        "syncing…"
    } else if app.synced_once {
        "history synced"
    } else {
        ""
    };
    let mic_style = if app.ptt.talking.is_some() {
        Style::new()
            .fg(Color::White)
            .bg(Color::Red)
            .add_modifier(Modifier::BOLD)
    } else {
        base
    };
    // In order of importance; the last ones go first when space is short.
    let segments: Vec<(String, Style)> = [
        (me, base.add_modifier(Modifier::BOLD)),
        (peers, base),
        (app.ptt.label(), mic_style),
        (key.to_owned(), base),
        (sync.to_owned(), base),
    ]
    .into_iter()
    .filter(|(text, _)| !text.is_empty())
    .collect();
    let right = "F1 help ";
    let width = area.width as usize;
    let mut spans = vec![Span::styled(" ", base)];
    let mut used = 1;
    for (i, (text, style)) in segments.into_iter().enumerate() {
        let sep = if i == 0 { "" } else { " · " };
        let need = sep.width() + text.width();
        if used + need + right.width() + 1 > width {
            break;
        }
        spans.push(Span::styled(sep, base));
        spans.push(Span::styled(text, style));
        used += need;
    }
    if used + right.width() <= width {
        spans.push(Span::styled(" ".repeat(width - used - right.width()), base));
        spans.push(Span::styled(right, base.add_modifier(Modifier::BOLD)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).style(base), area);
}
