//! A message written by someone this node speaks for: a web user of `--web` (node/src/web/),
//! whose Ed25519 key the node holds. The record is signed with *their* key and names them as
//! author, and the Automerge change is theirs (its actor), so every node shows and checks it
//! as theirs (`history::authorship`); the gossip envelope stays this node's, as for any
//! message it relays.

use hark_proto::{Body, MessageId, MessageKind, MessageRecord};
use libp2p::identity::Keypair;

use super::{fail, CommandError, Engine, Storage};
use crate::api::Event;
use crate::history::authorship;

/// One message to send under another identity ([`super::Input::SendAs`]).
#[derive(Debug)]
pub struct SendAs {
    /// The author's key: the record is signed with it and names its peer id.
    pub identity: Keypair,
    /// The author's display name.
    pub name: String,
    pub room: String,
    pub kind: MessageKind,
    pub text: String,
}

impl<S: Storage> Engine<S> {
    pub(super) fn on_send_as(&mut self, send: Box<SendAs>) {
        if let Err(CommandError { code, detail }) = self.send_as(*send) {
            self.emit(Event::error(code, detail));
        }
    }

    /// Like `send_message`, but the record is the other identity's; and since the message is
    /// not this node's own, its other clients (the operator, other web users) get it as a
    /// `message` event, as they would from any peer.
    fn send_as(&mut self, send: SendAs) -> Result<(), CommandError> {
        let topic = self.room_topic(&send.room)?;
        hark_proto::envelope::check_own_nick(&send.name)
            .map_err(|why| fail("bad_name", format!("{:?}: {why}", send.name)))?;
        if send.text.trim().is_empty() {
            return Err(fail("bad_command", "text is empty"));
        }
        if send.text.len() > hark_proto::limits::MAX_TEXT_BYTES {
            return Err(fail("too_long", "text is over the 16 KiB limit"));
        }
        let now = self.wall_ms();
        let mut record = MessageRecord {
            id: MessageId::random(&mut self.rng),
            author: send.identity.public().to_peer_id().to_bytes(),
            name: send.name,
            hlc: self.clock.tick(now),
            kind: send.kind,
            text: send.text,
            signature: Vec::new(),
        };
        authorship::sign(&mut record, &send.identity, topic.as_str());
        let added = self
            .history(&topic)
            .map_err(|e| fail("store_failed", e))?
            .add_local_as(&record)
            .map_err(|e| fail("history_failed", e.to_string()))?;
        let (shard, change) = (added.shard, added.bytes.clone());
        // Durable before anyone hears of it, as for our own messages.
        let fresh = self
            .persist(&topic, vec![added])
            .map_err(|e| fail("store_failed", e))?;
        let room = self.room_name(&topic);
        self.emit(Event::Sent {
            room: room.clone(),
            id: record.id.to_hex(),
        });
        for message in fresh {
            self.emit(super::history::message_event(&room, message));
        }
        self.publish_as(&topic, record.id, Body::Change { shard, change });
        self.stored_own(&topic, record.id);
        Ok(())
    }
}
