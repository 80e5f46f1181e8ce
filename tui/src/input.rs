//! The input line: the text being typed, its cursor, word-wise editing and the history of
//! lines sent (Up/Down). Pure state; keys reach it through [`crate::keys`].

use unicode_width::UnicodeWidthChar;

/// How many sent lines Up/Down can bring back.
const HISTORY_LIMIT: usize = 500;

#[derive(Debug, Default, Clone)]
pub struct InputLine {
    text: String,
    /// Byte offset into `text`, always on a character boundary.
    cursor: usize,
    history: Vec<String>,
    /// `Some(i)` while Up/Down browse the history: `history[i]` is shown.
    browsing: Option<usize>,
    /// What was being typed before browsing started, given back by Down past the newest line.
    draft: String,
}

impl InputLine {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Replace the whole line (used by completion and to give back a line that failed to send).
    pub fn set(&mut self, text: &str, cursor: usize) {
        self.text = text.to_owned();
        self.cursor = floor_boundary(&self.text, cursor.min(self.text.len()));
    }

    pub fn insert_char(&mut self, c: char) {
        if let Some(c) = clean_char(c) {
            self.text.insert(self.cursor, c);
            self.cursor += c.len_utf8();
        }
    }

    /// Insert pasted text: line ends become `\n` (sent as a multi-line message), tabs become
    /// spaces, other control characters are dropped, and one trailing line end is ignored.
    pub fn insert_str(&mut self, pasted: &str) {
        let normalised = pasted.replace("\r\n", "\n").replace('\r', "\n");
        let trimmed = normalised.strip_suffix('\n').unwrap_or(&normalised);
        let cleaned: String = trimmed.chars().filter_map(clean_char).collect();
        self.text.insert_str(self.cursor, &cleaned);
        self.cursor += cleaned.len();
    }

    pub fn backspace(&mut self) {
        if let Some(prev) = self.prev_boundary(self.cursor) {
            self.text.replace_range(prev..self.cursor, "");
            self.cursor = prev;
        }
    }

    pub fn delete(&mut self) {
        if let Some(next) = self.next_boundary(self.cursor) {
            self.text.replace_range(self.cursor..next, "");
        }
    }

    pub fn left(&mut self) {
        if let Some(prev) = self.prev_boundary(self.cursor) {
            self.cursor = prev;
        }
    }

    pub fn right(&mut self) {
        if let Some(next) = self.next_boundary(self.cursor) {
            self.cursor = next;
        }
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    /// To the start of this word or the previous one (words are letters and digits).
    pub fn word_left(&mut self) {
        self.cursor = self.word_start_before(self.cursor);
    }

    /// To the end of this word or the next one.
    pub fn word_right(&mut self) {
        let rest = &self.text[self.cursor..];
        let mut chars = rest.char_indices().peekable();
        while chars.peek().is_some_and(|(_, c)| !is_word_char(*c)) {
            chars.next();
        }
        while chars.peek().is_some_and(|(_, c)| is_word_char(*c)) {
            chars.next();
        }
        self.cursor += chars.peek().map_or(rest.len(), |(i, _)| *i);
    }

    /// Alt+Backspace: delete back to the start of the word.
    pub fn delete_word_left(&mut self) {
        let start = self.word_start_before(self.cursor);
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Alt+D: delete to the end of the word.
    pub fn delete_word_right(&mut self) {
        let from = self.cursor;
        self.word_right();
        self.text.replace_range(from..self.cursor, "");
        self.cursor = from;
    }

    /// Ctrl+W: delete back to the previous whitespace (the shell's habit).
    pub fn delete_to_space_left(&mut self) {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end_matches(char::is_whitespace);
        let start = trimmed
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Ctrl+U.
    pub fn delete_to_start(&mut self) {
        self.text.replace_range(..self.cursor, "");
        self.cursor = 0;
    }

    /// Ctrl+K.
    pub fn delete_to_end(&mut self) {
        self.text.truncate(self.cursor);
    }

    /// Enter: take the line, remember it in the history, and clear the input.
    pub fn submit(&mut self) -> String {
        let line = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        self.draft.clear();
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            self.history.push(line.clone());
            if self.history.len() > HISTORY_LIMIT {
                self.history.remove(0);
            }
        }
        line
    }

    /// Up: the previous line sent.
    pub fn history_back(&mut self) {
        let index = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = self.text.clone();
                self.history.len() - 1
            }
            Some(0) => return,
            Some(i) => i - 1,
        };
        self.browsing = Some(index);
        self.show(self.history[index].clone());
    }

    /// Down: the next line sent, then what was being typed before Up.
    pub fn history_forward(&mut self) {
        let Some(index) = self.browsing else { return };
        if index + 1 < self.history.len() {
            self.browsing = Some(index + 1);
            self.show(self.history[index + 1].clone());
        } else {
            self.browsing = None;
            let draft = std::mem::take(&mut self.draft);
            self.show(draft);
        }
    }

    fn show(&mut self, text: String) {
        self.text = text;
        self.cursor = self.text.len();
    }

    /// The word the cursor is at the end of, as (start byte, word): what Tab completes.
    pub fn word_before_cursor(&self) -> (usize, &str) {
        let before = &self.text[..self.cursor];
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        (start, &before[start..])
    }

    /// Replace `text[start..cursor]` with `with`, leaving the cursor after it.
    pub fn replace_before_cursor(&mut self, start: usize, with: &str) {
        self.text.replace_range(start..self.cursor, with);
        self.cursor = start + with.len();
    }

    /// The part of the line to show in `width` columns so that the cursor is visible, and the
    /// cursor's column in it. Newlines from a paste show as `↵`.
    pub fn visible(&self, width: usize) -> (String, usize) {
        let width = width.max(1);
        let chars: Vec<(usize, char)> = self
            .text
            .char_indices()
            .map(|(i, c)| (i, if c == '\n' { '↵' } else { c }))
            .collect();
        let cursor_index = chars.partition_point(|(i, _)| *i < self.cursor);
        let char_width = |c: char| c.width().unwrap_or(0);
        // Scroll so that the cursor sits in the last column at most.
        let mut start = 0;
        let mut before: usize = chars[..cursor_index]
            .iter()
            .map(|(_, c)| char_width(*c))
            .sum();
        while before >= width && start < cursor_index {
            before -= char_width(chars[start].1);
            start += 1;
        }
        let mut shown = String::new();
        let mut used = 0;
        for (_, c) in &chars[start..] {
            let w = char_width(*c);
            if used + w > width {
                break;
            }
            shown.push(*c);
            used += w;
        }
        (shown, before)
    }

    fn prev_boundary(&self, at: usize) -> Option<usize> {
        self.text[..at].char_indices().next_back().map(|(i, _)| i)
    }

    fn next_boundary(&self, at: usize) -> Option<usize> {
        self.text[at..].chars().next().map(|c| at + c.len_utf8())
    }

    fn word_start_before(&self, at: usize) -> usize {
        let before = &self.text[..at];
        let mut chars = before.char_indices().rev().peekable();
        while chars.peek().is_some_and(|(_, c)| !is_word_char(*c)) {
            chars.next();
        }
        let mut start = at;
        while let Some((i, c)) = chars.peek().copied() {
            if !is_word_char(c) {
                break;
            }
            start = i;
            chars.next();
        }
        if start == at {
            // Only separators before the cursor: go to the line's start.
            chars.last().map_or(0, |(i, _)| i)
        } else {
            start
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Typed and pasted characters as the line keeps them: `\n` stays (a multi-line message), a
/// tab is a space, and other control characters (escape sequences!) are dropped.
fn clean_char(c: char) -> Option<char> {
    match c {
        '\n' => Some('\n'),
        '\t' => Some(' '),
        c if c.is_control() => None,
        c => Some(c),
    }
}

fn floor_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> InputLine {
        let mut line = InputLine::default();
        for c in text.chars() {
            line.insert_char(c);
        }
        line
    }

    #[test]
    fn word_movement_stops_at_word_starts_and_ends() {
        let mut line = typed("pump 4, hot");
        line.word_left();
        assert_eq!(line.cursor(), 8);
        line.word_left();
        assert_eq!(line.cursor(), 5);
        line.word_left();
        assert_eq!(line.cursor(), 0);
        line.word_left();
        assert_eq!(line.cursor(), 0);
        line.word_right();
        assert_eq!(line.cursor(), 4);
        line.word_right();
        assert_eq!(line.cursor(), 6);
    }

    #[test]
    fn visible_part_follows_the_cursor() {
        let line = typed("abcdefghij");
        assert_eq!(line.visible(4), ("hij".to_owned(), 3));
        let mut line = line;
        line.home();
        assert_eq!(line.visible(4), ("abcd".to_owned(), 0));
    }
}
