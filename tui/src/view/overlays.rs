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
        Overlay::Safety {
            peer,
            name,
            number,
            verified,
            same_name,
        } => safety_box(frame, screen, peer, name, number, *verified, same_name),
        Overlay::WebInvite { url, name } => web_invite_box(frame, screen, url, name.as_deref()),
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

/// `/verify`: the safety number to read out, its QR code, and what to do next.
fn safety_box(
    frame: &mut Frame,
    screen: Rect,
    peer: &str,
    name: &str,
    number: &str,
    verified: bool,
    same_name: &[String],
) {
    use hark_node::control::safety::{digits, qr_lines};
    let name = if name.is_empty() { "?" } else { name };
    let who = crate::style::display_name(&sanitize(name), peer);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let groups: Vec<&str> = number.split_whitespace().collect();
    let half = groups.len().div_ceil(2).max(1);
    let mut lines: Vec<Line> = vec![Line::raw(format!("with {who}")), Line::raw("")];
    for chunk in groups.chunks(half) {
        lines.push(Line::styled(format!("  {}", chunk.join(" ")), bold));
    }
    lines.push(Line::raw(""));
    // The code only where it fits whole: a cut one scans as nothing.
    let qr = qr_lines(&digits(number));
    let fixed = lines.len() + 5 + usize::from(!same_name.is_empty()) * 2;
    if qr.len() + fixed <= screen.height.saturating_sub(2) as usize {
        lines.extend(qr.into_iter().map(|l| Line::raw(format!("  {l}"))));
        lines.push(Line::raw(""));
    }
    if !same_name.is_empty() {
        let others: Vec<String> = same_name
            .iter()
            .map(|p| crate::style::display_name(&sanitize(name), p))
            .collect();
        lines.push(Line::styled(
            format!(
                "⚠ the name {} is also used by {}",
                sanitize(name),
                others.join(", ")
            ),
            Style::new()
                .fg(Color::Yellow)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
        ));
        lines.push(Line::raw(""));
    }
    let short = crate::style::display_name(&sanitize(name), peer);
    if verified {
        lines.push(Line::styled(
            format!("{short} is marked verified ✓ · /unverify {short} takes it back"),
            Style::new().fg(Color::Green),
        ));
    } else {
        lines.push(Line::raw(format!(
            "Compare with {short}'s screen, or read it out. If every digit matches:"
        )));
        lines.push(Line::styled(
            format!("  /verify {short} ok"),
            Style::new().fg(Color::Cyan),
        ));
    }
    lines.push(Line::styled("Esc closes", Style::new().fg(Color::DarkGray)));
    let width = lines
        .iter()
        .map(Line::width)
        .max()
        .unwrap_or(40)
        .saturating_add(4) as u16;
    let area = centered(screen, width, lines.len() as u16 + 2);
    let block = Block::bordered()
        .title(" safety number ")
        .border_style(Style::new().fg(Color::Cyan));
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// `/web-invite`: the join link on a line of its own (no side border, so selecting it copies
/// exactly the link) and its QR code for a phone's camera, drawn like `/verify`'s.
fn web_invite_box(frame: &mut Frame, screen: Rect, url: &str, name: Option<&str>) {
    use hark_node::control::safety::qr_lines;
    let whom = match name {
        Some(name) => format!("A join link for {} to the browser client:", sanitize(name)),
        None => "A join link to the browser client:".to_owned(),
    };
    let mut lines: Vec<Line> = vec![
        Line::raw(whom),
        Line::raw(""),
        Line::styled(url.to_owned(), Style::new().add_modifier(Modifier::BOLD)),
        Line::raw(""),
    ];
    let tail = [
        "One person, once, within 24 h · on the clipboard where the terminal allows",
        "The browser warns about the node's own certificate: compare its SHA-256",
        "fingerprint with the one in hark.log before accepting it.",
    ];
    // The code only where it fits whole: a cut one scans as nothing.
    let qr = qr_lines(url);
    let fixed = lines.len() + tail.len() + 2;
    if qr.len() + 1 + fixed <= usize::from(screen.height) {
        lines.extend(qr.into_iter().map(|l| Line::raw(format!("  {l}"))));
        lines.push(Line::raw(""));
    } else {
        lines.push(Line::styled(
            "(a taller terminal shows it as a QR code)",
            Style::new().fg(Color::DarkGray),
        ));
    }
    lines.extend(
        tail.iter()
            .map(|l| Line::styled(*l, Style::new().fg(Color::DarkGray))),
    );
    // The whole width, as for a room's invite: nothing of the screen beside the link's line.
    // Tall enough for every line as wrapped at this width (a long link), borders included.
    let width = usize::from(screen.width.max(1));
    let rows: usize = lines.iter().map(|l| l.width().div_ceil(width).max(1)).sum();
    let area = centered(
        screen,
        screen.width,
        (rows + 2).min(usize::from(screen.height)) as u16,
    );
    let block = Block::new()
        .borders(Borders::TOP | Borders::BOTTOM)
        .title(" browser join link · Esc closes ")
        .border_style(Style::new().fg(Color::Cyan));
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
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
    let keys: [(&str, &str); 8] = [
        ("Enter", "send · Tab complete a name or /command"),
        ("PgUp PgDn", "scroll · Home oldest · End newest"),
        ("Alt+1..9", "room by number · Ctrl+N/Ctrl+P next/prev"),
        ("Up Down", "lines you sent before"),
        ("Ctrl+←/→", "word left/right (Alt+B/F) · Ctrl+A/E start/end"),
        ("Ctrl+W", "delete word · Ctrl+U/K to start/end of line"),
        ("F2", "push-to-talk (or Ctrl+Space)"),
        ("Esc", "close this · dismiss an alert · Ctrl+C quits"),
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
    // This overlay is /help itself; the rest must fit 80×24 (a blank line between only if
    // there is room for it).
    let commands: Vec<_> = COMMANDS
        .iter()
        .filter(|(name, _, _)| *name != "help")
        .collect();
    if lines.len() + commands.len() + 3 <= usize::from(screen.height) {
        lines.push(Line::raw(""));
    }
    for (name, args, what) in commands {
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
