//! The client's commands.

use std::time::Duration;

use hark_proto::envelope::check_own_nick;
use hark_proto::{Body, MessageKind, RoomKey, RoomName, Topic};

use super::{fail, CommandError, Engine, Output, RoomState, Storage};
use crate::api::{Command, Event};
use crate::rooms::{parse_invite, parse_join_target, JoinError, Room};

/// At most one typing notice per room this often.
const TYPING_INTERVAL: Duration = Duration::from_secs(2);

impl<S: Storage> Engine<S> {
    pub(super) fn on_command(&mut self, command: Command) {
        let result = match command {
            Command::Send { room, text } => self.send_message(&room, MessageKind::Text, text),
            Command::Me { room, text } => self.send_message(&room, MessageKind::Me, text),
            Command::Alert { room, text } => self.send_message(&room, MessageKind::Alert, text),
            Command::History {
                room,
                limit,
                before,
            } => self.history_command(&room, limit, before.as_deref()),
            Command::Search { room, text, limit } => self.search(&room, text, limit),
            Command::Nick { name } => self.set_nick(name),
            Command::Invite { room } => self.invite(&room),
            Command::Voice { room, wav } => self.voice_command(&room, wav),
            Command::Typing { room } => self.send_typing(&room),
            Command::Join { room, invite } => match (room, invite) {
                (Some(room), None) => self.join(parse_join_target(&room), &room),
                (None, Some(invite)) => self.join(parse_invite(&invite), &invite),
                (None, None) => Err(fail("bad_command", "join needs \"room\" or \"invite\"")),
                (Some(_), Some(_)) => Err(fail(
                    "bad_command",
                    "join takes \"room\" or \"invite\", not both",
                )),
            },
            Command::Create { room } => self.create(&room),
            Command::Leave { room } => self.leave(&room),
            Command::Verify { peer, confirm } => self.verify(&peer, confirm),
            Command::Dm { to, text } => self.direct_message(&to, text),
            Command::Kick { room, peer } => self.kick(&room, &peer),
            Command::Promote { room, peer } => self.promote(&room, &peer),
            Command::Members { room } => self.members_command(&room),
            Command::VerifiedPeers => {
                self.verified_list();
                Ok(())
            }
            Command::Peers => {
                self.load_verified();
                let peers = self.peer_list();
                self.emit(Event::Peers { peers });
                Ok(())
            }
            // The driver stops; nothing for the engine to decide.
            Command::Quit => Ok(()),
        };
        if let Err(CommandError { code, detail }) = result {
            self.emit(Event::error(code, detail));
        }
    }

    fn set_nick(&mut self, name: String) -> Result<(), CommandError> {
        check_own_nick(&name).map_err(|why| fail("bad_name", format!("{name:?}: {why}")))?;
        self.name = name.clone();
        // Tell our rooms at once, so people lists show the new name.
        let mut topics: Vec<Topic> = self.rooms.keys().cloned().collect();
        topics.sort();
        for topic in topics {
            self.publish(&topic, Body::Presence);
        }
        self.emit(Event::Nick { name });
        Ok(())
    }

    fn invite(&mut self, typed: &str) -> Result<(), CommandError> {
        let topic = self.room_topic(typed)?;
        let name = self.rooms[&topic].room.name.clone();
        if name.direct_peer().is_some() {
            return Err(fail(
                "direct_room",
                format!("{name} is a direct-message room: it has no invite"),
            ));
        }
        let Some(invite) = self
            .members_invite(&name)
            .or_else(|| self.book.invite(&name))
        else {
            return Err(fail(
                "public_room",
                format!("{name} is public: others join it by name"),
            ));
        };
        self.emit(Event::Invite {
            room: name.to_string(),
            invite,
        });
        Ok(())
    }

    fn send_typing(&mut self, typed: &str) -> Result<(), CommandError> {
        let topic = self.room_topic(typed)?;
        let now = self.now.at;
        let Some(room) = self.rooms.get_mut(&topic) else {
            return Ok(());
        };
        if room
            .last_typing
            .is_some_and(|at| now.duration_since(at) < TYPING_INTERVAL)
        {
            return Ok(());
        }
        room.last_typing = Some(now);
        self.publish(&topic, Body::Typing);
        Ok(())
    }

    fn join(&mut self, target: Result<Room, JoinError>, typed: &str) -> Result<(), CommandError> {
        let room = target.map_err(|e| match e {
            JoinError::Invite(e) => fail("bad_invite", e.to_string()),
            e => fail("bad_room", e.to_string()),
        })?;
        let name = room.name.to_string();
        self.add_room(room.clone())?;
        if room.private {
            self.members_joined(&room, typed);
        }
        self.emit(Event::Joined { room: name });
        Ok(())
    }

    fn create(&mut self, name: &str) -> Result<(), CommandError> {
        let name = RoomName::parse(name).map_err(|e| fail("bad_room", e.to_string()))?;
        if self.book.get(&name).is_some() {
            return Err(fail(
                "room_exists",
                format!("already in a room named {name}"),
            ));
        }
        let room = Room::new(name.clone(), RoomKey::random(&mut self.rng), true);
        self.add_room(room.clone())?;
        self.members_created(&room);
        let invite = self
            .members_invite(&name)
            .or_else(|| self.book.invite(&name))
            .unwrap_or_default();
        self.emit(Event::Created {
            room: name.to_string(),
            invite,
        });
        self.emit(Event::Joined {
            room: name.to_string(),
        });
        Ok(())
    }

    pub(super) fn add_room(&mut self, room: Room) -> Result<(), CommandError> {
        let added = self
            .book
            .insert(room.clone())
            .map_err(|e| fail("room_exists", e.to_string()))?;
        if !added {
            return Ok(());
        }
        if let Err(e) = self.store.save_room(&room.stored(), self.wall_ms()) {
            self.book.remove(&room.name);
            return Err(fail("store_failed", e));
        }
        let topic = room.chat_topic.clone();
        self.out.push(Output::Subscribe(room.chat_topic.clone()));
        self.out.push(Output::Subscribe(room.voice_topic.clone()));
        self.rooms.insert(topic.clone(), RoomState::new(room));
        self.sync_new_room(&topic);
        let soon = self.presence_soon();
        self.schedule_presence(&topic, soon);
        Ok(())
    }

    fn leave(&mut self, typed: &str) -> Result<(), CommandError> {
        let topic = self.room_topic(typed)?;
        let Some(room) = self.rooms.get(&topic).map(|r| r.room.clone()) else {
            return Err(fail("not_joined", format!("not in a room named {typed:?}")));
        };
        self.store
            .forget_room(&room.name)
            .map_err(|e| fail("store_failed", e))?;
        self.members_left(&room.name);
        self.book.remove(&room.name);
        // Everything the engine knew of the room goes in one step.
        self.rooms.remove(&topic);
        self.delivery.forget_room(&topic);
        self.out.push(Output::Unsubscribe(room.chat_topic));
        self.out.push(Output::Unsubscribe(room.voice_topic));
        self.emit(Event::Left {
            room: room.name.to_string(),
        });
        Ok(())
    }
}
