//! Paging the message pane, measured in screen lines; reaching the top of what is loaded
//! asks the node for more history.

use super::{App, Effect, HISTORY_MAX};
use crate::layout::{self, lines::entry_lines};
use crate::replies::HistoryReason;

impl App {
    /// The message pane's inner size (columns, rows) at the current terminal size.
    pub fn pane_size(&self) -> (usize, usize) {
        let areas = layout::areas(self.size);
        let inner = layout::inner(areas.messages);
        (inner.width as usize, inner.height as usize)
    }

    fn heights(&self) -> impl Fn(usize) -> usize + '_ {
        let (width, _) = self.pane_size();
        let room = self.current_room();
        move |i: usize| {
            room.map_or(1, |room| {
                let entries = room.timeline.entries();
                let previous = i.checked_sub(1).map(|p| &entries[p]);
                entry_lines(&entries[i], previous, width, &self.clock).len()
            })
        }
    }

    pub(super) fn page_up(&mut self) -> Option<Effect> {
        let (_, height) = self.pane_size();
        let page = height.saturating_sub(2).max(1);
        let heights: Vec<usize> = self.all_heights();
        let room = self.rooms.get_mut(self.current)?;
        room.timeline.scroll_up(page, height, &|i| heights[i]);
        self.more_history_if_at_top(height, &heights)
    }

    pub(super) fn page_down(&mut self) {
        let (_, height) = self.pane_size();
        let page = height.saturating_sub(2).max(1);
        let heights: Vec<usize> = self.all_heights();
        if let Some(room) = self.rooms.get_mut(self.current) {
            room.timeline.scroll_down(page, &|i| heights[i]);
        }
    }

    pub(super) fn scroll_top(&mut self) -> Option<Effect> {
        let (_, height) = self.pane_size();
        let heights: Vec<usize> = self.all_heights();
        let room = self.rooms.get_mut(self.current)?;
        room.timeline.scroll_to_top(height, &|i| heights[i]);
        self.more_history_if_at_top(height, &heights)
    }

    /// Every entry's height in the current room. Scrolling is rare next to drawing, and the
    /// node caps a room's loaded history, so measuring all of them is affordable.
    fn all_heights(&self) -> Vec<usize> {
        let len = self.current_room().map_or(0, |r| r.timeline.len());
        let height = self.heights();
        (0..len).map(height).collect()
    }

    /// At the top of what is loaded: ask the node for a bigger page (it merges in place).
    fn more_history_if_at_top(&mut self, view_height: usize, heights: &[usize]) -> Option<Effect> {
        let room = self.rooms.get_mut(self.current)?;
        if room.history_complete
            || room.history_limit >= HISTORY_MAX
            || !room.timeline.at_top(view_height, &|i| heights[i])
        {
            return None;
        }
        room.history_limit = (room.history_limit * 4).min(HISTORY_MAX);
        let (name, limit) = (room.name.clone(), room.history_limit);
        Some(self.request_history(name, limit, HistoryReason::More))
    }
}
