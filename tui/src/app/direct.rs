//! Direct messages: `/msg NICK TEXT` and telling which peer a typed name means.

use hark_node::Command;

use super::{App, Effect, Now};
use crate::replies::Request;
use crate::style::display_name;
use crate::timeline::MessageKind;

impl App {
    /// `/msg NICK TEXT`: opens (and shows) the room `@PEER` and sends the line there.
    pub(super) fn direct_message(&mut self, who: &str, text: String, now: Now) -> Vec<Effect> {
        let Some(peer) = self.resolve_nick(who, "/msg", now) else {
            return Vec::new();
        };
        // Not a name heard here: only a whole peer id will do (the room is named after it).
        let known = self.identities.name_of(&peer).is_some();
        let looks_like_id = peer.len() > 40 && peer.chars().all(|c| c.is_ascii_alphanumeric());
        if !known && !looks_like_id {
            self.set_hint(
                format!("no one called {who} heard yet: /msg takes a name seen here or a peer id"),
                true,
                now.at,
            );
            return Vec::new();
        }
        let room = format!("@{peer}");
        let new = self.room_index(&room).is_none();
        let index = self.ensure_room(&room);
        self.switch_to(index);
        self.follow_current();
        let mut effects = Vec::new();
        if new {
            // The node's `joined` finds the room already here: remember it now.
            effects.push(self.rooms_to_save());
        }
        effects.push(self.send(
            Command::Dm {
                to: peer,
                text: text.clone(),
            },
            Some(Request::Send {
                room,
                kind: MessageKind::Text,
                text,
            }),
        ));
        effects
    }

    /// The peer id a typed name means (`bob`, `bob#a1c2`), among every key heard; what was
    /// typed when no one is known by it (a peer id, or a name the node may know); `None`
    /// (with a hint) when several keys share the name.
    fn resolve_nick(&mut self, who: &str, command: &str, now: Now) -> Option<String> {
        let who = who.trim_start_matches('@');
        let (name, short) = match who.split_once('#') {
            Some((name, short)) => (name, Some(short)),
            None => (who, None),
        };
        let keys: Vec<String> = self
            .identities
            .keys_named(name)
            .into_iter()
            .filter(|k| short.is_none_or(|s| k.ends_with(s)))
            .collect();
        match &keys[..] {
            [one] => Some(one.clone()),
            [] => Some(who.to_owned()),
            several => {
                let ids: Vec<String> = several.iter().map(|k| display_name(name, k)).collect();
                self.set_hint(
                    format!(
                        "several keys use the name {name}: {} (add the #id: {command} {name}#…)",
                        ids.join(", ")
                    ),
                    true,
                    now.at,
                );
                None
            }
        }
    }
}
