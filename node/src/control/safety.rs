//! A safety number as a terminal shows it (`hark-node verify`, and the TUI's `/verify`): the
//! digits in two lines to read out, and a QR code of them that a phone's camera can read.

use serde_json::Value;

use crate::api::short_id;

/// A QR code of `text` as lines of Unicode half blocks (two rows of modules per line).
///
/// Drawn for a dark terminal background, as `qrencode -t UTF8` does: the light modules (and
/// the quiet zone around the code) are the printed blocks, so a camera sees dark on light.
pub fn qr_lines(text: &str) -> Vec<String> {
    use qrcode::render::unicode::Dense1x2;
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else {
        return Vec::new();
    };
    code.render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The digits of a safety number (what its QR code carries: numeric mode, the densest).
pub fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// Text for a person to compare: who, the number in two lines, its QR code, a warning when
/// other keys use the same name, and what to do next. For a `safety_number` event as JSON;
/// any other event is printed as its JSON line.
pub fn safety_text(event: &Value) -> String {
    if event["event"] != "safety_number" {
        return format!("{event}\n");
    }
    let peer = event["peer"].as_str().unwrap_or_default();
    let name = event["name"].as_str().unwrap_or_default();
    let number = event["number"].as_str().unwrap_or_default();
    let verified = event["verified"].as_bool().unwrap_or(false);
    let who = if name.is_empty() {
        format!("#{}", short_id(peer))
    } else {
        format!("{name}#{}", short_id(peer))
    };
    let groups: Vec<&str> = number.split_whitespace().collect();
    let half = groups.len().div_ceil(2);
    let mut out = format!("Safety number with {who} ({peer}):\n\n");
    for line in groups.chunks(half.max(1)) {
        out.push_str(&format!("    {}\n", line.join(" ")));
    }
    out.push('\n');
    for line in qr_lines(&digits(number)) {
        out.push_str(&format!("    {line}\n"));
    }
    out.push('\n');
    let same_name: Vec<&str> = event["same_name"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !same_name.is_empty() && !name.is_empty() {
        let others: Vec<String> = same_name
            .iter()
            .map(|p| format!("{name}#{} ({p})", short_id(p)))
            .collect();
        out.push_str(&format!(
            "WARNING: the name {name} is also used by {}; make sure you compare with the right one.\n",
            others.join(", ")
        ));
    }
    if verified {
        out.push_str(&format!("{who} is marked verified.\n"));
    } else {
        out.push_str(&format!(
            "Compare it with {who}'s screen (read it out, or scan the code). If every digit matches:\n    hark-node verify --confirm {peer}\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_codes_are_square_blocks() {
        let lines = qr_lines("012345678901234567890123456789012345678901234567890123456789");
        assert!(lines.len() > 10);
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width));
        // Two module rows per line: about half as many lines as columns.
        assert!(lines.len() * 2 >= width && lines.len() * 2 <= width + 2);
    }

    #[test]
    fn the_text_warns_about_a_second_key_with_the_name() {
        let event = serde_json::json!({
            "event": "safety_number", "peer": "12D3KooWaaaa", "name": "bob",
            "number": "11111 22222 33333 44444", "verified": false,
            "same_name": ["12D3KooWbbbb"],
        });
        let text = safety_text(&event);
        assert!(text.contains("bob#aaaa"), "{text}");
        assert!(text.contains("11111 22222\n"), "{text}");
        assert!(
            text.contains("WARNING: the name bob is also used by bob#bbbb"),
            "{text}"
        );
        assert!(text.contains("--confirm 12D3KooWaaaa"), "{text}");
    }
}
