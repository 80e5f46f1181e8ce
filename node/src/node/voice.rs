//! The event loop's voice side: talk-spurts out (sealed, on the room's voice topic), frames in
//! (checked, handed to the playout task), and the controls the TUI uses for devices.

use hark_proto::seal;
use libp2p::gossipsub::{IdentTopic, MessageAcceptance, MessageId as GossipId, PublishError};
use libp2p::PeerId;
use rand::rngs::OsRng;
use rand::Rng;

use super::{fail, CommandError, Runtime};
use crate::api::{short_id, Event};
use crate::rooms::Room;
use crate::validate::{self, Drop};
use crate::voice::receiver::ReceiverInput;
use crate::voice::sender::{self, Outgoing};
use crate::voice::{AudioSink, AudioSource};

/// Requests from an embedding client that cannot travel as JSON (devices, not files).
pub enum Control {
    /// Talk in a room from this source until it says the spurt is over.
    Talk {
        room: String,
        source: Box<dyn AudioSource>,
    },
    /// Play received voice here.
    SetSink(Box<dyn AudioSink>),
    /// Stop (or resume) playing one peer's voice.
    Mute { peer: PeerId, muted: bool },
}

impl Runtime {
    pub(super) fn voice_command(
        &mut self,
        room: &str,
        wav: std::path::PathBuf,
    ) -> Result<(), CommandError> {
        let room = self.room(room)?;
        sender::spawn_wav(
            room.name.to_string(),
            wav,
            self.voice_frame_ms,
            self.voice_out_tx.clone(),
        );
        Ok(())
    }

    pub(super) async fn on_control(&mut self, control: Control) {
        match control {
            Control::Talk { room, source } => match self.room(&room) {
                Ok(room) => sender::spawn(
                    room.name.to_string(),
                    source,
                    self.voice_frame_ms,
                    self.voice_out_tx.clone(),
                ),
                Err(CommandError { code, detail }) => {
                    self.emit(Event::error(code, detail)).await;
                }
            },
            Control::SetSink(sink) => {
                let _ = self.receiver.send(ReceiverInput::SetSink(sink)).await;
            }
            Control::Mute { peer, muted } => {
                let _ = self
                    .receiver
                    .send(ReceiverInput::Mute { peer, muted })
                    .await;
            }
        }
    }

    /// A talk-spurt produced a frame, or finished.
    pub(super) async fn on_voice_out(&mut self, out: Outgoing) {
        match out {
            Outgoing::Frame { room, frame } => {
                // The room may have been left mid-spurt: the frame is simply not sent.
                let Some(room) = self.rooms.find(&room).cloned() else {
                    return;
                };
                let sealed = seal::seal(&room.key, &room.voice_topic, &frame.encode(), &mut OsRng);
                let topic = IdentTopic::new(room.voice_topic.as_str());
                match self.swarm.behaviour_mut().gossipsub.publish(topic, sealed) {
                    Ok(_) | Err(PublishError::NoPeersSubscribedToTopic) => {}
                    Err(e) => tracing::debug!(room = %room.name, "voice frame not sent: {e}"),
                }
            }
            Outgoing::Done { room, frames } => {
                self.emit(Event::VoiceSent { room, frames }).await;
            }
            Outgoing::Failed { room, error } => {
                self.emit(Event::error("voice_failed", format!("{room}: {error}")))
                    .await;
            }
        }
    }

    /// A frame on a room's voice topic: check it and pass it to the playout task. Voice is
    /// never stored.
    pub(super) fn on_voice_gossip(
        &mut self,
        room: &Room,
        source: Option<PeerId>,
        data: &[u8],
        message_id: &GossipId,
        propagation_source: &PeerId,
    ) {
        let bytes = source.map(|p| p.to_bytes());
        let verdict = match validate::check_voice(room, bytes.as_deref(), data) {
            Ok(frame) => {
                let from = source.unwrap_or(*propagation_source);
                let dropped_by_hook = self.voice_drop_percent > 0
                    && OsRng.gen_range(0..100u8) < self.voice_drop_percent;
                if !dropped_by_hook && from != self.local_peer {
                    let name = self
                        .names
                        .get(&from)
                        .cloned()
                        .unwrap_or_else(|| short_id(&from.to_string()).to_owned());
                    let input = ReceiverInput::Frame {
                        room: room.name.to_string(),
                        from,
                        name,
                        frame,
                    };
                    // A full playout queue means the receiver is far behind: drop, never block.
                    if self.receiver.try_send(input).is_err() {
                        *self.drops.entry(Drop::Overloaded).or_default() += 1;
                    }
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
        };
        self.report(message_id, propagation_source, verdict);
    }
}

/// Reject a voice command early when the frame length is not one Opus supports here.
pub(super) fn check_frame_ms(frame_ms: u8) -> Result<(), CommandError> {
    if matches!(frame_ms, 10 | 20) {
        Ok(())
    } else {
        Err(fail("bad_command", "voice frames are 10 or 20 ms"))
    }
}
