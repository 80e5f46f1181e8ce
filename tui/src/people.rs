//! Who is in a room, as far as this node has heard: people announce themselves (presence),
//! speak and type. Typing marks expire on their own; online-ness comes from the node's peer
//! connections.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// A typing mark lasts this long after the last typing notice (the node sends one at most
/// every 2 s while someone types).
pub const TYPING_SHOWN_FOR: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Person {
    pub peer_id: String,
    pub name: String,
    typing_until: Option<Instant>,
    /// Talking on PTT now (set by voice events once voice exists).
    pub talking: bool,
    /// When they last said something here, for Tab completion order.
    pub last_spoke: Option<u64>,
}

impl Person {
    pub fn is_typing(&self, now: Instant) -> bool {
        self.typing_until.is_some_and(|until| now < until)
    }
}

/// A role in a private room (docs/protocol.md, "Members, kicks and key epochs").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Owner,
    Admin,
}

impl Role {
    /// The mark before a name in the people list.
    pub fn mark(self) -> &'static str {
        match self {
            Role::Owner => "★",
            Role::Admin => "+",
        }
    }
}

#[derive(Debug, Default)]
pub struct People {
    by_peer: HashMap<String, Person>,
    /// Owner and admins of a private room, as the node last said.
    roles: HashMap<String, Role>,
    /// Kicked from the room: no longer listed.
    kicked: HashSet<String>,
}

impl People {
    /// Someone is in the room under this name (presence, a message or typing).
    pub fn seen(&mut self, peer_id: &str, name: &str) -> &mut Person {
        let person = self
            .by_peer
            .entry(peer_id.to_owned())
            .or_insert_with(|| Person {
                peer_id: peer_id.to_owned(),
                name: name.to_owned(),
                typing_until: None,
                talking: false,
                last_spoke: None,
            });
        person.name = name.to_owned();
        person
    }

    pub fn typing(&mut self, peer_id: &str, name: &str, now: Instant) {
        self.seen(peer_id, name).typing_until = Some(now + TYPING_SHOWN_FOR);
    }

    /// A message from them ends their typing mark.
    pub fn spoke(&mut self, peer_id: &str, name: &str, ts: u64) {
        let person = self.seen(peer_id, name);
        person.typing_until = None;
        person.last_spoke = Some(person.last_spoke.map_or(ts, |t| t.max(ts)));
    }

    pub fn get(&self, peer_id: &str) -> Option<&Person> {
        self.by_peer.get(peer_id)
    }

    pub fn set_talking(&mut self, peer_id: &str, name: &str, talking: bool) {
        self.seen(peer_id, name).talking = talking;
    }

    /// Their connection closed: whatever they were saying on PTT has ended.
    pub fn stop_talking(&mut self, peer_id: &str) {
        if let Some(person) = self.by_peer.get_mut(peer_id) {
            person.talking = false;
        }
    }

    /// The room's owner, admins and kicked members (the node's `members`).
    pub fn set_roles(&mut self, owner: &str, admins: &[String], kicked: &[String]) {
        self.roles = admins
            .iter()
            .map(|a| (a.clone(), Role::Admin))
            .chain([(owner.to_owned(), Role::Owner)])
            .collect();
        self.kicked.extend(kicked.iter().cloned());
    }

    /// They were kicked from the room: off the list.
    pub fn kick(&mut self, peer_id: &str) {
        self.kicked.insert(peer_id.to_owned());
        self.roles.remove(peer_id);
    }

    pub fn role(&self, peer_id: &str) -> Option<Role> {
        self.roles.get(peer_id).copied()
    }

    /// Everyone but the kicked, online first, then by name.
    pub fn sorted(&self, is_online: &dyn Fn(&str) -> bool) -> Vec<&Person> {
        let mut list: Vec<&Person> = self
            .by_peer
            .values()
            .filter(|p| !self.kicked.contains(&p.peer_id))
            .collect();
        list.sort_by(|a, b| {
            is_online(&b.peer_id)
                .cmp(&is_online(&a.peer_id))
                .then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
                .then_with(|| a.peer_id.cmp(&b.peer_id))
        });
        list
    }

    /// Names of the people typing now, in name order.
    pub fn typing_names(&self, now: Instant) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .by_peer
            .values()
            .filter(|p| p.is_typing(now))
            .map(|p| p.name.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// Names to complete with Tab: who spoke last first, then the others by name.
    pub fn completion_names(&self) -> Vec<&str> {
        let mut list: Vec<&Person> = self.by_peer.values().collect();
        list.sort_by(|a, b| {
            b.last_spoke
                .cmp(&a.last_spoke)
                .then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
        });
        let mut names: Vec<&str> = Vec::new();
        for person in list {
            if !names.contains(&person.name.as_str()) {
                names.push(&person.name);
            }
        }
        names
    }

    /// The earliest moment a typing mark runs out, so the screen is redrawn then.
    pub fn next_expiry(&self, now: Instant) -> Option<Instant> {
        self.by_peer
            .values()
            .filter_map(|p| p.typing_until)
            .filter(|until| *until > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_admins_are_marked_and_the_kicked_leave_the_list() {
        let mut people = People::default();
        for (id, name) in [("a", "alice"), ("b", "bob"), ("c", "carol")] {
            people.seen(id, name);
        }
        people.set_roles("a", &["a".into(), "b".into()], &[]);
        assert_eq!(people.role("a"), Some(Role::Owner));
        assert_eq!(people.role("b"), Some(Role::Admin));
        assert_eq!(people.role("c"), None);
        people.kick("c");
        let listed: Vec<&str> = people
            .sorted(&|_| true)
            .iter()
            .map(|p| p.peer_id.as_str())
            .collect();
        assert_eq!(listed, ["a", "b"]);
        // Still known by name (notices name who was kicked).
        assert_eq!(people.get("c").map(|p| p.name.as_str()), Some("carol"));
    }
}
