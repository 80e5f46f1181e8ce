// The node's HTTP API (the same routes as --http, behind the session cookie) and the web
// routes. Every call returns parsed JSON or throws an Error carrying the API's code.

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

async function call(method, path, body) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "offline", "the node does not answer");
  }
  if (response.status === 204) return {};
  let data = {};
  try { data = await response.json(); } catch (e) { /* an empty body */ }
  if (!response.ok) throw new ApiError(response.status, data.code, data.detail);
  return data;
}

const room = (name) => encodeURIComponent(name);

export const api = {
  join: (token, name) => call("POST", "/web/join", { token, name }),
  me: () => call("GET", "/web/me"),
  logout: () => call("POST", "/web/logout"),
  people: () => call("GET", "/web/people"),
  peers: () => call("GET", "/v1/peers"),
  joinRoom: (what) => call("POST", "/web/rooms", what),
  leaveRoom: (name) => call("DELETE", `/web/rooms/${room(name)}`),
  invite: (name) => call("GET", `/web/rooms/${room(name)}/invite`),
  history: (name, limit, before) =>
    call("GET", `/v1/rooms/${room(name)}/messages?limit=${limit}` +
      (before ? `&before=${encodeURIComponent(before)}` : "")),
  send: (name, text, kind) => call("POST", `/v1/rooms/${room(name)}/messages`, { text, kind }),
  search: (name, text) =>
    call("GET", `/v1/rooms/${room(name)}/search?limit=50&text=${encodeURIComponent(text)}`),
};

// The node's events (GET /v1/events, Server-Sent Events), reopened after a drop.
export function follow(onEvent, onState) {
  let source = null;
  let closed = false;
  const kinds = ["ready", "message", "typing", "presence", "voice_start", "voice_end",
    "peer_connected", "peer_disconnected", "joined", "left", "lagged", "error"];
  const open = () => {
    if (closed) return;
    source = new EventSource("/v1/events");
    source.onopen = () => onState(true);
    source.onerror = () => {
      onState(false);
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(open, 2000);
      }
    };
    for (const kind of kinds) {
      source.addEventListener(kind, (e) => {
        try { onEvent(kind, JSON.parse(e.data)); } catch (err) { console.warn(err); }
      });
    }
  };
  open();
  return {
    // After joining a room: follow it too (the stream's rooms are fixed when it opens).
    reopen() { if (source) source.close(); open(); },
    close() { closed = true; if (source) source.close(); },
  };
}
