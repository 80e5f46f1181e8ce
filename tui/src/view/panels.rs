//! The rooms sidebar, the people list and the input line.

use std::time::Instant;

use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use crate::app::App;
use crate::identities::IdMark;
use crate::style::{author_colour, display_name, sanitize};

pub fn sidebar(frame: &mut Frame, area: Rect, app: &App) {
    let block = Block::bordered().title(" Rooms ");
    let width = block.inner(area).width as usize;
    let lines: Vec<Line> = app
        .rooms
        .iter()
        .enumerate()
        .map(|(i, room)| {
            let number = if i < 9 {
                format!("{} ", i + 1)
            } else {
                "  ".to_owned()
            };
            let counts = match (room.mentions, room.unread) {
                (0, 0) => String::new(),
                (0, unread) => format!(" ({unread})"),
                (mentions, _) => format!(" @{mentions}"),
            };
            let name_room = width.saturating_sub(number.width() + counts.width());
            let name = truncate(&app.room_label(room), name_room);
            let pad = width.saturating_sub(number.width() + name.width() + counts.width());
            let text = format!("{number}{name}{}{counts}", " ".repeat(pad));
            let style = if i == app.current {
                Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
            } else if room.mentions > 0 {
                Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
            } else if room.unread > 0 {
                Style::new().add_modifier(Modifier::BOLD)
            } else {
                Style::new().fg(Color::Gray)
            };
            Line::styled(text, style)
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

pub fn people(frame: &mut Frame, area: Rect, app: &App, now: Instant) {
    let block = Block::bordered().title(" People ");
    let width = block.inner(area).width as usize;
    let mut lines = Vec::new();
    if let Some(me) = &app.me {
        let talking = app.ptt.talking.is_some();
        let marker = if talking { "◉ " } else { "● " };
        let suffix = if talking { " ▮" } else { "" };
        let name = truncate(
            &display_name(&me.name, &me.peer_id),
            width.saturating_sub(2 + suffix.width()),
        );
        lines.push(Line::from(vec![
            Span::styled(marker, Style::new().fg(Color::Green)),
            Span::styled(
                name,
                Style::new()
                    .fg(author_colour(&me.peer_id))
                    .add_modifier(Modifier::BOLD),
            ),
            Span::styled(suffix, Style::new().fg(Color::Green)),
        ]));
    }
    if let Some(room) = app.current_room() {
        let my_id = app.me.as_ref().map(|m| m.peer_id.as_str());
        for person in room.people.sorted(&|p| app.is_present(p, now)) {
            if Some(person.peer_id.as_str()) == my_id {
                continue;
            }
            let online = app.is_present(&person.peer_id, now);
            let (marker, marker_style) = match (online, person.talking) {
                (_, true) => ("◉ ", Style::new().fg(Color::Green)),
                (true, false) => ("● ", Style::new().fg(Color::Green)),
                (false, false) => ("○ ", Style::new().fg(Color::DarkGray)),
            };
            let suffix = if person.talking {
                " ▮"
            } else if person.is_typing(now) {
                " ✎"
            } else {
                ""
            };
            // ✓ verified (green), ⚠ a name another key uses too (yellow on red: look twice).
            let mark = app.mark(&person.peer_id, &person.name);
            let mark_style = match mark {
                IdMark::Verified => Style::new().fg(Color::Green).add_modifier(Modifier::BOLD),
                _ => Style::new()
                    .fg(Color::Yellow)
                    .bg(Color::Red)
                    .add_modifier(Modifier::BOLD),
            };
            let name = truncate(
                &display_name(&sanitize(&person.name), &person.peer_id),
                width.saturating_sub(
                    2 + suffix.width()
                        + mark.suffix().width()
                        + room.people.role(&person.peer_id).map_or(0, |_| 1),
                ),
            );
            let name_style = if online {
                Style::new().fg(author_colour(&person.peer_id))
            } else {
                Style::new().fg(Color::DarkGray)
            };
            // ★ the private room's owner, + an admin.
            let role = room.people.role(&person.peer_id).map_or("", |r| r.mark());
            lines.push(Line::from(vec![
                Span::styled(marker, marker_style),
                Span::styled(role, Style::new().fg(Color::Yellow)),
                Span::styled(name, name_style),
                Span::styled(mark.suffix(), mark_style),
                Span::styled(suffix, Style::new().fg(Color::Yellow)),
            ]));
        }
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

pub fn input(frame: &mut Frame, area: Rect, app: &App) {
    let title = match &app.hint {
        Some(hint) => Line::styled(
            format!(" {} ", hint.text),
            if hint.error {
                Style::new().fg(Color::Black).bg(Color::Yellow)
            } else {
                Style::new().fg(Color::Cyan)
            },
        ),
        None => Line::styled(
            match app.current_room() {
                Some(room) if room.name.starts_with('@') => {
                    format!(" to {} ", app.room_label(room))
                }
                Some(room) => format!(" to #{} ", room.name),
                None => " no room ".to_owned(),
            },
            Style::new().fg(Color::DarkGray),
        ),
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let prompt = "> ";
    let width = (inner.width as usize).saturating_sub(prompt.len());
    let (shown, cursor) = app.input.visible(width);
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(prompt, Style::new().fg(Color::DarkGray)),
            Span::raw(shown),
        ])),
        inner,
    );
    if inner.width > 0 && inner.height > 0 && app.overlay.is_none() {
        frame.set_cursor_position(Position::new(
            inner.x + (prompt.len() + cursor).min(inner.width as usize - 1) as u16,
            inner.y,
        ));
    }
}

/// `text` cut to `width` columns, with `…` when cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    if width > 0 {
        out.push('…');
    }
    out
}
