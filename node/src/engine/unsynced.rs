//! The node's own messages between their commit and their fsync.
//!
//! A message the user sends is committed at once ([`Durability::Synced`]: it survives a crash
//! of the process) and the store fsyncs it off the event loop ([`Storage::request_sync`]).
//! Until that fsync is done nothing about it leaves the node: no `sent`, no publish, and no
//! sync traffic, which could carry it from the room's document. Were it to leave first and
//! the power fail, the restarted node would make a different change under the same Automerge
//! sequence number, which peers that hold the first would refuse for good. Meanwhile the event
//! loop goes on with everything else: forwarding, showing and storing others' messages.

use std::collections::VecDeque;

use hark_proto::{Body, MessageRecord, Topic};

use super::history::message_event;
use super::{fail, CommandError, Engine, Output, Storage};
use crate::api::Event;

/// A sent message waiting for the fsync of `ticket`.
pub(super) struct OwnSend {
    ticket: u64,
    topic: Topic,
    /// The room's name when it was sent: `sent` names it even if the room was left since.
    room: String,
    record: MessageRecord,
    shard: u32,
    change: Vec<u8>,
}

#[derive(Default)]
pub(super) struct Unsynced {
    /// In ticket order, which is the order they were sent in.
    sends: VecDeque<OwnSend>,
    /// An fsync failed: the store no longer keeps the promise of `sent` (the failed writes are
    /// committed and readable, but may not be on the disk). From then on no send goes out and
    /// no sync traffic either, since it could carry them, until the node is restarted.
    failed: Option<String>,
    /// Sync requests and answers made while some send waited, each with the last ticket then
    /// asked for: it goes out once that ticket is done (not when no send waits at all, which
    /// a steady stream of sends on a slow disk might never allow).
    held_back: Vec<(u64, Output)>,
}

impl<S: Storage> Engine<S> {
    /// A message of ours is committed: tell of it and publish it once it is durable, now if
    /// the store says it is.
    pub(super) fn announce_when_durable(
        &mut self,
        topic: Topic,
        record: MessageRecord,
        shard: u32,
        change: Vec<u8>,
    ) -> Result<(), CommandError> {
        if let Some(failed) = &self.unsynced.failed {
            return Err(fail(
                "store_failed",
                format!("the disk failed to store an earlier message ({failed}); restart the node"),
            ));
        }
        let room = self.room_name(&topic);
        match self.store.request_sync() {
            Ok(None) if !self.unsynced.sends.is_empty() => {
                // Sends wait for tickets, so the store had an fsync thread, and now it has
                // none: those will fail (their `sent` belongs to the clients that made them,
                // not to this command), and so does this one.
                let reason = "the store's fsync thread has stopped".to_owned();
                self.disk_failed(reason.clone());
                Err(fail("store_failed", reason))
            }
            Ok(None) => {
                self.announce_sent(&topic, room, record, shard, change);
                Ok(())
            }
            Ok(Some(ticket)) => {
                self.unsynced.sends.push_back(OwnSend {
                    ticket,
                    topic,
                    room,
                    record,
                    shard,
                    change,
                });
                self.out.push(Output::AwaitSync { ticket });
                Ok(())
            }
            Err(e) => {
                self.disk_failed(e.clone());
                Err(fail("store_failed", e))
            }
        }
    }

    /// The store could not make our writes durable: nothing that could carry them leaves any
    /// more ([`Unsynced::failed`]).
    fn disk_failed(&mut self, reason: String) {
        tracing::error!("the disk failed to store our messages: {reason}");
        self.unsynced.failed = Some(reason);
        self.unsynced.held_back.clear();
    }

    /// The store's fsync for `ticket` is done (or failed): the sends it covers go out, or
    /// fail, in the order they were made.
    pub(super) fn on_synced(&mut self, ticket: u64, result: Result<(), String>) {
        while self
            .unsynced
            .sends
            .front()
            .is_some_and(|send| send.ticket <= ticket)
        {
            let Some(send) = self.unsynced.sends.pop_front() else {
                break;
            };
            match &result {
                Ok(()) if self.unsynced.failed.is_none() => {
                    let OwnSend {
                        topic,
                        room,
                        record,
                        shard,
                        change,
                        ..
                    } = send;
                    self.announce_sent(&topic, room, record, shard, change);
                }
                Ok(()) => self.emit(Event::error(
                    "store_failed",
                    "the disk failed to store an earlier message; restart the node",
                )),
                Err(e) => {
                    self.disk_failed(e.clone());
                    self.emit(Event::error(
                        "store_failed",
                        format!("the message may not be on the disk: {e}"),
                    ));
                }
            }
        }
    }

    /// At the end of each input: sync traffic made while sends wait for their fsync waits
    /// for the last of them; what was held back for sends now all done goes out (after their
    /// publishes).
    pub(super) fn hold_back_sync(&mut self) {
        if self.unsynced.failed.is_some() {
            self.out.retain(|out| !is_sync_traffic(out));
            return;
        }
        if let Some(newest) = self.unsynced.sends.back().map(|send| send.ticket) {
            let (held, rest): (Vec<Output>, Vec<Output>) = std::mem::take(&mut self.out)
                .into_iter()
                .partition(is_sync_traffic);
            self.unsynced
                .held_back
                .extend(held.into_iter().map(|out| (newest, out)));
            self.out = rest;
        }
        if self.unsynced.held_back.is_empty() {
            return;
        }
        let oldest_waiting = self.unsynced.sends.front().map(|send| send.ticket);
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unsynced.held_back)
            .into_iter()
            .partition(|(upto, _)| oldest_waiting.is_none_or(|oldest| *upto < oldest));
        self.unsynced.held_back = waiting;
        self.out.extend(done.into_iter().map(|(_, out)| out));
    }

    /// Whether the answer to a peer's sync request (`reply`, the driver's id for it) is held
    /// back until our sends are durable: the driver keeps its channel until then.
    pub fn holds_reply(&self, reply: u64) -> bool {
        self.unsynced.held_back.iter().any(
            |(_, out)| matches!(out, Output::SyncResponse { reply: held, .. } if *held == reply),
        )
    }

    /// `sent` to the client that sent it, the message to the node's other clients, then the
    /// message to the room: all once it is durable.
    pub(super) fn announce_sent(
        &mut self,
        topic: &Topic,
        room: String,
        record: MessageRecord,
        shard: u32,
        change: Vec<u8>,
    ) {
        self.emit(Event::Sent {
            room: room.clone(),
            id: record.id.to_hex(),
        });
        let id = record.id;
        // For the node's other clients (the driver keeps it from the one that sent it).
        if let Some(message) = self.index_entry(record) {
            self.emit(message_event(&room, message));
        }
        self.publish_as(topic, id, Body::Change { shard, change });
        self.stored_own(topic, id);
    }
}

/// What could carry our changes from a room's document to a peer.
fn is_sync_traffic(out: &Output) -> bool {
    matches!(
        out,
        Output::SyncRequest { .. }
            | Output::SyncResponse { .. }
            | Output::BlindRequest { .. }
            | Output::BlindResponse { .. }
    )
}
