//! The web listener's routes: the page, joining with a link, the session check in front of the
//! HTTP API's own routes, and the few things only web users need (their rooms, the people of
//! this node, voice).

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::users::{RedeemError, Users, WebUser};
use super::voice::{self, VoiceHub, WebSink};
use crate::api::{Command, Event};
use crate::http::{ApiError, Guest};
use crate::node::ClientLink;

/// The session cookie's name.
pub const COOKIE: &str = "hark_session";

pub struct WebShared {
    pub api: crate::http::State,
    pub users: Mutex<Users>,
    pub voice: VoiceHub,
}

pub type WebState = Arc<WebShared>;

pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The whole web app, and the sink that feeds received voice to its pages.
pub async fn app(link: ClientLink, web_dir: &Path) -> Result<(Router, WebSink), String> {
    let data_dir = web_dir.parent().unwrap_or(web_dir);
    // The API's routes, answered by an in-process client of their own; no bearer token: the
    // session check below stands in front of them.
    let api = crate::http::Shared::start(link.clone(), None, data_dir).await?;
    let users = Users::open(web_dir)?;
    let (hub, sink) = voice::hub(link).await?;
    let state = Arc::new(WebShared {
        api: api.clone(),
        users: Mutex::new(users),
        voice: hub,
    });
    let signed_in = Router::new()
        .route("/web/me", get(me))
        .route("/web/rooms", post(join_room))
        .route("/web/rooms/{room}", axum::routing::delete(leave_room))
        .route("/web/rooms/{room}/invite", get(room_invite))
        .route("/web/people", get(people))
        .route("/web/logout", post(logout))
        .route("/web/voice", get(voice::upgrade))
        .with_state(state.clone())
        .merge(crate::http::router(api))
        .layer(middleware::from_fn_with_state(state.clone(), session));
    let open = Router::new()
        .route("/web/join", post(join))
        .with_state(state)
        .merge(super::assets::router());
    let app = open.merge(signed_in).layer(middleware::from_fn(headers));
    Ok((app, sink))
}

/// Headers for every answer: no framing by other sites, no sniffing, no referrer leaking a
/// join link, and nothing loaded from anywhere but this node.
async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
             style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Requests past this point need a session: the user is looked up and goes on as a [`Guest`].
async fn session(State(web): State<WebState>, mut request: Request, next: Next) -> Response {
    let user = session_token(request.headers()).and_then(|t| lock(&web.users).by_session(&t));
    let Some(user) = user else {
        return ApiError::new(
            "unauthorized",
            "open the join link the node's owner gave you (hark-node web-invite)",
        )
        .into_response();
    };
    let guest = Guest {
        identity: user.identity.clone(),
        name: user.name.clone(),
        rooms: user
            .rooms
            .iter()
            .map(|r| crate::http::routes::normal(r))
            .collect(),
    };
    request.extensions_mut().insert(guest);
    request.extensions_mut().insert(user);
    next.run(request).await
}

#[derive(Deserialize)]
struct JoinBody {
    token: String,
    #[serde(default)]
    name: Option<String>,
}

fn user_json(user: &WebUser) -> serde_json::Value {
    json!({
        "id": user.id,
        "name": user.name,
        "peer_id": user.peer_id(),
        "rooms": user.rooms,
    })
}

/// `POST /web/join {token, name}`: take a join link; the answer sets the session cookie.
async fn join(State(web): State<WebState>, body: Json<JoinBody>) -> Response {
    let result =
        lock(&web.users).redeem(&body.token, body.name.as_deref(), crate::clock::wall_ms());
    match result {
        Ok((user, session)) => {
            tracing::info!(
                name = user.name,
                peer_id = user.peer_id(),
                "a web user joined"
            );
            // Strict: no other site can make the browser send it; HttpOnly: no script reads it.
            let cookie = format!(
                "{COOKIE}={session}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=31536000"
            );
            (
                StatusCode::CREATED,
                [(header::SET_COOKIE, cookie)],
                Json(user_json(&user)),
            )
                .into_response()
        }
        Err(e) => {
            let code = match e {
                RedeemError::Unknown => "bad_join_link",
                RedeemError::Used => "join_link_used",
                RedeemError::Expired => "join_link_expired",
                RedeemError::BadName(_) => "bad_name",
                RedeemError::Store(_) => "store_failed",
            };
            let status = match e {
                RedeemError::BadName(_) => StatusCode::BAD_REQUEST,
                RedeemError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::FORBIDDEN,
            };
            (status, Json(json!({"code": code, "detail": e.to_string()}))).into_response()
        }
    }
}

/// `GET /web/me`: who I am, my rooms (with whether each is private), the node, voice settings.
async fn me(
    State(web): State<WebState>,
    Extension(user): Extension<WebUser>,
) -> Result<Response, ApiError> {
    let stats = web.api.stats().await?;
    let rooms: Vec<serde_json::Value> = stats
        .rooms
        .iter()
        .filter(|(room, _)| user.rooms.contains(room))
        .map(|(room, private)| json!({"room": room, "private": private}))
        .collect();
    let mut body = user_json(&user);
    body["rooms"] = json!(rooms);
    body["voice"] = json!({
        "frame_ms": 20,
        "sample_rate": crate::voice::codec::SAMPLE_RATE,
        "bitrate": crate::voice::codec::DEFAULT_BITRATE,
    });
    body["peers"] = json!(stats.peers);
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
struct RoomBody {
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    invite: Option<String>,
    #[serde(default)]
    create: Option<String>,
}

/// `POST /web/rooms {room}|{invite}|{create}`: join a public room by name, a private room by
/// invite, or create a private room (the answer carries its invite). The node joins the room
/// if it is not in it yet; the user is added to it.
async fn join_room(
    State(web): State<WebState>,
    Extension(user): Extension<WebUser>,
    body: Json<RoomBody>,
) -> Result<Response, ApiError> {
    let Json(body) = body;
    let (cmd, command) = match (body.room, body.invite, body.create) {
        (Some(room), None, None) => (
            "join",
            Command::Join {
                room: Some(room),
                invite: None,
            },
        ),
        (None, Some(invite), None) => (
            "join",
            Command::Join {
                room: None,
                invite: Some(invite.trim().to_owned()),
            },
        ),
        (None, None, Some(room)) => ("create", Command::Create { room }),
        _ => {
            return Err(ApiError::new(
                "bad_command",
                "give one of \"room\", \"invite\" or \"create\"",
            ))
        }
    };
    let (room, invite) = match web.api.ask(cmd, command).await? {
        Event::Joined { room } => (room, None),
        Event::Created { room, invite } => (room, Some(invite)),
        other => {
            return Err(ApiError::new(
                "internal",
                format!("unexpected answer {other:?}"),
            ))
        }
    };
    lock(&web.users)
        .add_room(&user.id, &room)
        .map_err(|e| ApiError::new("store_failed", e))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"room": room, "invite": invite})),
    )
        .into_response())
}

/// `DELETE /web/rooms/{room}`: the user leaves (the node stays: others may be in it).
async fn leave_room(
    State(web): State<WebState>,
    Extension(user): Extension<WebUser>,
    UrlPath(room): UrlPath<String>,
) -> Result<Response, ApiError> {
    let Some(name) = user
        .rooms
        .iter()
        .find(|r| r.eq_ignore_ascii_case(&room))
        .cloned()
    else {
        return Err(ApiError::new(
            "not_joined",
            format!("you are not in {room:?}"),
        ));
    };
    lock(&web.users)
        .remove_room(&user.id, &name)
        .map_err(|e| ApiError::new("store_failed", e))?;
    Ok(Json(json!({"room": name})).into_response())
}

/// `GET /web/rooms/{room}/invite`: a private room's invite, to pass on.
async fn room_invite(
    State(web): State<WebState>,
    Extension(guest): Extension<Guest>,
    UrlPath(room): UrlPath<String>,
) -> Result<Response, ApiError> {
    if !guest.may(&room) {
        return Err(ApiError::new(
            "not_joined",
            format!("you are not in {room:?}"),
        ));
    }
    match web.api.ask("invite", Command::Invite { room }).await? {
        Event::Invite { room, invite } => {
            Ok(Json(json!({"room": room, "invite": invite})).into_response())
        }
        other => Err(ApiError::new(
            "internal",
            format!("unexpected answer {other:?}"),
        )),
    }
}

/// `GET /web/people`: this node's web users (name and peer id) and the node itself.
async fn people(State(web): State<WebState>) -> Result<Response, ApiError> {
    let users: Vec<serde_json::Value> = lock(&web.users)
        .all()
        .iter()
        .map(|u| json!({"name": u.name, "peer_id": u.peer_id(), "rooms": u.rooms}))
        .collect();
    Ok(Json(json!({ "web_users": users })).into_response())
}

/// `POST /web/logout`: end this session.
async fn logout(State(web): State<WebState>, headers: HeaderMap) -> Response {
    if let Some(token) = session_token(&headers) {
        if let Err(e) = lock(&web.users).end_session(&token) {
            return ApiError::new("store_failed", e).into_response();
        }
    }
    let cookie = format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; hark_session=abc; b=2"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("abc"));
        assert!(session_token(&HeaderMap::new()).is_none());
    }
}
