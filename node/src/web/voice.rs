//! Push-to-talk for the browser, over one WebSocket per page (`GET /web/voice`).
//!
//! Page → node: a text message `{"type":"start","room":R,"codec":"opus"|"pcm"}` begins a
//! talk-spurt; then each binary message is one 20 ms frame — an Opus packet the page's
//! WebCodecs `AudioEncoder` made, or, where the browser has no Opus encoder, 960 samples of
//! 16-bit little-endian 48 kHz mono PCM that the node encodes; `{"type":"stop"}` ends it. The
//! node stamps each frame (spurt id, sequence, capture time) and publishes it on the room's
//! voice topic like a frame from its own microphone; it also plays it here as the web user's,
//! so the node's other users hear them.
//!
//! Node → page: what the node plays out (its jitter buffers, concealment and mix, as for a
//! speaker) in 10 ms binary messages of 16-bit little-endian 48 kHz mono PCM, to pages whose
//! user is in a room where someone is talking, and which are not talking themselves. The page plays them through a short buffer of
//! its own (node/web/voice.js).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::{SinkExt, StreamExt};
use hark_proto::VoiceFrame;
use rand::Rng;
use serde::Deserialize;
use tokio::sync::broadcast;

use super::routes::{lock, WebState};
use super::users::WebUser;
use crate::api::Event;
use crate::control::{Filter, Request};
use crate::http::ApiError;
use crate::node::ClientLink;
use crate::voice::codec::{frame_samples, VoiceEncoder};
use crate::voice::AudioSink;

/// Played-out audio waiting for a slow page, at most (10 ms each): past this it skips ahead.
const AUDIO_QUEUE: usize = 50;
/// A page's frames are 20 ms.
const FRAME_MS: u8 = 20;
/// After its own spurt, how long a page still gets no audio (the node's playout of it).
const OWN_VOICE_TAIL: std::time::Duration = std::time::Duration::from_millis(400);
/// A page may send frames at the pace it captures them, up to this many ahead of the spurt's
/// elapsed time (frames arrive in bursts after a stall of the page, the network or this
/// node); beyond, frames are dropped rather than flooded onto the mesh.
const AHEAD_FRAMES: u64 = 50;
/// The largest message a page may send (a PCM frame is 1920 bytes; Opus far less).
const MAX_MESSAGE: usize = 16 * 1024;

/// Who is talking where (from `voice_start`/`voice_end`), and the played-out audio.
#[derive(Clone)]
pub struct VoiceHub {
    audio: broadcast::Sender<Arc<[u8]>>,
    talking: Arc<Mutex<HashSet<(String, String)>>>,
}

/// The node's speaker, as far as the pages are concerned.
pub struct WebSink {
    audio: broadcast::Sender<Arc<[u8]>>,
}

impl AudioSink for WebSink {
    fn play(&mut self, samples: &[i16]) {
        if self.audio.receiver_count() == 0 {
            return;
        }
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        // No page listening, or all behind: nothing to do, never wait.
        let _ = self.audio.send(bytes.into());
    }
}

/// Two sinks fed the same audio: a terminal's speaker and the web pages (`hark --web`).
pub struct Both(pub Box<dyn AudioSink>, pub Box<dyn AudioSink>);

impl AudioSink for Both {
    fn play(&mut self, samples: &[i16]) {
        self.0.play(samples);
        self.1.play(samples);
    }
}

/// Start following who talks (an attached client for voice events only).
pub async fn hub(link: ClientLink) -> Result<(VoiceHub, WebSink), String> {
    let (audio, _) = broadcast::channel(AUDIO_QUEUE);
    let talking: Arc<Mutex<HashSet<(String, String)>>> = Arc::default();
    let filter = Filter {
        rooms: None,
        kinds: Some(["voice_start".to_owned(), "voice_end".to_owned()].into()),
    };
    let mut attached = link
        .attach(filter)
        .await
        .map_err(|e| format!("web voice: {e}"))?;
    let follow = talking.clone();
    tokio::spawn(async move {
        while let Some(answered) = attached.events.recv().await {
            match answered.event {
                Event::VoiceStart { room, from, .. } => {
                    lock(&follow).insert((room.to_lowercase(), from));
                }
                Event::VoiceEnd { room, from, .. } => {
                    lock(&follow).remove(&(room.to_lowercase(), from));
                }
                _ => {}
            }
        }
    });
    let sink = WebSink {
        audio: audio.clone(),
    };
    Ok((VoiceHub { audio, talking }, sink))
}

impl VoiceHub {
    /// Whether someone is talking in one of these rooms.
    fn audible_in(&self, rooms: &HashSet<String>) -> bool {
        lock(&self.talking)
            .iter()
            .any(|(room, _)| rooms.contains(room))
    }
}

/// `GET /web/voice`: the WebSocket, from pages of this origin only.
pub async fn upgrade(
    State(web): State<WebState>,
    Extension(user): Extension<WebUser>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // Cookies are SameSite=Strict already; the Origin check keeps other pages out for good.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
    let same_origin = match (host, origin) {
        (Some(host), Some(origin)) => origin.strip_prefix("https://") == Some(host),
        _ => false,
    };
    if !same_origin {
        return ApiError::new("unauthorized", "voice is for pages of this node only")
            .into_response();
    }
    ws.max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| session(socket, web, user))
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Control {
    Start {
        room: String,
        #[serde(default)]
        codec: Option<String>,
    },
    Stop,
}

/// One talk-spurt in progress.
struct Spurt {
    room: String,
    /// The talker, for this node's own playout.
    from: libp2p::PeerId,
    name: String,
    spurt: u32,
    seq: u16,
    pcm: bool,
    /// Encodes PCM frames, and the closing frame of every spurt.
    encoder: VoiceEncoder,
    frames: u32,
    started: std::time::Instant,
}

async fn session(socket: WebSocket, web: WebState, user: WebUser) {
    let (mut out, mut incoming) = socket.split();
    let mut audio = web.voice.audio.subscribe();
    let mut spurt: Option<Spurt> = None;
    // Like a radio, a page does not hear while it talks, nor its own voice played back just
    // after (this node plays web users' spurts for its other users).
    let mut deaf_until = tokio::time::Instant::now();
    let link = web.api.link().clone();
    loop {
        tokio::select! {
            message = incoming.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let answer = match serde_json::from_str::<Control>(text.as_str()) {
                        Ok(Control::Start { room, codec }) => {
                            finish(&mut spurt, &link).await;
                            match start(&web, &user, room, codec.as_deref()) {
                                Ok(started) => {
                                    let room = started.room.clone();
                                    spurt = Some(started);
                                    serde_json::json!({"type": "started", "room": room})
                                }
                                Err(e) => serde_json::json!({"type": "error", "detail": e}),
                            }
                        }
                        Ok(Control::Stop) => {
                            let frames = finish(&mut spurt, &link).await;
                            deaf_until = tokio::time::Instant::now() + OWN_VOICE_TAIL;
                            serde_json::json!({"type": "stopped", "frames": frames})
                        }
                        Err(e) => serde_json::json!({"type": "error", "detail": e.to_string()}),
                    };
                    if out.send(Message::Text(answer.to_string().into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Binary(bytes))) => {
                    if let Some(talking) = spurt.as_mut() {
                        if let Some(frame) = talking.frame(&bytes, false) {
                            if link.request(talking.request(frame)).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            chunk = audio.recv() => match chunk {
                Ok(chunk) => {
                    let rooms: HashSet<String> = lock(&web.users)
                        .by_id(&user.id)
                        .map(|u| u.rooms.iter().map(|r| r.to_lowercase()).collect())
                        .unwrap_or_default();
                    let own = spurt.is_some() || tokio::time::Instant::now() < deaf_until;
                    if !own
                        && web.voice.audible_in(&rooms)
                        && out.send(Message::Binary(chunk.to_vec().into())).await.is_err()
                    {
                        break;
                    }
                }
                // The page fell behind: it simply gets the newer audio.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    // A page that goes away mid-spurt ends it, so listeners do not wait for a timeout.
    finish(&mut spurt, &link).await;
}

fn start(
    web: &WebState,
    user: &WebUser,
    room: String,
    codec: Option<&str>,
) -> Result<Spurt, String> {
    let current = lock(&web.users)
        .by_id(&user.id)
        .ok_or("you are no longer a web user")?;
    let Some(room) = current
        .rooms
        .iter()
        .find(|r| r.eq_ignore_ascii_case(room.trim_start_matches('#')))
        .cloned()
    else {
        return Err(format!("you are not in a room named {room:?}"));
    };
    let pcm = match codec.unwrap_or("opus") {
        "opus" => false,
        "pcm" => true,
        other => return Err(format!("codec {other:?}: \"opus\" or \"pcm\"")),
    };
    let encoder = VoiceEncoder::new(FRAME_MS).map_err(|e| e.to_string())?;
    let mut rng = rand::thread_rng();
    Ok(Spurt {
        room,
        from: current.identity.public().to_peer_id(),
        name: current.name.clone(),
        spurt: rng.gen(),
        seq: rng.gen(),
        pcm,
        encoder,
        frames: 0,
        started: std::time::Instant::now(),
    })
}

impl Spurt {
    /// The frame as a request to the node: published, and played here as the web user's.
    fn request(&self, frame: VoiceFrame) -> Request {
        Request::VoiceFrame {
            room: self.room.clone(),
            from: self.from,
            name: self.name.clone(),
            frame,
        }
    }

    /// One frame from the page (Opus bytes, or PCM to encode), stamped; `None` if unusable.
    fn frame(&mut self, bytes: &[u8], last: bool) -> Option<VoiceFrame> {
        if !last {
            let elapsed = self.started.elapsed().as_millis() as u64 / u64::from(FRAME_MS);
            if u64::from(self.frames) >= elapsed + AHEAD_FRAMES {
                return None;
            }
        }
        let opus = if self.pcm || last {
            let samples = frame_samples(FRAME_MS);
            let mut pcm = vec![0i16; samples];
            if !last {
                if bytes.len() != samples * 2 {
                    return None;
                }
                for (i, pair) in bytes.chunks_exact(2).enumerate() {
                    pcm[i] = i16::from_le_bytes([pair[0], pair[1]]);
                }
            }
            self.encoder.encode(&pcm).ok()?
        } else {
            if bytes.is_empty() || bytes.len() > hark_proto::voice::MAX_OPUS_BYTES {
                return None;
            }
            bytes.to_vec()
        };
        let frame = VoiceFrame {
            spurt: self.spurt,
            seq: self.seq,
            captured_ms: crate::clock::wall_ms(),
            frame_ms: FRAME_MS,
            last,
            opus,
        };
        self.seq = self.seq.wrapping_add(1);
        self.frames += 1;
        Some(frame)
    }
}

/// End the spurt in progress, if any, with a short silent frame flagged last (as the node's
/// own talk-spurts end when their source does); returns the frames it had.
async fn finish(spurt: &mut Option<Spurt>, link: &ClientLink) -> u32 {
    let Some(mut talking) = spurt.take() else {
        return 0;
    };
    if talking.frames == 0 {
        return 0;
    }
    if let Some(frame) = talking.frame(&[], true) {
        let _ = link.request(talking.request(frame)).await;
    }
    talking.frames
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spurt() -> Spurt {
        Spurt {
            room: "lobby".into(),
            from: libp2p::PeerId::random(),
            name: "ann".into(),
            spurt: 1,
            seq: 0,
            pcm: false,
            encoder: VoiceEncoder::new(FRAME_MS).unwrap(),
            frames: 0,
            started: std::time::Instant::now(),
        }
    }

    #[test]
    fn frames_are_stamped_in_order_and_a_flood_is_cut_to_the_capture_pace() {
        let mut talking = spurt();
        let sent: Vec<VoiceFrame> = (0..200)
            .filter_map(|_| talking.frame(&[7; 40], false))
            .collect();
        // A second's worth at once, then (almost) nothing until time passes.
        assert!((50..=52).contains(&sent.len()), "{}", sent.len());
        assert!(sent
            .windows(2)
            .all(|w| w[1].seq == w[0].seq.wrapping_add(1)));
        assert!(sent
            .iter()
            .all(|f| !f.last && f.frame_ms == FRAME_MS && f.opus == [7; 40]));
        // Oversized or empty Opus packets are not frames.
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert!(talking.frame(&[], false).is_none());
        assert!(talking.frame(&vec![1; 5000], false).is_none());
        // The closing frame is always made (the node encodes a little silence), flagged last.
        let last = talking.frame(&[], true).unwrap();
        assert!(last.last && !last.opus.is_empty());
        // PCM frames must be exactly 20 ms of 16-bit samples.
        let mut pcm = spurt();
        pcm.pcm = true;
        assert!(pcm.frame(&[0; 100], false).is_none());
        assert!(pcm.frame(&[0; 1920], false).is_some());
    }
}
