//! Sending at a fixed rate, for the fan-out benchmarks (Hark's and ngircd's alike).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Calls `send(seq, unix_nanos)` for seq 0..`count`, the n-th at n × `interval` from now (a
/// late call does not move the later ones); stops at the first error.
pub fn at_rate<E>(
    count: usize,
    interval: Duration,
    mut send: impl FnMut(usize, u128) -> Result<(), E>,
) -> Result<(), E> {
    let begin = Instant::now();
    for seq in 0..count {
        let due = begin + interval * seq as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        send(seq, unix_nanos(SystemTime::now()))?;
    }
    Ok(())
}

/// The SEQ and UNIX_NANOS of a text "PREFIX SEQ UNIX_NANOS" that [`at_rate`]'s caller sent.
pub fn parse(text: &str, prefix: &str) -> Option<(usize, u128)> {
    let mut parts = text.split(' ');
    if parts.next() != Some(prefix) {
        return None;
    }
    let seq = parts.next()?.parse().ok()?;
    let sent = parts.next()?.parse().ok()?;
    Some((seq, sent))
}

/// Nanoseconds since the UNIX epoch (0 before it).
pub fn unix_nanos(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_text_parses_back_and_others_do_not() {
        assert_eq!(parse("bench 7 1234", "bench"), Some((7, 1234)));
        assert_eq!(parse("settle 7 1234", "bench"), None);
        assert_eq!(parse("bench x 1234", "bench"), None);
        assert_eq!(parse("bench 7", "bench"), None);
    }
}
