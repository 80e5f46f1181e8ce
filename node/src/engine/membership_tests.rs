//! Membership in engines wired by hand (gossip only): a kick moves the others to a new key, a
//! late message of the old epoch is still shown, the kicked member's later words are not, and
//! a kick by a member who is no admin changes nothing.

use std::time::Instant;

use hark_proto::{RoomName, Topic};
use libp2p::gossipsub::MessageId as GossipId;
use libp2p::PeerId;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::super::*;
use crate::api::{Command, Event};

fn now() -> Now {
    Now {
        at: Instant::now(),
        wall_ms: 1_796_083_200_000,
    }
}

fn engine(seed: u8) -> Engine<MemoryStore> {
    let mut engine = Engine::new(
        EngineConfig::for_test(seed),
        MemoryStore::default(),
        StdRng::seed_from_u64(u64::from(seed)),
        now(),
    );
    engine.handle(Input::Start, now());
    engine
}

/// Engines that hear each other's gossip at once; `events[i]` is what node `i` told its
/// client.
struct Net {
    nodes: Vec<Engine<MemoryStore>>,
    events: Vec<Vec<Event>>,
    ids: u64,
}

impl Net {
    fn new(n: u8) -> Self {
        Self {
            nodes: (1..=n).map(engine).collect(),
            events: vec![Vec::new(); n as usize],
            ids: 0,
        }
    }

    fn peer(&self, i: usize) -> PeerId {
        self.nodes[i].peer_id()
    }

    /// Node `i` handles `command`; what it publishes reaches everyone (transitively).
    fn command(&mut self, i: usize, command: Command) {
        let out = self.nodes[i].handle(Input::Command(command), now());
        self.spread(i, out, &[]);
    }

    /// Handle outputs of node `from`; publications reach every node but those in `deaf`.
    fn spread(&mut self, from: usize, out: Vec<Output>, deaf: &[usize]) {
        let mut queue: Vec<(usize, Output)> = out.into_iter().map(|o| (from, o)).collect();
        while !queue.is_empty() {
            let (from, output) = queue.remove(0);
            match output {
                Output::Event(e) => self.events[from].push(e),
                Output::Publish { topic, data } => {
                    let source = self.peer(from);
                    for to in (0..self.nodes.len()).filter(|to| *to != from && !deaf.contains(to)) {
                        self.ids += 1;
                        let input = Input::Gossip {
                            id: GossipId::new(&self.ids.to_be_bytes()),
                            from: source,
                            source: Some(source),
                            topic: topic.as_str().to_owned(),
                            data: data.clone(),
                        };
                        let out = self.nodes[to].handle(input, now());
                        queue.extend(out.into_iter().map(|o| (to, o)));
                    }
                }
                _ => {}
            }
        }
    }

    fn shown(&self, i: usize, text: &str) -> bool {
        self.events[i]
            .iter()
            .any(|e| matches!(e, Event::Message { text: t, .. } if t == text))
    }

    fn topic(&self, i: usize) -> Topic {
        self.nodes[i].find_room("ops").unwrap().chat_topic.clone()
    }
}

fn send(room: &str, text: &str) -> Command {
    Command::Send {
        room: room.into(),
        text: text.into(),
    }
}

#[test]
fn a_kick_in_engines_late_old_epoch_messages_and_a_refused_kick() {
    let (alice, bob, carol) = (0, 1, 2);
    let mut net = Net::new(3);
    net.command(alice, Command::Create { room: "ops".into() });
    let invite = net.events[alice]
        .iter()
        .find_map(|e| match e {
            Event::Created { invite, .. } => Some(invite.clone()),
            _ => None,
        })
        .unwrap();
    for i in [bob, carol] {
        net.command(
            i,
            Command::Join {
                room: None,
                invite: Some(invite.clone()),
            },
        );
    }
    let name = RoomName::parse("ops").unwrap();
    assert_eq!(
        net.nodes[alice].members.rooms[&name].rules.members().len(),
        3
    );

    // Bob writes in the first epoch; it is held up on the way to alice and carol.
    let held = net.nodes[bob].handle(Input::Command(send("ops", "bob, before he heard")), now());
    let old_topic = net.topic(alice);

    let carol_id = net.peer(carol).to_string();
    net.command(
        alice,
        Command::Kick {
            room: "ops".into(),
            peer: carol_id.clone(),
        },
    );
    assert!(net.events[bob]
        .iter()
        .any(|e| matches!(e, Event::Epoch { epoch: 1, .. })));
    assert!(net.events[carol]
        .iter()
        .any(|e| matches!(e, Event::Kicked { peer, .. } if *peer == carol_id)));
    assert_eq!(net.topic(alice), net.topic(bob));
    assert_ne!(net.topic(alice), old_topic);
    assert_eq!(net.topic(carol), old_topic, "carol has no new key");
    // Delivery marks count the members the rules list: bob, not carol.
    let topic = net.topic(alice);
    assert_eq!(net.nodes[alice].members(&topic), vec![net.peer(bob)]);

    // The held message arrives late: still shown, as written before bob knew.
    net.spread(bob, held, &[]);
    assert!(net.shown(alice, "bob, before he heard"));

    // Carol, kicked, writes into the old epoch: nobody shows it. Alice's new words never
    // reach carol in a form she can read.
    net.command(carol, send("ops", "carol after her kick"));
    assert!(
        matches!(net.events[carol].last(), Some(Event::Error { code, .. }) if code == "not_allowed"),
        "her node refuses it rather than answer `sent`: {:?}",
        net.events[carol].last()
    );
    assert!(!net.shown(alice, "carol after her kick"));
    assert!(!net.shown(bob, "carol after her kick"));
    // Nor is she shown present in the room any more.
    let heard_before = net.events[alice].len();
    net.command(
        carol,
        Command::Nick {
            name: "carol2".into(),
        },
    );
    assert!(!net.events[alice][heard_before..].iter().any(
        |e| matches!(e, Event::Presence { room, from, .. } if room == "ops" && *from == carol_id)
    ));
    let bob_id = net.peer(bob).to_string();
    net.command(
        bob,
        Command::Nick {
            name: "bob2".into(),
        },
    );
    assert!(net.events[alice][heard_before..].iter().any(
        |e| matches!(e, Event::Presence { room, from, .. } if room == "ops" && *from == bob_id)
    ));
    net.command(alice, send("ops", "new epoch"));
    assert!(net.shown(bob, "new epoch"));
    assert!(!net.shown(carol, "new epoch"));

    // A kick by a member who is no admin: refused at home, and ignored by others when
    // forced onto the wire.
    net.command(
        bob,
        Command::Kick {
            room: "ops".into(),
            peer: net.peer(alice).to_string(),
        },
    );
    assert!(net.events[bob]
        .iter()
        .any(|e| matches!(e, Event::Error { code, .. } if code == "not_allowed")));
    let before = net.topic(alice);
    let owner = net.peer(alice).to_bytes();
    let forced = {
        let node = &mut net.nodes[bob];
        node.rekey(&name, vec![owner]).unwrap();
        std::mem::take(&mut node.out)
    };
    net.spread(bob, forced, &[]);
    assert_eq!(net.topic(alice), before, "a member's rekey does not count");
}
