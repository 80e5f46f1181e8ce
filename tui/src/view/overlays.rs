//! What is drawn over the screen: the help (F1), an invite to copy, search results, and the
//! alert banner.

use std::time::Instant;

use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use crate::app::{AlertBanner, App, Overlay, ALERT_FLASH_FOR};
use crate::commands::COMMANDS;
use crate::layout::lines::entry_lines;
use crate::style::sanitize;

pub fn overlay(frame: &mut Frame, screen: Rect, pane: Rect, overlay: &Overlay, app: &App) {
    match overlay {
        Overlay::Help => help(frame, screen),
        Overlay::Invite { room, invite } => invite_box(frame, screen, room, invite),
        Overlay::Search {
            room,
            text,
            results,
        } => {
            let block = Block::bordered()
                .title(format!(
                    " search {:?} in #{room}: {} found · Esc closes ",
                    sanitize(text),
                    results.len()
                ))
                .border_style(Style::new().fg(Color::Cyan));
            let inner = block.inner(pane);
            frame.render_widget(Clear, pane);
            frame.render_widget(block, pane);
            let width = inner.width as usize;
            let mut lines: Vec<Line> = Vec::new();
            for (i, entry) in results.iter().enumerate() {
                let previous = i.checked_sub(1).map(|p| &results[p]);
                lines.extend(entry_lines(entry, previous, width, &app.clock));
            }
            if results.is_empty() {
                lines.push(Line::raw("nothing stored here matches"));
            }
            // The newest matches, at the bottom, like the pane itself.
            let height = inner.height as usize;
            if lines.len() > height {
                lines.drain(..lines.len() - height);
            }
            frame.render_widget(Paragraph::new(lines), inner);
        }
    }
}

fn centered(screen: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(screen.width);
    let height = height.min(screen.height);
    Rect::new(
        screen.x + (screen.width - width) / 2,
        screen.y + (screen.height - height) / 2,
        width,
        height,
    )
}

fn help(frame: &mut Frame, screen: Rect) {
    let key = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let keys: [(&str, &str); 9] = [
        ("Enter", "send · Tab complete a name or /command"),
        ("PgUp PgDn", "scroll · Home oldest · End newest"),
        ("Alt+1..9", "room by number · Ctrl+N/Ctrl+P next/prev"),
        ("Up Down", "lines you sent before"),
        ("Ctrl+←/→", "word left/right (Alt+B/F) · Ctrl+A/E start/end"),
        ("Ctrl+W", "delete word · Ctrl+U/K to start/end of line"),
        ("F2", "push-to-talk (or Ctrl+Space)"),
        ("Esc", "close this · dismiss an alert"),
        ("Ctrl+C", "quit"),
    ];
    let mut lines: Vec<Line> = keys
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:<10}"), key),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    for (name, args, what) in COMMANDS {
        let usage = format!("/{name} {args}");
        lines.push(Line::from(vec![
            Span::styled(format!("{usage:<22}"), key),
            Span::raw(*what),
        ]));
    }
    let height = lines.len() as u16 + 2;
    let area = centered(screen, 76, height);
    let block = Block::bordered()
        .title(" hark · keys and commands · Esc closes ")
        .border_style(Style::new().fg(Color::Cyan));
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// The invite on a line of its own with no border beside it, so that selecting the line in
/// the terminal copies exactly the invite.
fn invite_box(frame: &mut Frame, screen: Rect, room: &str, invite: &str) {
    const INTRO: &str = "Give this to the people who may join (it is the room's key):";
    const HOW: &str =
        "Members type /join and the invite · copied to the clipboard where the terminal allows";
    // Tall enough for every line as wrapped at this width (a long room name makes a long
    // invite), borders included.
    let width = usize::from(screen.width.max(1));
    let rows = |text: &str| text.chars().count().div_ceil(width).max(1);
    let height = 4 + rows(INTRO) + rows(invite) + rows(HOW);
    let area = centered(
        screen,
        screen.width,
        height.min(usize::from(screen.height)) as u16,
    );
    let block = Block::new()
        .borders(Borders::TOP | Borders::BOTTOM)
        .title(format!(" invite to #{room} · Esc closes "))
        .border_style(Style::new().fg(Color::Cyan));
    let lines = vec![
        Line::raw(INTRO),
        Line::raw(""),
        Line::styled(invite.to_owned(), Style::new().add_modifier(Modifier::BOLD)),
        Line::raw(""),
        Line::styled(HOW, Style::new().fg(Color::DarkGray)),
    ];
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// The alert banner over the top of the message pane: it flashes at first, then stays
/// until Esc.
pub fn alert(frame: &mut Frame, pane: Rect, alert: &AlertBanner, now: Instant) {
    let age = now.duration_since(alert.since);
    let flash_on = age < ALERT_FLASH_FOR && (age.as_millis() / 500) % 2 == 1;
    let style = if flash_on {
        Style::new().fg(Color::Red).bg(Color::White)
    } else {
        Style::new().fg(Color::White).bg(Color::Red)
    }
    .add_modifier(Modifier::BOLD);
    let area = Rect::new(pane.x, pane.y, pane.width, 3.min(pane.height));
    let block = Block::bordered()
        .title(format!(" ALERT in #{} · Esc dismisses ", alert.room))
        .style(style);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(format!("{}: {}", alert.who, sanitize(&alert.text)))
            .block(block)
            .alignment(Alignment::Left),
        area,
    );
}
