//! Tab completion: commands, room names after `/join` and the like, and people's names;
//! repeated Tabs cycle through the candidates.

use super::App;
use crate::commands;

/// Tab completion in progress: repeated Tabs cycle through `candidates`.
#[derive(Debug)]
pub(super) struct Completion {
    start: usize,
    candidates: Vec<String>,
    index: usize,
}

impl App {
    pub(super) fn complete(&mut self) {
        if let Some(completion) = &mut self.completion {
            completion.index = (completion.index + 1) % completion.candidates.len();
            let (start, choice) = (
                completion.start,
                completion.candidates[completion.index].clone(),
            );
            self.input.replace_before_cursor(start, &choice);
            return;
        }
        let (start, word) = self.input.word_before_cursor();
        let word = word.to_owned();
        let command = self.input.text()[..start].trim_end().to_lowercase();
        let candidates: Vec<String> = if start == 0 && word.starts_with('/') {
            commands::complete(&word[1..])
                .into_iter()
                .map(|c| format!("{c} "))
                .collect()
        } else if commands::takes_room(&command) {
            // The argument of /join, /leave, /invite: the rooms in the sidebar.
            let prefix = word.trim_start_matches('#').to_lowercase();
            self.rooms
                .iter()
                .map(|room| room.name.clone())
                .filter(|name| name.starts_with(&prefix))
                .collect()
        } else {
            let (at, prefix) = match word.strip_prefix('@') {
                Some(rest) => ("@", rest),
                None => ("", word.as_str()),
            };
            let prefix = prefix.to_lowercase();
            let suffix = if start == 0 { ": " } else { " " };
            let my_name = self.my_name().to_owned();
            self.current_room()
                .map(|room| room.people.completion_names())
                .unwrap_or_default()
                .into_iter()
                .filter(|name| *name != my_name && name.to_lowercase().starts_with(&prefix))
                .map(|name| format!("{at}{name}{suffix}"))
                .collect()
        };
        if candidates.is_empty() {
            return;
        }
        self.input.replace_before_cursor(start, &candidates[0]);
        self.completion = Some(Completion {
            start,
            candidates,
            index: 0,
        });
    }
}
