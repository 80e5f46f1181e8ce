//! Keys to actions: the only place that knows which key does what (the help overlay lists
//! the same bindings; docs/ui.md explains the choices).

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Insert(char),
    Backspace,
    Delete,
    Left,
    Right,
    WordLeft,
    WordRight,
    LineStart,
    LineEnd,
    DeleteWordLeft,
    DeleteWordRight,
    DeleteToSpaceLeft,
    DeleteToStart,
    DeleteToEnd,
    HistoryBack,
    HistoryForward,
    Complete,
    Submit,
    PageUp,
    PageDown,
    ScrollTop,
    ScrollBottom,
    NextRoom,
    PrevRoom,
    /// Alt+1..9: the room at this index (0-based).
    GoToRoom(usize),
    Help,
    PttPress,
    PttRelease,
    Escape,
    Quit,
    Redraw,
}

/// The action for a key event, if any. Releases matter only for the PTT key (they arrive only
/// on terminals speaking the kitty keyboard protocol); auto-repeat counts as pressing again,
/// except for PTT.
pub fn action(key: KeyEvent) -> Option<Action> {
    let ptt = is_ptt(&key);
    match key.kind {
        KeyEventKind::Release => return ptt.then_some(Action::PttRelease),
        KeyEventKind::Repeat if ptt => return None,
        _ => {}
    }
    if ptt {
        return Some(Action::PttPress);
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    Some(match key.code {
        KeyCode::Char('c') if ctrl => Action::Quit,
        KeyCode::Char('n') if ctrl => Action::NextRoom,
        KeyCode::Char('p') if ctrl => Action::PrevRoom,
        KeyCode::Char('a') if ctrl => Action::LineStart,
        KeyCode::Char('e') if ctrl => Action::LineEnd,
        KeyCode::Char('b') if ctrl => Action::Left,
        KeyCode::Char('f') if ctrl => Action::Right,
        KeyCode::Char('w') if ctrl => Action::DeleteToSpaceLeft,
        KeyCode::Char('u') if ctrl => Action::DeleteToStart,
        KeyCode::Char('k') if ctrl => Action::DeleteToEnd,
        KeyCode::Char('d') if ctrl => Action::Delete,
        KeyCode::Char('h') if ctrl => Action::Backspace,
        KeyCode::Char('l') if ctrl => Action::Redraw,
        KeyCode::Char(c @ '1'..='9') if alt => Action::GoToRoom(c as usize - '1' as usize),
        KeyCode::Char('b') if alt => Action::WordLeft,
        KeyCode::Char('f') if alt => Action::WordRight,
        KeyCode::Char('d') if alt => Action::DeleteWordRight,
        _ if ctrl || alt => return modified(key.code, ctrl, alt),
        KeyCode::Char(c) => Action::Insert(c),
        KeyCode::Enter => Action::Submit,
        KeyCode::Tab => Action::Complete,
        KeyCode::Backspace => Action::Backspace,
        KeyCode::Delete => Action::Delete,
        KeyCode::Left => Action::Left,
        KeyCode::Right => Action::Right,
        KeyCode::Up => Action::HistoryBack,
        KeyCode::Down => Action::HistoryForward,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Home => Action::ScrollTop,
        KeyCode::End => Action::ScrollBottom,
        KeyCode::F(1) => Action::Help,
        KeyCode::Esc => Action::Escape,
        _ => return None,
    })
}

/// Ctrl or Alt with keys that are not letters.
fn modified(code: KeyCode, ctrl: bool, alt: bool) -> Option<Action> {
    Some(match code {
        KeyCode::Left => Action::WordLeft,
        KeyCode::Right => Action::WordRight,
        KeyCode::Backspace if ctrl || alt => Action::DeleteWordLeft,
        KeyCode::Delete => Action::DeleteWordRight,
        KeyCode::Home => Action::ScrollTop,
        KeyCode::End => Action::ScrollBottom,
        KeyCode::Up if alt => Action::PrevRoom,
        KeyCode::Down if alt => Action::NextRoom,
        KeyCode::Enter => Action::Submit,
        _ => return None,
    })
}

/// F2, or Ctrl+Space (which some terminals send as Ctrl+@, a NUL byte).
fn is_ptt(key: &KeyEvent) -> bool {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    matches!(key.code, KeyCode::F(2))
        || (ctrl && matches!(key.code, KeyCode::Char(' ') | KeyCode::Char('@')))
        || matches!(key.code, KeyCode::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEventState;

    fn key(code: KeyCode, modifiers: KeyModifiers, kind: KeyEventKind) -> KeyEvent {
        KeyEvent {
            code,
            modifiers,
            kind,
            state: KeyEventState::NONE,
        }
    }

    #[test]
    fn ptt_sees_releases_other_keys_ignore_them() {
        let none = KeyModifiers::NONE;
        assert_eq!(
            action(key(KeyCode::F(2), none, KeyEventKind::Press)),
            Some(Action::PttPress)
        );
        assert_eq!(action(key(KeyCode::F(2), none, KeyEventKind::Repeat)), None);
        assert_eq!(
            action(key(KeyCode::F(2), none, KeyEventKind::Release)),
            Some(Action::PttRelease)
        );
        assert_eq!(
            action(key(
                KeyCode::Char(' '),
                KeyModifiers::CONTROL,
                KeyEventKind::Press
            )),
            Some(Action::PttPress)
        );
        assert_eq!(
            action(key(KeyCode::Char('x'), none, KeyEventKind::Release)),
            None
        );
        assert_eq!(
            action(key(KeyCode::Char('x'), none, KeyEventKind::Repeat)),
            Some(Action::Insert('x'))
        );
        assert_eq!(
            action(key(
                KeyCode::Char('3'),
                KeyModifiers::ALT,
                KeyEventKind::Press
            )),
            Some(Action::GoToRoom(2))
        );
    }
}
