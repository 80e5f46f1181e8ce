//! The message pane: the current room's timeline from the scroll position up, who is typing,
//! and how much arrived below the view while scrolled up.

use std::time::Instant;

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use crate::app::{App, Room};
use crate::layout::lines::entry_lines;
use crate::style::LocalTime;

pub fn pane(frame: &mut Frame, area: Rect, app: &App, now: Instant) {
    let Some(room) = app.current_room() else {
        let block = Block::bordered().title(" no room ");
        let text =
            Paragraph::new("You are in no room. /join lobby, or /join NAME|INVITE.").block(block);
        frame.render_widget(text, area);
        return;
    };
    let mut block = Block::bordered()
        .title(Line::from(title(app, room)).style(Style::new().add_modifier(Modifier::BOLD)));
    if !room.timeline.is_following() {
        let below = room.timeline.below_view();
        let label = if below > 0 {
            format!(" ↓ {below} newer · End ")
        } else {
            " ↑ scrolled · End ".to_owned()
        };
        block = block.title_bottom(
            Line::from(label)
                .style(Style::new().fg(Color::Black).bg(Color::Yellow))
                .right_aligned(),
        );
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let typing = room.people.typing_names(now);
    let mut height = inner.height as usize;
    if !typing.is_empty() && height > 1 {
        height -= 1;
        let text = match typing.as_slice() {
            [one] => format!("{one} is typing…"),
            [one, two] => format!("{one} and {two} are typing…"),
            many => format!("{} people are typing…", many.len()),
        };
        let row = Rect::new(inner.x, inner.y + height as u16, inner.width, 1);
        frame.render_widget(
            Paragraph::new(text).style(
                Style::new()
                    .fg(Color::DarkGray)
                    .add_modifier(Modifier::ITALIC),
            ),
            row,
        );
    }
    let lines = visible_lines(room, inner.width as usize, height, &app.clock);
    let area = Rect::new(inner.x, inner.y, inner.width, height as u16);
    frame.render_widget(Paragraph::new(lines), area);
}

fn title(app: &App, room: &Room) -> String {
    let online = room
        .people
        .sorted(&|p| app.is_online(p))
        .iter()
        .filter(|p| app.connected.contains(&p.peer_id))
        .count();
    let direct = room.name.starts_with('@');
    let kind = match room.private {
        _ if direct => " · direct",
        Some(true) => " · private",
        Some(false) => " · public",
        None => "",
    };
    let peers = if online == 1 { "peer" } else { "peers" };
    let label = if direct {
        app.room_label(room)
    } else {
        format!("#{}", room.name)
    };
    format!(" {label} · {online} {peers}{kind} ")
}

/// The lines that fill `height` rows ending at the scroll position (top-aligned when there
/// are fewer).
pub fn visible_lines(
    room: &Room,
    width: usize,
    height: usize,
    clock: &LocalTime,
) -> Vec<Line<'static>> {
    let entries = room.timeline.entries();
    if entries.is_empty() || height == 0 {
        return Vec::new();
    }
    let (index, below) = room.timeline.position().unwrap_or((entries.len() - 1, 0));
    let previous = |i: usize| i.checked_sub(1).map(|p| &entries[p]);
    let mut bottom = entry_lines(&entries[index], previous(index), width, clock);
    let keep = bottom.len().saturating_sub(below).max(1);
    bottom.truncate(keep);
    let mut chunks = vec![bottom];
    let mut count = chunks[0].len();
    let mut i = index;
    while count < height && i > 0 {
        i -= 1;
        let lines = entry_lines(&entries[i], previous(i), width, clock);
        count += lines.len();
        chunks.push(lines);
    }
    let mut lines: Vec<Line<'static>> = chunks.into_iter().rev().flatten().collect();
    if lines.len() > height {
        lines.drain(..lines.len() - height);
    }
    lines
}
