//! A room's messages and notices in display order, and the scroll position over them.
//!
//! Entries are kept sorted by (timestamp, id), the node's stable order, so a message that
//! arrives late by sync lands where it belongs. The scroll position is anchored to an entry,
//! not to a line count: new messages below it, or old ones inserted above it, never move what
//! the user is reading.

use std::collections::HashSet;

/// Sort key: the message's hybrid logical clock (its wall-clock ms, then its counter), then
/// its id: the node's order, so messages of the same millisecond keep the order `history`
/// gives.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryKey {
    pub ts: u64,
    pub tick: u16,
    pub id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Me,
    Alert,
}

impl MessageKind {
    pub fn parse(kind: &str) -> Self {
        match kind {
            "me" => MessageKind::Me,
            "alert" => MessageKind::Alert,
            _ => MessageKind::Text,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    pub from: String,
    pub name: String,
    pub kind: MessageKind,
    pub text: String,
    /// It names us (highlighted).
    pub mention: bool,
    /// We wrote it.
    pub own: bool,
    /// Verified author, or a name another key uses too (refreshed as that changes).
    pub mark: crate::identities::IdMark,
    /// Who holds it, for a message of ours this node sent during its run (`None`: not
    /// followed, e.g. loaded from history).
    pub delivery: Option<Delivery>,
}

/// Who holds one of our messages, as the node's last `delivered` for it said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Peers known to hold it: members and relays.
    pub holders: usize,
    /// Of them, members of the room.
    pub members_holding: usize,
    /// The room's members the node knows of (itself excluded).
    pub members: usize,
}

impl Delivery {
    /// The mark shown after the message (docs/ui.md): `·` nobody is known to hold it yet,
    /// `✓` a peer or relay that is no known member does, `✓✓ N/M` N of the M members do,
    /// `✓✓` all of them.
    /// Every known member holds it (the green `✓✓`).
    pub fn all_hold(&self) -> bool {
        self.members_holding >= 1 && self.members_holding >= self.members
    }

    pub fn mark(&self) -> String {
        let (n, m) = (self.members_holding, self.members);
        if self.all_hold() {
            "✓✓".to_owned()
        } else if n >= 1 {
            format!("✓✓ {n}/{m}")
        } else if self.holders >= 1 {
            "✓".to_owned()
        } else {
            "·".to_owned()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeLevel {
    Info,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryBody {
    Message(ChatMessage),
    /// A line from hark itself (command output, joins), never stored or sent.
    Notice {
        text: String,
        level: NoticeLevel,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: EntryKey,
    pub body: EntryBody,
}

/// Where the bottom row of the message pane is, when scrolled up: `below` lines above the
/// last line of the entry with `key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub key: EntryKey,
    pub below: usize,
}

#[derive(Debug, Default)]
pub struct Timeline {
    entries: Vec<Entry>,
    ids: HashSet<String>,
    /// `None`: following the newest line.
    anchor: Option<Anchor>,
}

impl Timeline {
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Every chat message, to update what is shown beside its author (marks), never its
    /// place in the order.
    pub fn messages_mut(&mut self) -> impl Iterator<Item = &mut ChatMessage> {
        self.entries.iter_mut().filter_map(|e| match &mut e.body {
            EntryBody::Message(m) => Some(m),
            EntryBody::Notice { .. } => None,
        })
    }

    /// The chat message with `id`; our own recent ones are found first (searched from the end).
    pub fn message_mut(&mut self, id: &str) -> Option<&mut ChatMessage> {
        if !self.ids.contains(id) {
            return None;
        }
        self.entries
            .iter_mut()
            .rev()
            .find(|e| e.key.id == id)
            .and_then(|e| match &mut e.body {
                EntryBody::Message(m) => Some(m),
                EntryBody::Notice { .. } => None,
            })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// The newest timestamp held, to stamp our own messages after everything seen.
    pub fn newest_ts(&self) -> Option<u64> {
        self.entries.last().map(|e| e.key.ts)
    }

    /// Insert in order; `false` if an entry with this id is already there.
    pub fn insert(&mut self, entry: Entry) -> bool {
        if !self.ids.insert(entry.key.id.clone()) {
            return false;
        }
        let at = self.entries.partition_point(|e| e.key <= entry.key);
        self.entries.insert(at, entry);
        true
    }

    pub fn is_following(&self) -> bool {
        self.anchor.is_none()
    }

    pub fn follow(&mut self) {
        self.anchor = None;
    }

    /// Entries after the anchored one: what arrived below the view while scrolled up.
    pub fn below_view(&self) -> usize {
        match self.position() {
            Some((index, _)) => self.entries.len() - 1 - index,
            None => 0,
        }
    }

    /// The bottom row as (entry index, lines above that entry's end); `None` when following
    /// (then it is the last line of the last entry).
    pub fn position(&self) -> Option<(usize, usize)> {
        let anchor = self.anchor.as_ref()?;
        let index = self
            .entries
            .binary_search_by(|e| e.key.cmp(&anchor.key))
            .ok()?;
        Some((index, anchor.below))
    }

    fn bottom(&self) -> Option<(usize, usize)> {
        self.position()
            .or_else(|| self.entries.len().checked_sub(1).map(|last| (last, 0)))
    }

    fn set_position(&mut self, index: usize, below: usize) {
        if index + 1 == self.entries.len() && below == 0 {
            self.anchor = None;
        } else {
            self.anchor = Some(Anchor {
                key: self.entries[index].key.clone(),
                below,
            });
        }
    }

    /// Scroll towards older lines by `lines`, stopping when the first line is at the top of
    /// a view `view_height` rows tall. `height(i)` is entry `i`'s rendered line count (≥ 1).
    pub fn scroll_up(&mut self, lines: usize, view_height: usize, height: &dyn Fn(usize) -> usize) {
        let Some((mut index, mut below)) = self.bottom() else {
            return;
        };
        below = below.min(height(index).saturating_sub(1)) + lines;
        while below >= height(index) {
            if index == 0 {
                below = height(0).saturating_sub(1);
                break;
            }
            below -= height(index);
            index -= 1;
        }
        self.set_position(index, below);
        self.clamp_top(view_height, height);
    }

    /// Scroll towards newer lines; reaching the end follows new messages again.
    pub fn scroll_down(&mut self, lines: usize, height: &dyn Fn(usize) -> usize) {
        let Some((mut index, below)) = self.position() else {
            return;
        };
        let mut below = below.min(height(index).saturating_sub(1)) as isize - lines as isize;
        while below < 0 {
            index += 1;
            if index >= self.entries.len() {
                self.anchor = None;
                return;
            }
            below += height(index) as isize;
        }
        self.set_position(index, below as usize);
    }

    /// Scroll to the oldest loaded line.
    pub fn scroll_to_top(&mut self, view_height: usize, height: &dyn Fn(usize) -> usize) {
        if self.entries.is_empty() {
            return;
        }
        self.set_position(0, height(0).saturating_sub(1));
        self.clamp_top(view_height, height);
    }

    /// Whether the first loaded line is in view (when scrolled to the top).
    pub fn at_top(&self, view_height: usize, height: &dyn Fn(usize) -> usize) -> bool {
        match self.bottom() {
            Some((index, below)) => lines_through(index, below, view_height, height) <= view_height,
            None => true,
        }
    }

    /// Never leave empty rows above the first line: if fewer than `view_height` lines lead up
    /// to the bottom row, move the bottom row down until they fill the view (or follow).
    fn clamp_top(&mut self, view_height: usize, height: &dyn Fn(usize) -> usize) {
        let Some((index, below)) = self.position() else {
            return;
        };
        let through = lines_through(index, below, view_height, height);
        if through < view_height {
            self.scroll_down(view_height - through, height);
        }
    }
}

/// Lines from the first entry's first line to the bottom row, counted up to `cap`.
fn lines_through(index: usize, below: usize, cap: usize, height: &dyn Fn(usize) -> usize) -> usize {
    let mut total = height(index).saturating_sub(below);
    let mut i = index;
    while total < cap && i > 0 {
        i -= 1;
        total += height(i);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(ts: u64, id: &str) -> Entry {
        Entry {
            key: EntryKey {
                ts,
                tick: 0,
                id: id.into(),
            },
            body: EntryBody::Notice {
                text: id.into(),
                level: NoticeLevel::Info,
            },
        }
    }

    #[test]
    fn entries_stay_in_key_order_and_ids_are_kept_once() {
        let mut timeline = Timeline::default();
        assert!(timeline.insert(notice(5, "b")));
        assert!(timeline.insert(notice(1, "c")));
        assert!(timeline.insert(notice(5, "a")));
        assert!(!timeline.insert(notice(9, "a")), "an id is shown once");
        let keys: Vec<(u64, &str)> = timeline
            .entries()
            .iter()
            .map(|e| (e.key.ts, e.key.id.as_str()))
            .collect();
        assert_eq!(keys, vec![(1, "c"), (5, "a"), (5, "b")]);
    }

    #[test]
    fn delivery_marks_go_from_nobody_to_a_holder_to_members_to_all() {
        let mark = |holders, members_holding, members| {
            Delivery {
                holders,
                members_holding,
                members,
            }
            .mark()
        };
        assert_eq!(mark(0, 0, 2), "·");
        assert_eq!(mark(1, 0, 2), "✓", "a relay holds it, no member yet");
        assert_eq!(mark(2, 1, 2), "✓✓ 1/2");
        assert_eq!(mark(2, 2, 2), "✓✓");
        assert_eq!(
            mark(1, 1, 0),
            "✓✓",
            "a holder heard later than its event: all we know"
        );
    }

    #[test]
    fn scrolling_up_and_down_returns_to_following() {
        let mut timeline = Timeline::default();
        for i in 0..20 {
            timeline.insert(notice(i, &format!("{i:02}")));
        }
        let one = |_: usize| 1;
        timeline.scroll_up(5, 10, &one);
        assert_eq!(timeline.position(), Some((14, 0)));
        // New entries below and above do not move the view.
        timeline.insert(notice(100, "new"));
        timeline.insert(notice(0, "00old"));
        assert_eq!(
            timeline.entries()[timeline.position().unwrap().0].key.id,
            "14"
        );
        timeline.scroll_up(100, 10, &one);
        assert_eq!(
            timeline.position(),
            Some((9, 0)),
            "clamped: the first line at the top"
        );
        timeline.scroll_down(100, &one);
        assert!(timeline.is_following());
    }
}
