//! Whether a chat line names someone: shared by the terminal UI (highlight, unread mentions)
//! and the node's outgoing hooks (`on = ["mention"]`), so both agree on what a mention is.

/// Whether `text` mentions `name`: the name as a whole word, any case, with or without `@`.
pub fn mentions(text: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let text = text.to_lowercase();
    let name = name.to_lowercase();
    let is_name_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    text.match_indices(&name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_whole_words_in_any_case() {
        assert!(mentions("alice: pump 4?", "alice"));
        assert!(mentions("ask @Alice", "alice"));
        assert!(!mentions("malice aforethought", "alice"));
        assert!(!mentions("alice_b is here", "alice"));
        assert!(!mentions("anything", ""));
    }
}
