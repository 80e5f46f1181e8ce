//! Taking over the terminal and giving it back. Restoring is idempotent and happens on every
//! way out: a normal quit, an error (the guard's drop), a signal, and a panic (the hook runs
//! before the panic message is printed, so the message lands on a normal screen).

use std::io::{self, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::event::{
    DisableBracketedPaste, EnableBracketedPaste, KeyboardEnhancementFlags,
    PopKeyboardEnhancementFlags, PushKeyboardEnhancementFlags,
};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use crossterm::{cursor, execute};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

use crate::voice::PttMode;

/// The terminal is ours (raw mode, alternate screen).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// We pushed kitty keyboard flags that must be popped.
static ENHANCED: AtomicBool = AtomicBool::new(false);

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Restores the terminal when dropped.
pub struct TerminalGuard(());

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Raw mode, alternate screen, bracketed paste, and key releases where the terminal can
/// report them (kitty keyboard protocol): that decides how the PTT key works.
pub fn setup() -> io::Result<(Term, TerminalGuard, PttMode)> {
    install_panic_hook();
    enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    let guard = TerminalGuard(());
    let mut stdout = io::stdout();
    execute!(stdout, EnterAlternateScreen, EnableBracketedPaste)?;
    // The query answers at once on terminals that know the protocol, and through the primary
    // device attributes reply on those that do not.
    let mode = if matches!(
        crossterm::terminal::supports_keyboard_enhancement(),
        Ok(true)
    ) {
        execute!(
            stdout,
            PushKeyboardEnhancementFlags(
                KeyboardEnhancementFlags::DISAMBIGUATE_ESCAPE_CODES
                    | KeyboardEnhancementFlags::REPORT_EVENT_TYPES
            )
        )?;
        ENHANCED.store(true, Ordering::SeqCst);
        PttMode::Hold
    } else {
        PttMode::Toggle
    };
    let mut terminal = Terminal::new(CrosstermBackend::new(stdout))?;
    terminal.clear()?;
    Ok((terminal, guard, mode))
}

/// Give the terminal back as we found it. Safe to call more than once, from anywhere.
pub fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut stdout = io::stdout();
    if ENHANCED.swap(false, Ordering::SeqCst) {
        let _ = execute!(stdout, PopKeyboardEnhancementFlags);
    }
    let _ = execute!(
        stdout,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        cursor::Show
    );
    let _ = disable_raw_mode();
    let _ = stdout.flush();
}

fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        tracing::error!("panic: {info}");
        previous(info);
    }));
}

/// Ring the terminal bell.
pub fn bell() {
    let mut stdout = io::stdout();
    let _ = stdout.write_all(b"\x07").and_then(|_| stdout.flush());
}

/// Put `text` on the clipboard with OSC 52 (kitty, iTerm2, foot, WezTerm, xterm with the
/// option, tmux with set-clipboard); terminals without it ignore the sequence.
pub fn copy_to_clipboard(text: &str) {
    let mut stdout = io::stdout();
    let sequence = format!("\x1b]52;c;{}\x07", base64(text.as_bytes()));
    let _ = stdout
        .write_all(sequence.as_bytes())
        .and_then(|_| stdout.flush());
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(super::base64(b"hark"), "aGFyaw==");
        assert_eq!(super::base64(b"hark:"), "aGFyazo=");
        assert_eq!(super::base64(b"abc"), "YWJj");
    }
}
