//! A private room's membership on screen: kicks, key epochs and `/members` as notices in the
//! room (the node decides everything; `engine/membership.rs`).

use hark_node::Command;

use super::{App, Effect, Now};
use crate::timeline::NoticeLevel;

impl App {
    /// How a peer id is shown: the name heard in the room with its short id, or the short id.
    fn member_label(&self, index: usize, peer_id: &str) -> String {
        if self.me.as_ref().is_some_and(|me| me.peer_id == peer_id) {
            return "you".to_owned();
        }
        let short = peer_id
            .char_indices()
            .rev()
            .nth(3)
            .map_or(peer_id, |(at, _)| &peer_id[at..]);
        self.rooms
            .get(index)
            .and_then(|room| room.people.get(peer_id))
            .map(|p| format!("{}#{short}", p.name))
            .unwrap_or_else(|| format!("#{short}"))
    }

    /// Ask the node who owns and administers `room` (after a kick), to mark them in the
    /// people list. Not a request the user waits for: its answer only updates the marks.
    pub(super) fn members_quietly(&mut self, room: String) -> Effect {
        self.send(Command::Members { room }, None)
    }

    pub(super) fn on_kicked(&mut self, room: &str, peer: &str, by: &str, now: Now) {
        let Some(index) = self.room_index(room) else {
            return;
        };
        if let Some(r) = self.rooms.get_mut(index) {
            r.people.kick(peer);
        }
        let me = self.me.as_ref().is_some_and(|me| me.peer_id == peer);
        let by = self.member_label(index, by);
        let (text, level) = if me {
            (
                format!("{by} removed you from {room}: you keep what you have, and read nothing written from now on"),
                NoticeLevel::Error,
            )
        } else {
            let who = self.member_label(index, peer);
            (format!("{by} kicked {who} from {room}"), NoticeLevel::Info)
        };
        self.notice(index, text, level, now);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_members(
        &mut self,
        room: &str,
        owner: &str,
        admins: &[String],
        members: &[String],
        epoch: u32,
        kicked: &[String],
        now: Now,
    ) {
        let Some(index) = self.room_index(room) else {
            return;
        };
        let list = |this: &Self, peers: &[String]| -> String {
            peers
                .iter()
                .map(|p| this.member_label(index, p))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let others: Vec<String> = admins.iter().filter(|a| *a != owner).cloned().collect();
        let mut text = format!(
            "{room}: owner {}; admins {}; members ({}) {}; key epoch {epoch}",
            self.member_label(index, owner),
            if others.is_empty() {
                "none".to_owned()
            } else {
                list(self, &others)
            },
            members.len(),
            list(self, members),
        );
        if !kicked.is_empty() {
            text.push_str(&format!("; kicked {}", list(self, kicked)));
        }
        self.notice(index, text, NoticeLevel::Info, now);
    }
}
