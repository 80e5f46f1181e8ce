//! Voice: talk-spurt frames out (sealed, on the room's voice topic) and frames in (checked,
//! handed to the playout task). Voice is never stored; devices stay with the driver.

use hark_proto::seal;
use libp2p::gossipsub::MessageAcceptance;
use libp2p::PeerId;
use rand::Rng;

use super::{fail, CommandError, Engine, Output, Storage};
use crate::api::{short_id, Event};
use crate::rooms::Room;
use crate::validate;
use crate::voice::sender::Outgoing;

impl<S: Storage> Engine<S> {
    pub(super) fn voice_command(
        &mut self,
        typed: &str,
        wav: std::path::PathBuf,
    ) -> Result<(), CommandError> {
        let topic = self.room_topic(typed)?;
        if !frame_ms_supported(self.voice_frame_ms) {
            return Err(fail("bad_command", "voice frames are 10 or 20 ms"));
        }
        let room = self.room_name(&topic);
        self.out.push(Output::TalkWav { room, wav });
        Ok(())
    }

    /// A talk-spurt produced a frame, or finished.
    pub(super) fn on_voice_out(&mut self, out: Outgoing) {
        match out {
            Outgoing::Frame { room, frame } => {
                // The room may have been left mid-spurt: the frame is simply not sent.
                let Some(room) = self.book.find(&room).cloned() else {
                    return;
                };
                let data = seal::seal(&room.key, &room.voice_topic, &frame.encode(), &mut self.rng);
                self.out.push(Output::Publish {
                    topic: room.voice_topic,
                    data,
                });
            }
            Outgoing::Done { room, frames, .. } => self.emit(Event::VoiceSent { room, frames }),
            Outgoing::Failed { room, error, .. } => {
                self.emit(Event::error("voice_failed", format!("{room}: {error}")))
            }
        }
    }

    /// A frame on a room's voice topic: check it and pass it to the playout task.
    pub(super) fn on_voice_gossip(
        &mut self,
        room: &Room,
        source: Option<PeerId>,
        from: PeerId,
        data: &[u8],
    ) -> MessageAcceptance {
        let bytes = source.map(|p| p.to_bytes());
        match validate::check_voice(room, bytes.as_deref(), data) {
            Ok(frame) => {
                let talker = source.unwrap_or(from);
                let dropped_by_hook = self.voice_drop_percent > 0
                    && self.rng.gen_range(0..100u8) < self.voice_drop_percent;
                if !dropped_by_hook && talker != self.me {
                    let name = self
                        .names
                        .get(&talker)
                        .cloned()
                        .unwrap_or_else(|| short_id(&talker.to_string()).to_owned());
                    self.out.push(Output::Play {
                        room: room.name.to_string(),
                        from: talker,
                        name,
                        frame,
                    });
                }
                MessageAcceptance::Accept
            }
            Err(drop) => {
                *self.drops.entry(drop).or_default() += 1;
                if drop.penalise() {
                    MessageAcceptance::Reject
                } else {
                    MessageAcceptance::Ignore
                }
            }
        }
    }
}

/// Voice frames are 10 or 20 ms: anything else is refused early.
pub fn frame_ms_supported(frame_ms: u8) -> bool {
    matches!(frame_ms, 10 | 20)
}
