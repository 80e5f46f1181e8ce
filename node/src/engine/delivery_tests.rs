//! Delivery marks (`delivery.rs`) on a small mesh of engines wired by hand: gossip goes to
//! every connected engine, sync requests to their peer and back, and only the delivery and
//! presence timers fire (when the test moves the clock), so each test sees exactly the
//! sessions the rules start.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use hark_proto::{RoomName, Topic};
use libp2p::gossipsub::MessageId as GossipId;
use libp2p::identity::Keypair;
use libp2p::PeerId;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::delivery::{CHASE_FOR, MAX_MEMBERS, MAX_TRACKED, MAX_TRACKED_ALL};
use super::*;
use crate::api::{Command, Event};
use crate::rooms::{Room, RoomBook};

fn lobby() -> Room {
    Room::public(RoomName::parse("lobby").unwrap())
}

fn topic() -> Topic {
    lobby().chat_topic
}

/// Engines, the clock, who is connected to whom, and what each was told.
struct Mesh {
    engines: Vec<Engine<MemoryStore>>,
    base: Instant,
    ms: u64,
    links: HashSet<(usize, usize)>,
    /// Timers asked for and not yet fired: (engine, at, timer).
    timers: Vec<(usize, Instant, Timer)>,
    /// Every event, by engine.
    events: Vec<(usize, Event)>,
    /// Gossip ids handed out so far.
    gossip_seq: u64,
}

impl Mesh {
    fn new(count: u8) -> Self {
        let base = Instant::now();
        let mut mesh = Mesh {
            engines: Vec::new(),
            base,
            ms: 0,
            links: HashSet::new(),
            timers: Vec::new(),
            events: Vec::new(),
            gossip_seq: 0,
        };
        for seed in 1..=count {
            let engine = mesh.engine(seed, MemoryStore::default());
            mesh.engines.push(engine);
        }
        for i in 0..mesh.engines.len() {
            mesh.input(i, Input::Start);
        }
        // Start-up timers (anti-entropy, the first presence a minute away) are not wanted.
        mesh.timers.clear();
        mesh
    }

    /// Engine number `seed` (1-based: its identity and RNG seed) over `store`.
    fn engine(&self, seed: u8, store: MemoryStore) -> Engine<MemoryStore> {
        let mut rooms = RoomBook::default();
        rooms.insert(lobby()).unwrap();
        Engine::new(
            EngineConfig {
                rooms,
                ..EngineConfig::for_test(seed)
            },
            store,
            StdRng::seed_from_u64(u64::from(seed)),
            self.now(),
        )
    }

    /// Engine `i` stops and starts again over what it stored (unconnected).
    fn restart(&mut self, i: usize) {
        let seed = u8::try_from(i + 1).unwrap();
        let fresh = self.engine(seed, MemoryStore::default());
        let old = std::mem::replace(&mut self.engines[i], fresh);
        self.engines[i] = self.engine(seed, old.into_store());
        self.input(i, Input::Start);
    }

    fn now(&self) -> Now {
        Now {
            at: self.base + Duration::from_millis(self.ms),
            wall_ms: 1_796_083_200_000 + self.ms,
        }
    }

    fn id(&self, i: usize) -> PeerId {
        self.engines[i].peer_id()
    }

    fn index(&self, peer: PeerId) -> Option<usize> {
        self.engines.iter().position(|e| e.peer_id() == peer)
    }

    /// Hand engine `i` one input and carry out everything that follows; returns how many sync
    /// sessions engine `i` started in direct answer to it.
    fn input(&mut self, i: usize, input: Input) -> usize {
        let now = self.now();
        let outputs = self.engines[i].handle(input, now);
        let started = outputs
            .iter()
            .filter(|o| matches!(o, Output::SyncRequest { .. }))
            .count();
        let mut queue: Vec<(usize, Output)> = outputs.into_iter().map(|o| (i, o)).collect();
        let mut steps = 0;
        while let Some((from, output)) = queue.pop() {
            steps += 1;
            assert!(steps < 100_000, "the mesh does not settle");
            self.carry(from, output, &mut queue);
        }
        started
    }

    fn carry(&mut self, from: usize, output: Output, queue: &mut Vec<(usize, Output)>) {
        let now = self.now();
        match output {
            Output::Event(event) => self.events.push((from, event)),
            Output::Timer { at, timer } => self.timers.push((from, at, timer)),
            Output::Publish { topic, data } => {
                let source = self.id(from);
                for to in 0..self.engines.len() {
                    if !self.linked(from, to) {
                        continue;
                    }
                    self.gossip_seq += 1;
                    let input = Input::Gossip {
                        id: GossipId::new(&self.gossip_seq.to_be_bytes()),
                        from: source,
                        source: Some(source),
                        topic: topic.as_str().to_owned(),
                        data: data.clone(),
                    };
                    let out = self.engines[to].handle(input, now);
                    queue.extend(out.into_iter().map(|o| (to, o)));
                }
            }
            Output::SyncRequest {
                peer,
                topic,
                request,
            } => {
                let me = self.id(from);
                let Some(to) = self.index(peer).filter(|to| self.linked(from, *to)) else {
                    let out = self.engines[from].handle(Input::SyncFailed { peer, topic }, now);
                    queue.extend(out.into_iter().map(|o| (from, o)));
                    return;
                };
                let answer = self.engines[to].handle(
                    Input::SyncRequest {
                        peer: me,
                        reply: 0,
                        request,
                    },
                    now,
                );
                for o in answer {
                    match o {
                        Output::SyncResponse { response, .. } => {
                            let back = self.engines[from].handle(
                                Input::SyncResponse {
                                    peer,
                                    topic: topic.clone(),
                                    response,
                                },
                                now,
                            );
                            queue.extend(back.into_iter().map(|o| (from, o)));
                        }
                        o => queue.push((to, o)),
                    }
                }
            }
            // Verdicts, dials, subscriptions, voice: not modelled.
            _ => {}
        }
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        self.links.contains(&(a.min(b), a.max(b)))
    }

    fn connect(&mut self, a: usize, b: usize) {
        self.links.insert((a.min(b), a.max(b)));
        let topic = topic().as_str().to_owned();
        for (x, y) in [(a, b), (b, a)] {
            let peer = self.id(y);
            self.input(
                x,
                Input::Connected {
                    peer,
                    addr: "/memory/1".parse().unwrap(),
                    first: true,
                },
            );
            self.input(
                x,
                Input::Subscribed {
                    peer,
                    topic: topic.clone(),
                },
            );
        }
    }

    fn disconnect(&mut self, a: usize, b: usize) {
        self.links.remove(&(a.min(b), a.max(b)));
        for (x, y) in [(a, b), (b, a)] {
            let peer = self.id(y);
            self.input(
                x,
                Input::Disconnected {
                    peer,
                    addr: "/memory/1".parse().unwrap(),
                    remaining: 0,
                },
            );
        }
    }

    /// Move the clock on by `ms`, firing the delivery and presence timers that fall due, in
    /// order; returns the sync sessions engine `i` started from its delivery timer.
    fn advance(&mut self, ms: u64, i: usize) -> usize {
        let end = self.ms + ms;
        let mut started = 0;
        loop {
            self.timers
                .retain(|(_, _, t)| matches!(t, Timer::Deliver | Timer::Presence(_)));
            let due = self
                .timers
                .iter()
                .enumerate()
                .filter(|(_, (_, at, _))| *at <= self.base + Duration::from_millis(end))
                .min_by_key(|(_, (_, at, _))| *at)
                .map(|(n, _)| n);
            let Some(n) = due else { break };
            let (engine, at, timer) = self.timers.remove(n);
            self.ms = self
                .ms
                .max(at.saturating_duration_since(self.base).as_millis() as u64);
            let chase = engine == i && timer == Timer::Deliver;
            let count = self.input(engine, Input::Timer(timer));
            if chase {
                started += count;
            }
        }
        self.ms = end;
        started
    }

    fn send(&mut self, i: usize, text: &str) -> String {
        let before = self.events.len();
        self.input(
            i,
            Input::Command(Command::Send {
                room: "lobby".into(),
                text: text.into(),
            }),
        );
        self.events[before..]
            .iter()
            .find_map(|(from, e)| match e {
                Event::Sent { id, .. } if *from == i => Some(id.clone()),
                _ => None,
            })
            .expect("sent")
    }

    /// The `delivered` events engine `i` raised for message `id`: (holders, N, M).
    fn delivered(&self, i: usize, id: &str) -> Vec<(Vec<String>, usize, usize)> {
        self.events
            .iter()
            .filter_map(|(from, e)| match e {
                Event::Delivered {
                    id: d,
                    peers,
                    members,
                    members_holding,
                    ..
                } if *from == i && d == id => Some((peers.clone(), *members_holding, *members)),
                _ => None,
            })
            .collect()
    }
}

/// Alice (0), bob (1) and carol (2) meet and hear each other's presence.
fn three_in_a_room() -> Mesh {
    let mut mesh = Mesh::new(3);
    mesh.connect(0, 1);
    mesh.connect(0, 2);
    mesh.connect(1, 2);
    // Presence answers newcomers within 0.5–1.5 s.
    mesh.advance(2_000, 0);
    for i in 0..3 {
        assert_eq!(
            mesh.engines[i].members(&topic()).len(),
            2,
            "engine {i} heard the two others"
        );
    }
    mesh
}

#[test]
fn holders_grow_as_members_get_the_message_and_each_growth_is_reported_once() {
    let mut mesh = three_in_a_room();
    let (bob, carol) = (mesh.id(1).to_string(), mesh.id(2).to_string());
    // Carol goes away; alice writes. Gossip reaches bob but proves nothing.
    mesh.disconnect(0, 2);
    mesh.disconnect(1, 2);
    let id = mesh.send(0, "pump 4 is running hot");
    assert!(
        mesh.delivered(0, &id).is_empty(),
        "nobody is known to hold it yet"
    );
    // The chase a second later syncs with bob: 1 of the 2 members hold it.
    mesh.advance(1_500, 0);
    assert_eq!(mesh.delivered(0, &id), vec![(vec![bob.clone()], 1, 2)]);
    // Nothing more to learn while carol is away: no new event, however long we wait.
    mesh.advance(CHASE_FOR.as_millis() as u64, 0);
    assert_eq!(mesh.delivered(0, &id).len(), 1);
    // Carol comes back: the session her subscription starts marks her; the event lists both.
    mesh.connect(0, 2);
    mesh.advance(1_000, 0);
    assert_eq!(
        mesh.delivered(0, &id),
        vec![
            (vec![bob.clone()], 1, 2),
            (vec![bob.clone(), carol.clone()], 2, 2)
        ]
    );
    // Later sessions with the same peers (a reconnect) add nobody: no event.
    mesh.disconnect(0, 1);
    mesh.connect(0, 1);
    mesh.advance(2_000, 0);
    assert_eq!(mesh.delivered(0, &id).len(), 2);
    // Bob and carol wrote nothing: they report nothing.
    assert!(mesh
        .events
        .iter()
        .all(|(from, e)| *from == 0 || !matches!(e, Event::Delivered { .. })));
}

#[test]
fn a_burst_is_chased_in_one_round_and_the_rounds_stop_once_every_peer_holds_it() {
    let mut mesh = three_in_a_room();
    let ids: Vec<String> = (0..5).map(|n| mesh.send(0, &format!("line {n}"))).collect();
    // Nothing before the debounce; then one session per room peer, for the whole burst.
    assert_eq!(mesh.advance(900, 0), 0);
    assert_eq!(mesh.advance(200, 0), 2);
    // Everyone holds everything: no further rounds.
    assert_eq!(mesh.advance(10_000, 0), 0);
    // The first holder is reported at once; the second, learned in the same instant, within
    // the flush interval: one event per message per growth.
    let both: HashSet<String> = [mesh.id(1).to_string(), mesh.id(2).to_string()].into();
    for id in &ids {
        let events = mesh.delivered(0, id);
        assert_eq!(events.len(), 2, "{id}: {events:?}");
        let (first, second) = (&events[0], &events[1]);
        assert!(
            first.0.len() == 1 && both.contains(&first.0[0]),
            "{events:?}"
        );
        assert_eq!((first.1, first.2), (1, 2));
        let holders: HashSet<String> = second.0.iter().cloned().collect();
        assert_eq!(holders, both);
        assert_eq!(second.0[0], first.0[0], "in the order learned");
        assert_eq!((second.1, second.2), (2, 2));
    }
}

#[test]
fn a_relay_that_holds_it_shows_as_a_holder_but_not_as_a_member() {
    let mut mesh = three_in_a_room();
    let id = mesh.send(0, "for the relay");
    let relay = Keypair::generate_ed25519().public().to_peer_id();
    let message = hark_proto::MessageId(hex::decode(&id).unwrap().try_into().unwrap());
    mesh.engines[0].held_by(&topic(), relay, message);
    let out = std::mem::take(&mut mesh.engines[0].out);
    let delivered: Vec<&Event> = out
        .iter()
        .filter_map(|o| match o {
            Output::Event(e @ Event::Delivered { .. }) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(
        delivered,
        vec![&Event::Delivered {
            room: "lobby".into(),
            id: id.clone(),
            peers: vec![relay.to_string()],
            members: 2,
            members_holding: 0,
        }]
    );
}

#[test]
fn a_direct_message_room_has_one_member_the_other_side() {
    let mut mesh = Mesh::new(2);
    mesh.connect(0, 1);
    let bob = mesh.id(1);
    mesh.input(
        0,
        Input::Command(Command::Dm {
            to: bob.to_string(),
            text: "hi".into(),
        }),
    );
    let name = RoomName::direct(&bob.to_string()).unwrap();
    let room = mesh.engines[0]
        .book
        .get(&name)
        .expect("the DM room")
        .clone();
    assert_eq!(mesh.engines[0].members(&room.chat_topic), vec![bob]);
}

#[test]
fn what_is_remembered_stays_bounded() {
    let mut mesh = Mesh::new(1);
    let rooms = MAX_TRACKED_ALL / MAX_TRACKED + 1;
    for r in 0..rooms {
        mesh.input(
            0,
            Input::Command(Command::Join {
                room: Some(format!("r{r}")),
                invite: None,
            }),
        );
    }
    for r in 0..rooms {
        for n in 0..MAX_TRACKED + 3 {
            mesh.input(
                0,
                Input::Command(Command::Send {
                    room: format!("r{r}"),
                    text: format!("{n}"),
                }),
            );
        }
    }
    assert_eq!(mesh.engines[0].delivery.tracked(), MAX_TRACKED_ALL);
    // Strangers heard in a room: at most MAX_MEMBERS are kept.
    for _ in 0..MAX_MEMBERS + 50 {
        let stranger = Keypair::generate_ed25519().public().to_peer_id();
        mesh.engines[0].heard_in(&topic(), stranger);
    }
    assert_eq!(mesh.engines[0].delivery.heard(), MAX_MEMBERS);
    assert_eq!(mesh.engines[0].members(&topic()).len(), MAX_MEMBERS);
    // The timers it asks for stay few: one delivery timer at a time, not one per message.
    let deliver = mesh
        .timers
        .iter()
        .filter(|(_, _, t)| *t == Timer::Deliver)
        .count();
    assert!(deliver <= 2, "{deliver} delivery timers");
}

#[test]
fn after_a_restart_our_recent_messages_are_followed_again() {
    let mut mesh = Mesh::new(2);
    // Written alone, then the node restarts before meeting anyone.
    let id = mesh.send(0, "written before the restart");
    mesh.advance(5_000, 0);
    mesh.restart(0);
    assert_eq!(mesh.engines[0].delivery.tracked(), 1);
    // The session on meeting bob began after it was stored: bob holds it.
    mesh.connect(0, 1);
    mesh.advance(2_000, 0);
    let bob = mesh.id(1).to_string();
    assert_eq!(mesh.delivered(0, &id), vec![(vec![bob], 1, 1)]);
}
