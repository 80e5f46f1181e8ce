//! One timeline entry as screen lines of a given width: `09:14 alice#3f9a  text`, wrapped at
//! words with continuation lines indented under the text, and a day line above the first
//! entry of each local day. Scrolling counts these lines, so this is the one place that
//! decides how tall an entry is.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::style::{author_colour, display_name, sanitize, LocalTime};
use crate::timeline::{Entry, EntryBody, MessageKind, NoticeLevel};

/// The screen lines of `entry` at `width` columns; `previous` decides the day line.
pub fn entry_lines(
    entry: &Entry,
    previous: Option<&Entry>,
    width: usize,
    clock: &LocalTime,
) -> Vec<Line<'static>> {
    let width = width.max(8);
    let mut lines = Vec::new();
    let new_day = previous.is_none_or(|p| clock.day(p.key.ts) != clock.day(entry.key.ts));
    if new_day {
        let label = format!(" {} ", clock.day_label(entry.key.ts));
        let side = width.saturating_sub(label.width()) / 2;
        lines.push(Line::styled(
            format!(
                "{}{label}{}",
                "─".repeat(side.min(3)),
                "─".repeat(side.min(3))
            ),
            Style::new().fg(Color::DarkGray),
        ));
    }
    let time = Span::styled(
        format!("{} ", clock.clock(entry.key.ts)),
        Style::new().fg(Color::DarkGray),
    );
    // Who holds a message of ours (`·`, `✓`, `✓✓ N/M`, `✓✓`), after its text.
    let delivery = match &entry.body {
        EntryBody::Message(message) => message.delivery.map(|d| {
            let mark = d.mark();
            let colour = if d.all_hold() {
                Color::Green
            } else {
                Color::DarkGray
            };
            Span::styled(format!(" {mark}"), Style::new().fg(colour))
        }),
        EntryBody::Notice { .. } => None,
    };
    let (prefix, text, text_style) = match &entry.body {
        EntryBody::Message(message) => {
            // ✓ verified, ⚠ a name another key uses too (crate::identities).
            let who = format!(
                "{}{}",
                display_name(&sanitize(&message.name), &message.from),
                message.mark.suffix()
            );
            let colour = author_colour(&message.from);
            let mut name_style = Style::new().fg(colour).add_modifier(Modifier::BOLD);
            if message.mention {
                name_style = name_style.add_modifier(Modifier::REVERSED);
            }
            let mut text_style = if message.mention {
                Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            };
            let prefix = match message.kind {
                MessageKind::Text => vec![time, Span::styled(format!("{who} "), name_style)],
                MessageKind::Me => {
                    text_style = text_style.add_modifier(Modifier::ITALIC);
                    vec![
                        time,
                        Span::styled("* ", Style::new().fg(colour)),
                        Span::styled(format!("{who} "), name_style),
                    ]
                }
                MessageKind::Alert => {
                    text_style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
                    vec![
                        time,
                        Span::styled(
                            "ALERT",
                            Style::new()
                                .fg(Color::White)
                                .bg(Color::Red)
                                .add_modifier(Modifier::BOLD),
                        ),
                        Span::raw(" "),
                        Span::styled(format!("{who} "), name_style),
                    ]
                }
            };
            (prefix, sanitize(&message.text), text_style)
        }
        EntryBody::Notice { text, level } => {
            let style = match level {
                NoticeLevel::Info => Style::new().fg(Color::Gray),
                NoticeLevel::Error => Style::new().fg(Color::Red),
            };
            (
                vec![time, Span::styled("-- ", style)],
                sanitize(text),
                style,
            )
        }
    };
    let prefix_width: usize = prefix.iter().map(Span::width).sum();
    // Continuation lines hang under the text, unless the prefix is most of the line.
    let indent = if prefix_width <= width / 2 {
        prefix_width
    } else {
        6
    };
    let chunks = wrap(
        &text,
        width.saturating_sub(prefix_width).max(1),
        width - indent,
    );
    let mut chunks = chunks.into_iter();
    let mut first = prefix;
    first.push(Span::styled(chunks.next().unwrap_or_default(), text_style));
    lines.push(Line::from(first));
    for chunk in chunks {
        lines.push(Line::from(vec![
            Span::raw(" ".repeat(indent)),
            Span::styled(chunk, text_style),
        ]));
    }
    if let Some(mark) = delivery {
        // On the last line when it fits, else on a line of its own under the text.
        let last = lines.len() - 1;
        if lines[last].width() + mark.width() <= width {
            lines[last].push_span(mark);
        } else {
            lines.push(Line::from(vec![Span::raw(" ".repeat(indent)), mark]));
        }
    }
    lines
}

/// Word-wrap `text` (which may hold `\n`) into lines: the first `first` columns wide, the
/// rest `rest` wide. Words longer than a line are broken.
pub fn wrap(text: &str, first: usize, rest: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut used = 0;
    let mut room = first.max(1);
    let rest = rest.max(1);
    for (n, paragraph) in text.split('\n').enumerate() {
        if n > 0 {
            lines.push(std::mem::take(&mut line));
            used = 0;
            room = rest;
        }
        for token in tokens(paragraph) {
            let token_width = token.width();
            let is_space = token.starts_with(' ');
            if used + token_width <= room {
                line.push_str(token);
                used += token_width;
                continue;
            }
            if is_space {
                // A break at a space eats the space.
                lines.push(std::mem::take(&mut line));
                used = 0;
                room = rest;
                continue;
            }
            if token_width <= rest && used > 0 {
                lines.push(std::mem::take(&mut line).trim_end().to_owned());
                used = 0;
                room = rest;
                line.push_str(token);
                used += token_width;
                continue;
            }
            for c in token.chars() {
                let w = c.width().unwrap_or(0);
                if used + w > room && used > 0 {
                    lines.push(std::mem::take(&mut line));
                    used = 0;
                    room = rest;
                }
                line.push(c);
                used += w;
            }
        }
    }
    lines.push(line);
    lines
}

/// Words and runs of spaces, in order.
fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_space = None;
    for (i, c) in text.char_indices() {
        let space = c == ' ';
        if in_space.is_some_and(|s| s != space) {
            out.push(&text[start..i]);
            start = i;
        }
        in_space = Some(space);
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_words_and_breaks_long_ones() {
        assert_eq!(
            wrap("pump four is hot", 10, 10),
            vec!["pump four", "is hot"]
        );
        assert_eq!(wrap("abcdefghijkl", 5, 5), vec!["abcde", "fghij", "kl"]);
        assert_eq!(wrap("a\nb", 5, 5), vec!["a", "b"]);
        assert_eq!(wrap("", 5, 5), vec![""]);
    }
}
