//! Colours, names and times as the screen shows them.

use hark_node::api::{short_id, show_invisible};
use ratatui::style::Color;

/// Author colours: distinct on both dark and light backgrounds; red is kept for alerts.
const AUTHOR_COLOURS: [Color; 10] = [
    Color::Cyan,
    Color::Green,
    Color::Yellow,
    Color::Blue,
    Color::Magenta,
    Color::LightCyan,
    Color::LightGreen,
    Color::LightBlue,
    Color::LightMagenta,
    Color::Indexed(208),
];

/// The same author always gets the same colour, on every machine and run (FNV-1a of the
/// peer id, not Rust's randomly seeded hasher).
pub fn author_colour(peer_id: &str) -> Color {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in peer_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    AUTHOR_COLOURS[(hash % AUTHOR_COLOURS.len() as u32) as usize]
}

/// `alice#3f9a`: the name with the last four characters of the peer id.
pub fn display_name(name: &str, peer_id: &str) -> String {
    // A name's invisible characters are shown: `carol` and `carol` with a zero-width space
    // after it are two people, and must look it.
    format!("{}#{}", show_invisible(name), short_id(peer_id))
}

/// Text from the network as the screen may show it: control characters (escape sequences
/// could re-program the terminal) become `�`, tabs become spaces. Newlines are kept; the
/// caller splits lines.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => '\n',
            '\t' => ' ',
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect()
}

pub use hark_node::mentions;

/// The local time zone's offset, read once at start (see [`LocalTime::detect`]).
#[derive(Clone, Copy, Debug)]
pub struct LocalTime {
    offset: time::UtcOffset,
}

impl LocalTime {
    pub const UTC: LocalTime = LocalTime {
        offset: time::UtcOffset::UTC,
    };

    /// The local offset now. Must run while the process has one thread (before the async
    /// runtime starts): `time` refuses otherwise on Unix, and UTC is used then.
    pub fn detect() -> Self {
        Self {
            offset: time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC),
        }
    }

    fn at(&self, ts_ms: u64) -> time::OffsetDateTime {
        let secs = i64::try_from(ts_ms / 1000).unwrap_or(0);
        time::OffsetDateTime::from_unix_timestamp(secs)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
            .to_offset(self.offset)
    }

    /// `09:14`
    pub fn clock(&self, ts_ms: u64) -> String {
        let at = self.at(ts_ms);
        format!("{:02}:{:02}", at.hour(), at.minute())
    }

    /// The local calendar day, to draw a line where the day changes.
    pub fn day(&self, ts_ms: u64) -> time::Date {
        self.at(ts_ms).date()
    }

    /// `Tue 12 May 2026`
    pub fn day_label(&self, ts_ms: u64) -> String {
        let date = self.day(ts_ms);
        let weekday = match date.weekday() {
            time::Weekday::Monday => "Mon",
            time::Weekday::Tuesday => "Tue",
            time::Weekday::Wednesday => "Wed",
            time::Weekday::Thursday => "Thu",
            time::Weekday::Friday => "Fri",
            time::Weekday::Saturday => "Sat",
            time::Weekday::Sunday => "Sun",
        };
        let month = format!("{:?}", date.month());
        format!(
            "{weekday} {} {} {}",
            date.day(),
            &month[..3.min(month.len())],
            date.year()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_with_an_invisible_character_does_not_look_like_the_plain_one() {
        let id = "12D3KooWLgcRwMJLyu2YjWkBXbBbbDUV3KP5cqbYfhGzUNBZ3oJw";
        let plain = display_name("carol", id);
        let sneaky = display_name("carol\u{200b}", id);
        assert_ne!(plain, sneaky);
        assert!(sneaky.contains('\u{fffd}'), "{sneaky:?}");
        // An emoji's own variation selector is part of it, not hidden.
        assert_eq!(display_name("bob❤\u{fe0f}", id), "bob❤\u{fe0f}#3oJw");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(sanitize("a\x1b[2Jb\tc\nd"), "a\u{fffd}[2Jb c\nd");
    }

    #[test]
    fn colours_are_stable() {
        assert_eq!(author_colour("12D3KooWabc"), author_colour("12D3KooWabc"));
        assert_eq!(display_name("alice", "12D3KooW3f9a"), "alice#3f9a");
    }

    #[test]
    fn times_in_utc() {
        // 2026-05-12 09:14:00 UTC
        let ts = 1_778_577_240_000;
        assert_eq!(LocalTime::UTC.clock(ts), "09:14");
        assert_eq!(LocalTime::UTC.day_label(ts), "Tue 12 May 2026");
    }
}
