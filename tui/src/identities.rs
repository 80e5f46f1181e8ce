//! Who is who: the peers the user marked verified (their safety number was compared, see
//! `/verify`), and names that more than one key uses. A name is only a claim — anyone can
//! take `bob` — so a second key under a name is flagged wherever the name is shown, and the
//! one the user verified keeps its ✓.

use std::collections::{BTreeSet, HashMap, HashSet};

/// Names remembered with their keys: enough for any real site; past it, new names are not
/// tracked (a flood of made-up names cannot grow memory).
const MAX_NAMES: usize = 4_096;

/// What is shown after a name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdMark {
    #[default]
    None,
    /// The user compared safety numbers with this key: `✓`.
    Verified,
    /// Another key uses this name too, and this one is not verified: `⚠`.
    Clash,
}

impl IdMark {
    /// The mark as text, with a leading space; empty for none.
    pub fn suffix(self) -> &'static str {
        match self {
            IdMark::None => "",
            IdMark::Verified => " ✓",
            IdMark::Clash => " ⚠",
        }
    }
}

#[derive(Debug, Default)]
pub struct Identities {
    verified: HashSet<String>,
    /// Lowercased name → the keys (peer ids) heard using it.
    claims: HashMap<String, BTreeSet<String>>,
    /// Each key's latest name (for direct-message rooms, named by key).
    names: HashMap<String, String>,
}

impl Identities {
    /// `peer_id` uses `name`. True when that makes the name shared by more keys than before
    /// (marks already on the screen may have to change).
    pub fn note(&mut self, peer_id: &str, name: &str) -> bool {
        if name.is_empty() || peer_id.is_empty() {
            return false;
        }
        if self.names.contains_key(peer_id) || self.names.len() < MAX_NAMES {
            self.names.insert(peer_id.to_owned(), name.to_owned());
        }
        let key = name.to_lowercase();
        if !self.claims.contains_key(&key) && self.claims.len() >= MAX_NAMES {
            return false;
        }
        let keys = self.claims.entry(key).or_default();
        keys.insert(peer_id.to_owned()) && keys.len() > 1
    }

    pub fn set_verified(&mut self, peer_id: &str, verified: bool) {
        if verified {
            self.verified.insert(peer_id.to_owned());
        } else {
            self.verified.remove(peer_id);
        }
    }

    pub fn is_verified(&self, peer_id: &str) -> bool {
        self.verified.contains(peer_id)
    }

    /// The mark to show after `name` said by `peer_id`.
    pub fn mark(&self, peer_id: &str, name: &str) -> IdMark {
        if self.is_verified(peer_id) {
            IdMark::Verified
        } else if !self.others_with_name(peer_id, name).is_empty() {
            IdMark::Clash
        } else {
            IdMark::None
        }
    }

    /// The other keys heard using `name`.
    pub fn others_with_name(&self, peer_id: &str, name: &str) -> Vec<String> {
        self.claims
            .get(&name.to_lowercase())
            .map(|keys| keys.iter().filter(|k| *k != peer_id).cloned().collect())
            .unwrap_or_default()
    }

    /// The name `peer_id` used last, if heard.
    pub fn name_of(&self, peer_id: &str) -> Option<&str> {
        self.names.get(peer_id).map(String::as_str)
    }

    /// Every key heard using `name` (any case), in a stable order.
    pub fn keys_named(&self, name: &str) -> Vec<String> {
        self.claims
            .get(&name.to_lowercase())
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_key_under_a_name_is_flagged_until_one_is_verified() {
        let mut ids = Identities::default();
        assert!(!ids.note("12D3bob1", "bob"));
        assert_eq!(ids.mark("12D3bob1", "bob"), IdMark::None);
        assert!(
            !ids.note("12D3bob1", "bob"),
            "the same key again changes nothing"
        );
        assert!(ids.note("12D3fake", "Bob"), "a second key, any case");
        assert_eq!(ids.mark("12D3bob1", "bob"), IdMark::Clash);
        assert_eq!(ids.mark("12D3fake", "Bob"), IdMark::Clash);
        ids.set_verified("12D3bob1", true);
        assert_eq!(ids.mark("12D3bob1", "bob"), IdMark::Verified);
        assert_eq!(ids.mark("12D3fake", "bob"), IdMark::Clash);
        assert_eq!(ids.others_with_name("12D3fake", "bob"), vec!["12D3bob1"]);
        ids.set_verified("12D3bob1", false);
        assert_eq!(ids.mark("12D3bob1", "bob"), IdMark::Clash);
        assert_eq!(IdMark::Verified.suffix(), " ✓");
    }
}
