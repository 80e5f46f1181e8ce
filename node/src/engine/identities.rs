//! Verified identities: safety numbers (`verify`), the peers the user marked verified, and
//! names claimed by more than one key.
//!
//! A peer id is the identity key itself (an Ed25519 public key in an identity multihash), so
//! a safety number needs nothing from the network: `verify` works for a peer that is offline,
//! or was only ever heard through a relay.

use std::collections::BTreeMap;

use hark_proto::SafetyNumber;
use libp2p::PeerId;

use super::{fail, CommandError, Engine, Storage};
use crate::api::{short_id, Event, VerifiedPeer};

/// The multihash code of an identity hash: the digest is the key itself.
const IDENTITY_MULTIHASH: u64 = 0x00;

/// The raw Ed25519 public key behind a peer id; `None` for ids of other key types, or hashed
/// ids (keys too long to inline), which Hark never makes.
pub fn ed25519_key(peer: &PeerId) -> Option<[u8; 32]> {
    let hash = peer.as_ref();
    if hash.code() != IDENTITY_MULTIHASH {
        return None;
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(hash.digest()).ok()?;
    Some(key.try_into_ed25519().ok()?.to_bytes())
}

/// The safety number of two peer ids, if both are Ed25519 identities.
pub fn safety_number(me: &PeerId, them: &PeerId) -> Option<SafetyNumber> {
    Some(SafetyNumber::new(&ed25519_key(me)?, &ed25519_key(them)?))
}

/// The verified marks, loaded from the store on first use.
#[derive(Default)]
pub struct Verified {
    loaded: Option<BTreeMap<PeerId, String>>,
}

impl Verified {
    /// Whether `peer` is marked (false before the marks are loaded).
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.loaded.as_ref().is_some_and(|m| m.contains_key(peer))
    }
}

impl<S: Storage> Engine<S> {
    fn verified_marks(&mut self) -> &mut BTreeMap<PeerId, String> {
        if self.verified.loaded.is_none() {
            let marks = match self.store.verified_peers() {
                Ok(rows) => rows
                    .into_iter()
                    .filter_map(|(peer, name)| Some((peer.parse::<PeerId>().ok()?, name)))
                    .collect(),
                Err(e) => {
                    tracing::warn!("cannot read verified peers: {e}");
                    BTreeMap::new()
                }
            };
            self.verified.loaded = Some(marks);
        }
        self.verified.loaded.get_or_insert_with(BTreeMap::new)
    }

    pub(super) fn is_verified(&mut self, peer: &PeerId) -> bool {
        self.verified_marks().contains_key(peer)
    }

    /// Read the marks now, so that [`Verified::contains`] answers from `&self`.
    pub(super) fn load_verified(&mut self) {
        self.verified_marks();
    }

    /// `verify {peer, confirm?}`: the safety number, and the mark set or taken when asked.
    pub(super) fn verify(
        &mut self,
        typed: &str,
        confirm: Option<bool>,
    ) -> Result<(), CommandError> {
        let peer = self.resolve_peer(typed)?;
        let number = safety_number(&self.me, &peer).ok_or_else(|| {
            fail(
                "bad_peer",
                format!("{peer} is not an Ed25519 identity: no safety number"),
            )
        })?;
        let name = self
            .names
            .get(&peer)
            .cloned()
            .or_else(|| self.verified_marks().get(&peer).cloned())
            .or_else(|| (peer == self.me).then(|| self.name.clone()))
            .unwrap_or_default();
        match confirm {
            Some(true) => {
                self.store
                    .set_verified(&peer.to_string(), Some(&name), self.wall_ms())
                    .map_err(|e| fail("store_failed", e))?;
                self.verified_marks().insert(peer, name.clone());
                tracing::info!(%peer, "peer marked verified");
            }
            Some(false) => {
                self.store
                    .set_verified(&peer.to_string(), None, self.wall_ms())
                    .map_err(|e| fail("store_failed", e))?;
                self.verified_marks().remove(&peer);
                tracing::info!(%peer, "verified mark removed");
            }
            None => {}
        }
        let verified = self.is_verified(&peer);
        let same_name = self.same_name(&peer, &name);
        self.emit(Event::SafetyNumber {
            peer: peer.to_string(),
            name,
            number: number.to_string(),
            verified,
            same_name,
        });
        Ok(())
    }

    pub(super) fn verified_list(&mut self) {
        let peers = self
            .verified_marks()
            .iter()
            .map(|(peer, name)| VerifiedPeer {
                peer_id: peer.to_string(),
                name: name.clone(),
            })
            .collect();
        self.emit(Event::VerifiedPeers { peers });
    }

    /// Other peer ids heard using `name` (any case), in a stable order.
    pub(super) fn same_name(&self, peer: &PeerId, name: &str) -> Vec<String> {
        if name.is_empty() {
            return Vec::new();
        }
        let mut others: Vec<String> = self
            .names
            .iter()
            .filter(|(other, other_name)| *other != peer && other_name.eq_ignore_ascii_case(name))
            .map(|(other, _)| other.to_string())
            .collect();
        if *peer != self.me && self.name.eq_ignore_ascii_case(name) {
            others.push(self.me.to_string());
        }
        others.sort();
        others
    }

    /// A peer the user named: a peer id, or a name (`bob`, `bob#a1c2`) heard this run or kept
    /// with a verified mark. A name several keys use must carry its `#id`.
    pub(super) fn resolve_peer(&mut self, typed: &str) -> Result<PeerId, CommandError> {
        let typed = typed.trim().trim_start_matches('@');
        if let Ok(peer) = typed.parse::<PeerId>() {
            return Ok(peer);
        }
        let (name, short) = match typed.split_once('#') {
            Some((name, short)) => (name, Some(short)),
            None => (typed, None),
        };
        let mut known: BTreeMap<PeerId, String> = self.verified_marks().clone();
        known.extend(self.names.iter().map(|(p, n)| (*p, n.clone())));
        known.insert(self.me, self.name.clone());
        let found: Vec<PeerId> = known
            .into_iter()
            .filter(|(peer, known_name)| {
                known_name.eq_ignore_ascii_case(name)
                    && short.is_none_or(|s| short_id(&peer.to_string()).eq_ignore_ascii_case(s))
            })
            .map(|(peer, _)| peer)
            .collect();
        match found[..] {
            [peer] => Ok(peer),
            [] => Err(fail(
                "unknown_peer",
                format!("no peer id, and no one heard using the name {typed:?}"),
            )),
            _ => {
                let ids: Vec<String> = found
                    .iter()
                    .map(|p| format!("{name}#{}", short_id(&p.to_string())))
                    .collect();
                Err(fail(
                    "ambiguous_name",
                    format!("several keys use the name {name}: {}", ids.join(", ")),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use libp2p::identity::Keypair;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::super::{EngineConfig, Input, MemoryStore, Now, Output};
    use super::*;
    use crate::api::Command;

    fn engine(seed: u8, name: &str, store: MemoryStore) -> Engine<MemoryStore> {
        let now = Now {
            at: Instant::now(),
            wall_ms: 1_796_083_200_000,
        };
        Engine::new(
            EngineConfig {
                name: name.to_owned(),
                ..EngineConfig::for_test(seed)
            },
            store,
            StdRng::seed_from_u64(u64::from(seed)),
            now,
        )
    }

    fn ask(engine: &mut Engine<MemoryStore>, command: Command) -> Event {
        let now = Now {
            at: Instant::now(),
            wall_ms: 1_796_083_200_000,
        };
        let mut events: Vec<Event> = engine
            .handle(Input::Command(command), now)
            .into_iter()
            .filter_map(|o| match o {
                Output::Event(e) => Some(e),
                _ => None,
            })
            .collect();
        assert_eq!(events.len(), 1, "{events:?}");
        events.remove(0)
    }

    fn verify(engine: &mut Engine<MemoryStore>, peer: &str, confirm: Option<bool>) -> Event {
        ask(
            engine,
            Command::Verify {
                peer: peer.to_owned(),
                confirm,
            },
        )
    }

    fn number(event: &Event) -> String {
        match event {
            Event::SafetyNumber { number, .. } => number.clone(),
            other => panic!("not a safety number: {other:?}"),
        }
    }

    #[test]
    fn both_sides_see_one_number_and_an_impostor_another() {
        let mut alice = engine(1, "alice", MemoryStore::default());
        let mut bob = engine(2, "bob", MemoryStore::default());
        let mut fake = engine(3, "bob", MemoryStore::default());
        let (a, b, f) = (
            alice.me.to_string(),
            bob.me.to_string(),
            fake.me.to_string(),
        );
        let at_alice = number(&verify(&mut alice, &b, None));
        assert_eq!(at_alice, number(&verify(&mut bob, &a, None)));
        let impostor = number(&verify(&mut alice, &f, None));
        assert_ne!(at_alice, impostor);
        assert_eq!(impostor, number(&verify(&mut fake, &a, None)));
        assert_eq!(at_alice.split(' ').count(), 12);
    }

    #[test]
    fn names_resolve_and_a_shared_name_is_flagged_and_must_carry_its_id() {
        let mut alice = engine(1, "alice", MemoryStore::default());
        let bob = Keypair::ed25519_from_bytes([2; 32])
            .unwrap()
            .public()
            .to_peer_id();
        let fake = Keypair::ed25519_from_bytes([3; 32])
            .unwrap()
            .public()
            .to_peer_id();
        alice.names.insert(bob, "bob".into());
        let Event::SafetyNumber {
            peer, same_name, ..
        } = verify(&mut alice, "bob", None)
        else {
            panic!("no number");
        };
        assert_eq!(peer, bob.to_string());
        assert!(same_name.is_empty());
        alice.names.insert(fake, "Bob".into());
        let Event::Error { code, detail } = verify(&mut alice, "bob", None) else {
            panic!("a shared name must not resolve");
        };
        assert_eq!(code, "ambiguous_name");
        assert!(detail.contains(short_id(&fake.to_string())), "{detail}");
        let short = format!("bob#{}", short_id(&bob.to_string()));
        let Event::SafetyNumber {
            peer, same_name, ..
        } = verify(&mut alice, &short, None)
        else {
            panic!("name#id resolves");
        };
        assert_eq!(peer, bob.to_string());
        assert_eq!(same_name, vec![fake.to_string()]);
        let Event::Error { code, .. } = verify(&mut alice, "carol", None) else {
            panic!("unknown name");
        };
        assert_eq!(code, "unknown_peer");
    }

    #[test]
    fn a_verified_mark_is_kept_in_the_store_and_can_be_taken_back() {
        let mut alice = engine(1, "alice", MemoryStore::default());
        let bob = Keypair::ed25519_from_bytes([2; 32])
            .unwrap()
            .public()
            .to_peer_id();
        alice.names.insert(bob, "bob".into());
        let Event::SafetyNumber { verified, .. } = verify(&mut alice, "bob", Some(true)) else {
            panic!("no number");
        };
        assert!(verified);
        // A restart: a new engine on the same store.
        let mut again = engine(1, "alice", alice.store().clone());
        let Event::VerifiedPeers { peers } = ask(&mut again, Command::VerifiedPeers) else {
            panic!("no list");
        };
        assert_eq!(
            peers,
            vec![VerifiedPeer {
                peer_id: bob.to_string(),
                name: "bob".into()
            }]
        );
        // Known by name from the mark alone (bob is not heard this run).
        let Event::SafetyNumber { verified, .. } = verify(&mut again, "bob", Some(false)) else {
            panic!("no number");
        };
        assert!(!verified);
        assert!(again.store().clone().verified_peers().unwrap().is_empty());
    }

    #[test]
    fn keys_come_back_out_of_peer_ids() {
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let raw = key.public().try_into_ed25519().unwrap().to_bytes();
        assert_eq!(ed25519_key(&peer), Some(raw));
        // Random bytes in an id are no key.
        assert_eq!(ed25519_key(&PeerId::random()), None);
    }

    #[test]
    fn both_sides_get_the_same_number() {
        let (a, b) = (
            Keypair::generate_ed25519().public().to_peer_id(),
            Keypair::generate_ed25519().public().to_peer_id(),
        );
        assert_eq!(safety_number(&a, &b), safety_number(&b, &a));
        assert!(safety_number(&a, &b).is_some());
    }
}
