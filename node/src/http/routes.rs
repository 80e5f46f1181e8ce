//! The routes of the HTTP API. Each request is one command through the node's client link, as
//! an in-process client attached like a control-socket connection: the command carries an
//! origin (this client, a numeric id), and its answer comes back to this client only. Events
//! (`/v1/events`) are one attached client per stream, with the same filters as `subscribe`.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request as HttpRequest};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::api::{Command, Event};
use crate::control::{event_kind, Answered, ClientId, Filter, Origin, Request};
use crate::node::{ClientLink, Stats};

use super::Guest;

/// A web user, on requests that come through the web listener (`--web`); absent on `--http`.
type MaybeGuest = Option<Extension<Guest>>;

/// The largest request body taken (64 KiB, like a command line); a larger one is `too_long`.
pub const MAX_BODY: usize = 64 * 1024;
/// How long a request waits for the node's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Event>>>>;

/// What every handler shares: the link to the node, this API's client and its pending
/// questions, the token, the data dir (for `/healthz` and the store size).
pub struct Shared {
    link: ClientLink,
    client: ClientId,
    pending: Pending,
    next_id: AtomicU64,
    token: Option<Vec<u8>>,
    data_dir: PathBuf,
    started: Instant,
}

pub type State = Arc<Shared>;

impl Shared {
    /// Attach the API's client to the node (it follows no broadcast events: only answers)
    /// and route each answer to the request that asked.
    pub async fn start(
        link: ClientLink,
        token: Option<Vec<u8>>,
        data_dir: &FsPath,
    ) -> Result<State, String> {
        let nothing = Filter {
            rooms: None,
            kinds: Some(HashSet::new()),
        };
        let attached = link
            .attach_unordered(nothing)
            .await
            .map_err(|e| format!("HTTP API: {e}"))?;
        let pending: Pending = Arc::default();
        tokio::spawn(route_answers(attached.events, pending.clone()));
        Ok(Arc::new(Shared {
            link,
            client: attached.client,
            pending,
            next_id: AtomicU64::new(1),
            token,
            data_dir: data_dir.to_path_buf(),
            started: Instant::now(),
        }))
    }

    /// Send a command and wait for its first answer (`sent`, `history`, `peers`, or `error`).
    pub async fn ask(&self, cmd: &str, command: Command) -> Result<Event, ApiError> {
        self.ask_with(cmd, |origin| Request::Command {
            origin: Some(origin),
            command,
        })
        .await
    }

    /// Send the request `make` builds with this API's origin, and wait for its first answer.
    pub async fn ask_with(
        &self,
        cmd: &str,
        make: impl FnOnce(Origin) -> Request,
    ) -> Result<Event, ApiError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        lock(&self.pending).insert(id, reply);
        let request = make(Origin {
            client: self.client,
            id: Some(id.into()),
            cmd: cmd.to_owned(),
        });
        if self.link.request(request).await.is_err() {
            lock(&self.pending).remove(&id);
            return Err(ApiError::node_stopped());
        }
        match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
            Ok(Ok(Event::Error { code, detail })) => Err(ApiError::new(&code, detail)),
            Ok(Ok(event)) => Ok(event),
            Ok(Err(_)) => Err(ApiError::node_stopped()),
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(ApiError::new(
                    "timeout",
                    format!("no answer from the node within {ANSWER_TIMEOUT:?}"),
                ))
            }
        }
    }

    pub fn link(&self) -> &ClientLink {
        &self.link
    }

    pub async fn stats(&self) -> Result<Stats, ApiError> {
        self.link
            .stats()
            .await
            .map_err(|_| ApiError::node_stopped())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn route_answers(mut events: mpsc::Receiver<Answered>, pending: Pending) {
    while let Some(answered) = events.recv().await {
        let Some(id) = answered
            .origin
            .as_ref()
            .and_then(|o| o.id.as_ref())
            .and_then(Value::as_u64)
        else {
            continue;
        };
        if let Some(reply) = lock(&pending).remove(&id) {
            let _ = reply.send(answered.event);
        }
    }
    // The node stopped: dropping the senders tells every waiting request.
    lock(&pending).clear();
}

/// An error as JSON `{"code":…,"detail":…}`, with the JSON-lines API's codes.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    detail: String,
}

impl ApiError {
    pub fn new(code: &str, detail: impl Into<String>) -> Self {
        let status = match code {
            "bad_command" | "bad_room" | "bad_name" | "bad_invite" | "public_room"
            | "room_exists" => StatusCode::BAD_REQUEST,
            "unauthorized" => StatusCode::UNAUTHORIZED,
            "not_joined" | "not_found" | "unknown_message" => StatusCode::NOT_FOUND,
            "method_not_allowed" => StatusCode::METHOD_NOT_ALLOWED,
            "too_long" => StatusCode::PAYLOAD_TOO_LARGE,
            "node_stopped" | "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            "timeout" => StatusCode::GATEWAY_TIMEOUT,
            "publish_failed" => StatusCode::BAD_GATEWAY,
            "store_failed" | "history_failed" | "internal" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            code: code.to_owned(),
            detail: detail.into(),
        }
    }

    fn node_stopped() -> Self {
        Self::new("node_stopped", "the node has stopped")
    }

    fn bad(detail: impl Into<String>) -> Self {
        Self::new("bad_command", detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"code": self.code, "detail": self.detail}));
        if self.status == StatusCode::UNAUTHORIZED {
            (self.status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
        } else {
            (self.status, body).into_response()
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        Self::bad(e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        Self::bad(e.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new("too_long", format!("a body is at most {MAX_BODY} bytes"))
        } else {
            Self::bad(e.body_text())
        }
    }
}

pub fn router(state: State) -> Router {
    Router::new()
        .route("/v1/rooms", get(rooms))
        .route("/v1/rooms/{room}/messages", get(history).post(post_message))
        .route("/v1/rooms/{room}/search", get(search))
        .route("/v1/peers", get(peers))
        .route(
            "/v1/peers/{peer}/messages",
            axum::routing::post(post_direct),
        )
        .route("/v1/events", get(events))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::new("not_found", "no such route (see docs/protocol.md)") })
        .method_not_allowed_fallback(|| async {
            ApiError::new("method_not_allowed", "this route does not take that method")
        })
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// `Authorization: Bearer TOKEN`, when the node has a token; compared in constant time.
async fn authorize(
    axum::extract::State(state): axum::extract::State<State>,
    request: HttpRequest,
    next: Next,
) -> Response {
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| bearer_token(v.as_bytes()));
        if !given.is_some_and(|given| super::same_token(token, given)) {
            return ApiError::new(
                "unauthorized",
                "send Authorization: Bearer TOKEN (the --http-token file's)",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// The token of an `Authorization` header's value, if its scheme is Bearer (in any case:
/// RFC 9110 makes the scheme case-insensitive).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.trim_ascii().split_at_checked(6)?;
    (scheme.eq_ignore_ascii_case(b"bearer") && token.first().is_some_and(u8::is_ascii_whitespace))
        .then(|| token.trim_ascii())
}

type St = axum::extract::State<State>;

async fn post_message(
    axum::extract::State(state): St,
    guest: MaybeGuest,
    room: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(room) = room?;
    allowed(&guest, &room)?;
    let (value, text) = text_body(body)?;
    let (cmd, command) = match value
        .get("kind")
        .and_then(|k| k.as_str().or(k.is_null().then_some("text")))
    {
        None if value.get("kind").is_some() => {
            return Err(ApiError::bad("\"kind\" is \"text\", \"me\" or \"alert\""))
        }
        None | Some("text") => ("send", Command::Send { room, text }),
        Some("me") => ("me", Command::Me { room, text }),
        Some("alert") => ("alert", Command::Alert { room, text }),
        Some(other) => {
            return Err(ApiError::bad(format!(
                "kind {other:?}: \"text\", \"me\" or \"alert\""
            )))
        }
    };
    let answer = match guest {
        // A web user's message is signed with their key (engine/send_as.rs).
        Some(Extension(guest)) => {
            let (room, kind, text) = match command {
                Command::Send { room, text } => (room, hark_proto::MessageKind::Text, text),
                Command::Me { room, text } => (room, hark_proto::MessageKind::Me, text),
                Command::Alert { room, text } => (room, hark_proto::MessageKind::Alert, text),
                _ => return Err(ApiError::bad("not a message")),
            };
            let send = crate::engine::SendAs {
                identity: guest.identity,
                name: guest.name,
                room,
                kind,
                text,
            };
            state
                .ask_with(cmd, |origin| Request::SendAs {
                    origin: Some(origin),
                    send: Box::new(send),
                })
                .await?
        }
        None => state.ask(cmd, command).await?,
    };
    created(answer)
}

/// A message's JSON body and its `"text"`, or the 400 that says what is wrong with it.
fn text_body(body: Result<Bytes, BytesRejection>) -> Result<(Value, String), ApiError> {
    let body = body?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("the body is not JSON: {e}")))?;
    let text = value
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad("the body needs \"text\": a string"))?
        .to_owned();
    Ok((value, text))
}

/// The answer to a message sent: 201 `{"id","room"}`.
fn created(answer: Event) -> Result<Response, ApiError> {
    match answer {
        Event::Sent { room, id } => {
            Ok((StatusCode::CREATED, Json(json!({"id": id, "room": room}))).into_response())
        }
        other => Err(unexpected(&other)),
    }
}

/// `POST /v1/peers/{peer}/messages` with `{"text":…}`: a direct message (the `dm` command) as
/// this node → 201 `{"id","room":"@PEER_ID"}`. Not for a web user's session: its messages are
/// signed as that user, and DMs as a web user are not built.
async fn post_direct(
    axum::extract::State(state): St,
    guest: MaybeGuest,
    peer: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(peer) = peer?;
    if guest.is_some() {
        return Err(ApiError::new(
            "not_joined",
            "direct messages are not available to web users",
        ));
    }
    let (_, text) = text_body(body)?;
    created(state.ask("dm", Command::Dm { to: peer, text }).await?)
}

async fn history(
    axum::extract::State(state): St,
    guest: MaybeGuest,
    room: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(room) = room?;
    allowed(&guest, &room)?;
    let Query(query) = query?;
    let mut limit = None;
    let mut before = None;
    for (key, value) in query {
        match key.as_str() {
            "limit" => limit = Some(parse_limit(&value)?),
            "before" => before = Some(value),
            _ => {}
        }
    }
    match state
        .ask(
            "history",
            Command::History {
                room,
                limit,
                before,
            },
        )
        .await?
    {
        Event::History { room, messages } => {
            Ok(Json(json!({"room": room, "messages": messages})).into_response())
        }
        other => Err(unexpected(&other)),
    }
}

/// A `limit` query value: a whole number, or the 400 that says it is not.
fn parse_limit(value: &str) -> Result<usize, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::bad(format!("limit {value:?} is not a whole number")))
}

async fn rooms(axum::extract::State(state): St, guest: MaybeGuest) -> Result<Response, ApiError> {
    let stats = state.stats().await?;
    let rooms: Vec<Value> = stats
        .rooms
        .iter()
        .filter(|(room, _)| guest.as_ref().is_none_or(|Extension(g)| g.may(room)))
        .map(|(room, private)| json!({"room": room, "private": private}))
        .collect();
    Ok(Json(json!({ "rooms": rooms })).into_response())
}

async fn peers(axum::extract::State(state): St) -> Result<Response, ApiError> {
    match state.ask("peers", Command::Peers).await? {
        Event::Peers { peers } => Ok(Json(json!({ "peers": peers })).into_response()),
        other => Err(unexpected(&other)),
    }
}

/// `GET /v1/rooms/{room}/search?text=WORDS[&limit=N]`: stored messages holding every word.
async fn search(
    axum::extract::State(state): St,
    guest: MaybeGuest,
    room: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(room) = room?;
    allowed(&guest, &room)?;
    let Query(query) = query?;
    let mut text = None;
    let mut limit = None;
    for (key, value) in query {
        match key.as_str() {
            "text" | "q" => text = Some(value),
            "limit" => limit = Some(parse_limit(&value)?),
            _ => {}
        }
    }
    let text = text.ok_or_else(|| ApiError::bad("search needs ?text=WORDS"))?;
    match state
        .ask("search", Command::Search { room, text, limit })
        .await?
    {
        Event::SearchResults {
            room,
            text,
            messages,
        } => Ok(Json(json!({"room": room, "text": text, "messages": messages})).into_response()),
        other => Err(unexpected(&other)),
    }
}

/// A web user may use only their own rooms; to them another room does not exist.
fn allowed(guest: &MaybeGuest, room: &str) -> Result<(), ApiError> {
    match guest {
        Some(Extension(guest)) if !guest.may(room) => Err(ApiError::new(
            "not_joined",
            format!("you are not in a room named {room:?}"),
        )),
        _ => Ok(()),
    }
}

fn unexpected(event: &Event) -> ApiError {
    ApiError::new(
        "internal",
        format!("unexpected answer {}", event_kind(event)),
    )
}

/// One attached client for one event stream; detached when the stream is dropped.
struct Follower {
    link: ClientLink,
    client: ClientId,
    events: mpsc::Receiver<Answered>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.link.detach(self.client);
    }
}

/// `GET /v1/events[?room=R…][&kind=K…]`: the node's events as Server-Sent Events, each
/// `event: NAME` and `data: ` the JSON line. Repeat `room`/`kind` or separate with commas.
async fn events(
    axum::extract::State(state): St,
    guest: MaybeGuest,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let mut rooms: Option<HashSet<String>> = None;
    let mut kinds: Option<HashSet<String>> = None;
    for (key, value) in query {
        let list = match key.as_str() {
            "room" | "rooms" => rooms.get_or_insert_with(HashSet::new),
            "kind" | "kinds" => kinds.get_or_insert_with(HashSet::new),
            _ => continue,
        };
        list.extend(
            value
                .split(',')
                .map(|v| normal(v.trim()))
                .filter(|v| !v.is_empty()),
        );
    }
    if let Some(kinds) = &kinds {
        crate::control::check_kinds(kinds).map_err(|e| ApiError::new("bad_command", e))?;
    }
    // A web user follows their own rooms only (and events that name no room).
    if let Some(Extension(guest)) = &guest {
        rooms = Some(match rooms {
            Some(asked) => asked.intersection(&guest.rooms).cloned().collect(),
            None => guest.rooms.clone(),
        });
    }
    let attached = state
        .link
        .attach(Filter { rooms, kinds })
        .await
        .map_err(|_| ApiError::node_stopped())?;
    let follower = Follower {
        link: state.link.clone(),
        client: attached.client,
        events: attached.events,
    };
    let stream = futures::stream::unfold(follower, |mut follower| async move {
        let answered = follower.events.recv().await?;
        let event = SseEvent::default()
            .event(event_kind(&answered.event))
            .data(answered.to_line());
        Some((Ok::<_, Infallible>(event), follower))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// A room as `subscribe` compares it (a leading `#` dropped, lower case).
pub fn normal(room: &str) -> String {
    let room = room.strip_prefix('#').unwrap_or(room);
    if room.starts_with('@') {
        room.to_owned()
    } else {
        room.to_lowercase()
    }
}

/// `GET /healthz`: 200 when the node is ready and its store writable, else 503.
async fn healthz(axum::extract::State(state): St) -> Result<Response, ApiError> {
    let stats = state.stats().await?;
    let writable = store_writable(state.data_dir.clone()).await;
    let healthy = stats.ready && writable;
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if healthy { "ok" } else { "unavailable" },
        "ready": stats.ready,
        "peers": stats.peers,
        "rooms": stats.rooms.len(),
        "store_writable": writable,
    });
    Ok((status, Json(body)).into_response())
}

/// Whether a file can be written (and synced) in the data dir, beside the database.
async fn store_writable(data_dir: PathBuf) -> bool {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let probe = data_dir.join(".healthz-probe");
        let ok = std::fs::File::create(&probe)
            .and_then(|mut f| {
                f.write_all(b"ok")?;
                f.sync_all()
            })
            .is_ok();
        let _ = std::fs::remove_file(&probe);
        ok && std::fs::metadata(data_dir.join("hark.db"))
            .map(|m| !m.permissions().readonly())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

async fn metrics(axum::extract::State(state): St, guest: MaybeGuest) -> Result<Response, ApiError> {
    if guest.is_some() {
        return Err(ApiError::new("not_found", "no such route for web users"));
    }
    let stats = state.stats().await?;
    let dir = state.data_dir.clone();
    let store_bytes = tokio::task::spawn_blocking(move || {
        ["hark.db", "hark.db-wal", "hark.db-shm"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
            .map(|m| m.len())
            .sum::<u64>()
    })
    .await
    .unwrap_or(0);
    let text = super::metrics::render(&stats, state.started.elapsed(), store_bytes);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
