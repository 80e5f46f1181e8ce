//! The driver's share of `/hark/blind/1`: it tells the engine which peers are blind relays
//! (identify lists the protocol) and moves the engine's requests and answers over libp2p.

use std::collections::HashMap;

use hark_proto::blind::{BlindRequest, BlindResponse, PROTOCOL};
use libp2p::request_response::{self, Message, OutboundRequestId, ResponseChannel};
use libp2p::{identify, PeerId};

use super::Driver;
use crate::engine::Input;

/// Blind requests in flight, both ways.
#[derive(Default)]
pub(super) struct BlindIo {
    /// Ours: the engine's token for each.
    requests: HashMap<OutboundRequestId, (PeerId, u64)>,
    /// Peers': the channel to answer on, until the engine answers.
    replies: HashMap<u64, ResponseChannel<BlindResponse>>,
    next_reply: u64,
}

impl Driver {
    pub(super) fn on_identify(&mut self, event: identify::Event) {
        if let identify::Event::Received { peer_id, info, .. } = event {
            if info.protocols.iter().any(|p| p.as_ref() == PROTOCOL) {
                self.handle(Input::BlindRelay { peer: peer_id });
            }
        }
    }

    pub(super) fn send_blind_request(&mut self, peer: PeerId, token: u64, request: BlindRequest) {
        let id = self
            .swarm
            .behaviour_mut()
            .blind
            .send_request(&peer, request);
        self.blind.requests.insert(id, (peer, token));
    }

    pub(super) fn send_blind_response(&mut self, reply: u64, response: BlindResponse) {
        let sent = self.blind.replies.remove(&reply).map(|channel| {
            self.swarm
                .behaviour_mut()
                .blind
                .send_response(channel, response)
        });
        if !matches!(sent, Some(Ok(()))) {
            tracing::debug!("blind response not sent: connection gone");
        }
    }

    pub(super) fn on_blind_event(
        &mut self,
        event: request_response::Event<BlindRequest, BlindResponse>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                Message::Request {
                    request, channel, ..
                } => {
                    let reply = self.blind.next_reply;
                    self.blind.next_reply += 1;
                    self.blind.replies.insert(reply, channel);
                    self.handle(Input::BlindRequest {
                        peer,
                        reply,
                        request,
                    });
                    // The engine answers at once; a request it did not answer is not kept.
                    self.blind.replies.remove(&reply);
                }
                Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some((peer, token)) = self.blind.requests.remove(&request_id) {
                        self.handle(Input::BlindResponse {
                            peer,
                            token,
                            response,
                        });
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, "blind request failed: {error}");
                if let Some((peer, token)) = self.blind.requests.remove(&request_id) {
                    self.handle(Input::BlindFailed { peer, token });
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, "blind request not answered: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}
