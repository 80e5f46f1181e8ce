// The Hark page: join with a link, then rooms, messages, people and push-to-talk.
// Plain ES modules and the DOM; nothing is loaded from anywhere but this node.
import { api, follow } from "./api.js";
import { Voice } from "./voice.js";

const $ = (id) => document.getElementById(id);
const PAGE = 50;
const TYPING_SHOWN_MS = 4000;
const ALERT_HOLD_MS = 1500;

const state = {
  me: null,
  rooms: new Map(), // lower-case name → room
  current: null,
  peers: new Map(), // peer id → name
  webUsers: [],
  present: new Map(), // room → Map(peer id → {name, at})
  typing: new Map(), // room → Map(peer id → {name, until})
  talking: new Map(), // room|peer → {room, name}
  events: null,
};

function room(name) {
  const key = name.toLowerCase();
  if (!state.rooms.has(key)) {
    state.rooms.set(key, { name, private: false, messages: [], ids: new Set(), unread: 0, alerts: 0,
      loaded: false, more: true, loading: false });
  }
  return state.rooms.get(key);
}

const short = (id) => (id || "").slice(-4);
// Invisible characters in a name are shown (`carol` and `carol` + a zero-width space are two
// people), except an emoji's own joiner or variation selector, as the node's `show_invisible`
// does; direction overrides in a text cannot reverse what follows them.
const INVISIBLE = /^[\u{00AD}\u{034F}\u{061C}\u{115F}\u{1160}\u{17B4}\u{17B5}\u{180B}-\u{180F}\u{200B}-\u{200F}\u{202A}-\u{202E}\u{2060}-\u{206F}\u{3164}\u{FE00}-\u{FE0F}\u{FEFF}\u{FFA0}\u{1D173}-\u{1D17A}\u{E0000}-\u{E0FFF}]$/u;
const EMOJI_PART = /^[\u{200D}\u{FE00}-\u{FE0F}]$/u;
const LETTER_OR_ASCII = /^[\p{L}\p{N}\x00-\x7F]$/u;
const OVERRIDES = /[\u{202A}-\u{202E}\u{2066}-\u{2069}]/gu;
function showInvisible(name) {
  let shown = "";
  let previous = null;
  for (const c of name || "") {
    const emojiPart = EMOJI_PART.test(c) && previous !== null && !LETTER_OR_ASCII.test(previous);
    shown += INVISIBLE.test(c) && !emojiPart ? "\u{FFFD}" : c;
    previous = c;
  }
  return shown;
}
const who = (name, id) => `${showInvisible(name)}#${short(id)}`;
const time = (ts) => new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

// ----- joining -----

async function start() {
  const link = new URLSearchParams(location.hash.slice(1));
  const token = link.get("join");
  if (token) return showJoin(token, link.get("name"));
  try {
    state.me = await api.me();
  } catch (e) {
    return gate(e.status === 401
      ? "You need a join link to use Hark here: ask the owner of this node for one."
      : `The node did not answer: ${e.message}`, true);
  }
  openApp();
}

function gate(text, isError) {
  $("gate").hidden = false;
  $("app").hidden = true;
  $("gate-error").textContent = isError ? text : "";
  if (!isError) $("gate-text").textContent = text;
}

function showJoin(token, proposed) {
  gate("Chat and push-to-talk on this network. Choose the name others will see.", false);
  const form = $("join-form");
  form.hidden = false;
  if (proposed) $("join-name").value = proposed;
  $("join-name").focus();
  form.onsubmit = async (e) => {
    e.preventDefault();
    $("join-button").disabled = true;
    try {
      await api.join(token, $("join-name").value.trim());
      history.replaceState(null, "", location.pathname);
      form.hidden = true;
      state.me = await api.me();
      openApp();
    } catch (err) {
      $("gate-error").textContent = err.message;
      if (err.code !== "bad_name") form.hidden = true;
    } finally {
      $("join-button").disabled = false;
    }
  };
}

// ----- the app -----

function openApp() {
  $("gate").hidden = true;
  $("app").hidden = false;
  $("me-name").textContent = state.me.name;
  $("me-id").textContent = `#${short(state.me.peer_id)}`;
  voice.bitrate = state.me.voice && state.me.voice.bitrate;
  for (const r of state.me.rooms) room(r.room).private = r.private;
  let wasDown = false;
  state.events = follow(onEvent, (up) => {
    $("room-sub").classList.toggle("offline", !up);
    // Back after a drop (Wi-Fi, or the node restarted): what came meanwhile is only in the
    // rooms' history.
    if (up && wasDown) for (const r of state.rooms.values()) if (r.loaded) catchUp(r);
    wasDown = !up;
  });
  switchTo(state.rooms.has("lobby") ? "lobby" : state.me.rooms[0]?.room);
  refreshPeople();
  setInterval(refreshPeople, 15000);
  setInterval(tick, 1000);
  voice.connect();
  meter();
}

function switchTo(name) {
  if (!name) return;
  const r = room(name);
  state.current = r;
  r.unread = 0;
  r.alerts = 0;
  $("room-title").textContent = `#${r.name}`;
  $("text").placeholder = `Message #${r.name}  (/me, /join, /create, /invite)`;
  document.body.classList.remove("show-rooms", "show-people");
  renderRooms();
  renderMessages(true);
  renderPeople();
  if (!r.loaded) loadOlder(r);
}

async function loadOlder(r) {
  if (r.loading || !r.more) return;
  r.loading = true;
  const before = r.messages[0]?.id;
  try {
    const { messages } = await api.history(r.name, PAGE, before);
    const fresh = messages.filter((m) => !r.ids.has(m.id));
    for (const m of fresh) r.ids.add(m.id);
    r.messages = fresh.concat(r.messages);
    r.more = messages.length === PAGE;
    r.loaded = true;
  } catch (e) {
    note("room-note", e.message);
  } finally {
    r.loading = false;
  }
  if (r === state.current) {
    const scroller = $("scroller");
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    renderMessages(!before);
    if (before) scroller.scrollTop = scroller.scrollHeight - fromBottom;
  }
}

// Where a message goes in a room's list: after every message not newer than it. Messages
// come in order, except those a sync brought late, which take their place by time.
function place(r, m) {
  let i = r.messages.length;
  const after = (a, b) => a.ts > b.ts || (a.ts === b.ts && (a.tick || 0) > (b.tick || 0));
  while (i > 0 && after(r.messages[i - 1], m)) i--;
  r.messages.splice(i, 0, m);
  return i === r.messages.length - 1;
}

// The newest messages of a room after the event stream was down, pages back until one already
// shown (at most 20 pages); those not shown yet take their places.
async function catchUp(r) {
  let before;
  for (let pages = 0; pages < 20; pages++) {
    let messages;
    try {
      ({ messages } = await api.history(r.name, PAGE, before));
    } catch (e) {
      return note("room-note", e.message);
    }
    const fresh = messages.filter((m) => !r.ids.has(m.id));
    for (const m of fresh) add(r.name, m, true);
    if (fresh.length < messages.length || messages.length < PAGE) break;
    before = messages[0].id;
  }
  if (r === state.current) renderMessages(false);
}

function add(roomName, m, quiet) {
  const r = room(roomName);
  if (r.ids.has(m.id)) return;
  r.ids.add(m.id);
  const last = place(r, m);
  const mine = m.from === state.me.peer_id;
  if (r !== state.current || document.hidden) {
    if (!mine) r.unread++;
    if (m.kind === "alert") r.alerts++;
  }
  if (m.kind === "alert" && !mine) flash(`ALERT in #${r.name} from ${who(m.name, m.from)}: ${m.text}`);
  if (r === state.current && !quiet) {
    if (last) appendMessage(m);
    else renderMessages(false);
  }
  renderRooms();
}

function onEvent(kind, e) {
  switch (kind) {
    case "message":
      add(e.room, e);
      break;
    case "typing": {
      if (e.from === state.me.peer_id) break;
      const map = state.typing.get(e.room) || new Map();
      map.set(e.from, { name: e.name, until: Date.now() + TYPING_SHOWN_MS });
      state.typing.set(e.room, map);
      renderTyping();
      break;
    }
    case "presence": {
      const map = state.present.get(e.room) || new Map();
      map.set(e.from, { name: e.name, at: Date.now() });
      state.present.set(e.room, map);
      state.peers.set(e.from, e.name);
      if (state.current && e.room.toLowerCase() === state.current.name.toLowerCase()) renderPeople();
      break;
    }
    case "voice_start":
      state.talking.set(`${e.room}|${e.from}`, { room: e.room, name: e.name, from: e.from });
      renderTalking();
      break;
    case "voice_end":
      state.talking.delete(`${e.room}|${e.from}`);
      renderTalking();
      break;
    case "peer_connected":
    case "peer_disconnected":
      refreshPeople();
      break;
    case "lagged":
      // Events were missed: read the rooms again.
      for (const r of state.rooms.values()) { r.loaded = false; r.more = true; r.messages = []; r.ids.clear(); }
      if (state.current) loadOlder(state.current);
      break;
  }
}

// ----- rendering -----

function renderRooms() {
  const list = $("room-list");
  list.replaceChildren();
  let total = 0;
  const rooms = [...state.rooms.values()].filter((r) => state.me.rooms.some((x) => x.room.toLowerCase() === r.name.toLowerCase()));
  for (const r of rooms) {
    total += r.unread;
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.className = "room" + (r.private ? " private" : "") + (r === state.current ? " current" : "") + (r.alerts ? " alerting" : "");
    b.dataset.room = r.name;
    b.textContent = r.private ? r.name : `# ${r.name}`;
    b.title = r.private ? "private room (by invite)" : "public room";
    if (r.unread) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = r.unread;
      b.append(badge);
    }
    b.onclick = () => switchTo(r.name);
    li.append(b);
    list.append(li);
  }
  const badge = $("unread-total");
  badge.hidden = total === 0;
  badge.textContent = total;
  document.title = total ? `(${total}) Hark` : "Hark";
}

function messageItem(m) {
  const li = document.createElement("li");
  li.className = `msg ${m.kind}` + (m.from === state.me.peer_id ? " mine" : "");
  li.dataset.id = m.id;
  const t = document.createElement("time");
  t.textContent = time(m.ts);
  const n = document.createElement("span");
  n.className = "who";
  n.textContent = m.kind === "me" ? `* ${who(m.name, m.from)}` : m.kind === "alert" ? `ALERT ${who(m.name, m.from)}` : who(m.name, m.from);
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = m.text.replace(OVERRIDES, "\u{FFFD}");
  li.append(t, n, text);
  return li;
}

function renderMessages(toBottom) {
  const r = state.current;
  const list = $("messages");
  list.replaceChildren(...r.messages.map(messageItem));
  $("older").textContent = r.more ? (r.loading ? "loading…" : "scroll up for older messages") : "the beginning of #" + r.name;
  if (toBottom) $("scroller").scrollTop = $("scroller").scrollHeight;
  renderTyping();
}

function appendMessage(m) {
  const scroller = $("scroller");
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  $("messages").append(messageItem(m));
  if (atBottom || m.from === state.me.peer_id) scroller.scrollTop = scroller.scrollHeight;
}

function renderTyping() {
  const r = state.current;
  const map = r && state.typing.get(r.name);
  const now = Date.now();
  const names = map ? [...map.values()].filter((t) => t.until > now).map((t) => t.name) : [];
  $("typing").textContent = names.length ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…` : "";
}

function renderTalking() {
  const talkers = [...state.talking.values()].filter((t) => state.rooms.has(t.room.toLowerCase()));
  $("talking").hidden = talkers.length === 0;
  $("talking-text").textContent = talkers.map((t) => `${who(t.name, t.from)} is talking in #${t.room}`).join(" · ");
  renderPeople();
}

async function refreshPeople() {
  try {
    const [{ peers }, { web_users }] = await Promise.all([api.peers(), api.people()]);
    state.connected = peers;
    for (const p of peers) if (p.name) state.peers.set(p.peer_id, p.name);
    state.webUsers = web_users;
    $("room-sub").textContent = `${peers.length} peer${peers.length === 1 ? "" : "s"}`;
  } catch (e) { /* shown by the event stream's state */ }
  renderPeople();
}

function renderPeople() {
  const r = state.current;
  if (!r) return;
  const list = $("people-list");
  list.replaceChildren();
  const seen = new Map();
  const now = Date.now();
  for (const u of state.webUsers) {
    if (u.rooms.some((x) => x.toLowerCase() === r.name.toLowerCase())) seen.set(u.peer_id, { name: u.name, web: true });
  }
  for (const [id, p] of state.present.get(r.name) || []) if (now - p.at < 600000) seen.set(id, { name: p.name });
  for (const p of state.connected || []) if (!seen.has(p.peer_id)) seen.set(p.peer_id, { name: p.name || "?", node: true });
  const typing = state.typing.get(r.name) || new Map();
  for (const [id, p] of seen) {
    const li = document.createElement("li");
    const talking = state.talking.has(`${r.name}|${id}`);
    const isTyping = typing.has(id) && typing.get(id).until > now;
    li.className = talking ? "talking" : "";
    li.textContent = `${talking ? "◉" : "●"} ${who(p.name, id)}${p.web ? " (web)" : ""}${isTyping ? " ✎" : ""}`;
    if (id === state.me.peer_id) li.classList.add("me");
    list.append(li);
  }
}

function tick() { renderTyping(); }

function note(id, text) {
  $(id).textContent = text;
  if (text) setTimeout(() => { if ($(id).textContent === text) $(id).textContent = ""; }, 8000);
}

function flash(text) {
  document.body.classList.add("flash");
  note("voice-note", text);
  setTimeout(() => document.body.classList.remove("flash"), 3000);
  if (navigator.vibrate) navigator.vibrate([200, 100, 200]);
}

// ----- sending -----

async function submit(text) {
  const r = state.current;
  const [cmd, ...rest] = text.split(" ");
  const arg = rest.join(" ").trim();
  if (cmd === "/join" && arg) return joinRoom(arg.startsWith("hark:") ? { invite: arg } : { room: arg });
  if (cmd === "/create" && arg) return joinRoom({ create: arg });
  if (cmd === "/invite") return showInvite(r.name);
  if (cmd === "/leave") return leaveRoom(r.name);
  let kind = "text";
  let body = text;
  if (cmd === "/me" && arg) { kind = "me"; body = arg; }
  else if (cmd === "/alert" && arg) { kind = "alert"; body = arg; }
  else if (text.startsWith("/")) { note("voice-note", `Unknown command ${cmd}`); return false; }
  return sendMessage(r, body, kind);
}

// Whether it was sent: what was typed stays in the box until then.
async function sendMessage(r, text, kind) {
  try {
    const { id } = await api.send(r.name, text, kind);
    add(r.name, { id, from: state.me.peer_id, name: state.me.name, ts: Date.now(), kind, text });
    return true;
  } catch (e) {
    note("voice-note", `Not sent: ${e.message}`);
    return false;
  }
}

async function joinRoom(what) {
  try {
    const answer = await api.joinRoom(what);
    state.me = await api.me();
    for (const r of state.me.rooms) room(r.room).private = r.private;
    state.events.reopen();
    switchTo(answer.room);
    if (answer.invite) showInviteText(answer.room, answer.invite);
  } catch (e) {
    note("room-note", e.message);
  }
}

async function leaveRoom(name) {
  if (name.toLowerCase() === "lobby") return note("voice-note", "Everyone stays in lobby.");
  try {
    await api.leaveRoom(name);
    state.me = await api.me();
    state.rooms.delete(name.toLowerCase());
    state.events.reopen();
    switchTo("lobby");
  } catch (e) { note("voice-note", e.message); }
}

async function showInvite(name) {
  try {
    const { invite } = await api.invite(name);
    showInviteText(name, invite);
  } catch (e) { note("voice-note", e.message); }
}

function showInviteText(name, invite) {
  note("room-note", `Invite to #${name} (pass it on privately): ${invite}`);
  document.body.classList.add("show-rooms");
}

// ----- push-to-talk and the alert button -----

const voice = new Voice((text, kind) => note("voice-note", text));
window.hark = { voice, state }; // for people debugging, and the browser tests

let pttDown = false;
async function pttStart() {
  if (pttDown || !state.current) return;
  pttDown = true;
  $("ptt").classList.add("on");
  const ok = await voice.start(state.current.name);
  if (!ok) { pttDown = false; $("ptt").classList.remove("on"); }
}
function pttStop() {
  if (!pttDown) return;
  pttDown = false;
  $("ptt").classList.remove("on");
  voice.stop();
}

function meter() {
  const level = voice.level();
  $("ptt-level").style.width = `${Math.min(100, level * 400)}%`;
  requestAnimationFrame(meter);
}

function bindHold(button, onDown, onUp) {
  button.addEventListener("pointerdown", (e) => { e.preventDefault(); button.setPointerCapture(e.pointerId); onDown(); });
  for (const ev of ["pointerup", "pointercancel", "lostpointercapture"]) button.addEventListener(ev, onUp);
  button.addEventListener("contextmenu", (e) => e.preventDefault());
}

let alertTimer = null;
function alertDown() {
  const button = $("alert");
  button.classList.add("arming");
  alertTimer = setTimeout(async () => {
    alertTimer = null;
    button.classList.remove("arming");
    const typed = $("text").value.trim();
    if (await sendMessage(state.current, typed || "ALERT", "alert") && $("text").value.trim() === typed) $("text").value = "";
  }, ALERT_HOLD_MS);
}
function alertUp() {
  $("alert").classList.remove("arming");
  if (alertTimer) { clearTimeout(alertTimer); alertTimer = null; note("voice-note", "Hold the alert button for 1.5 s to send."); }
}

// ----- wiring -----

bindHold($("ptt"), pttStart, pttStop);
bindHold($("alert"), alertDown, alertUp);
document.addEventListener("keydown", (e) => {
  if (e.code === "Space" && !e.repeat && !["INPUT", "TEXTAREA"].includes(document.activeElement.tagName) && !$("app").hidden) {
    e.preventDefault();
    pttStart();
  }
});
document.addEventListener("keyup", (e) => { if (e.code === "Space") pttStop(); });
document.addEventListener("pointerdown", () => voice.ctx && voice.ctx.resume(), { passive: true });

$("composer").onsubmit = async (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  // Cleared once done, unless something else was typed meanwhile; kept when it failed.
  if ((await submit(text)) !== false && $("text").value.trim() === text) $("text").value = "";
};
$("scroller").addEventListener("scroll", () => {
  if ($("scroller").scrollTop < 40 && state.current) loadOlder(state.current);
});
$("room-form").onsubmit = (e) => {
  e.preventDefault();
  const v = $("room-input").value.trim();
  if (!v) return;
  $("room-input").value = "";
  joinRoom(v.startsWith("hark:") ? { invite: v } : { room: v });
};
$("room-create").onclick = () => {
  const v = $("room-input").value.trim();
  if (!v) return note("room-note", "Type the new room's name first.");
  $("room-input").value = "";
  joinRoom({ create: v });
};
$("rooms-toggle").onclick = () => { document.body.classList.toggle("show-rooms"); document.body.classList.remove("show-people"); };
$("people-toggle").onclick = () => { document.body.classList.toggle("show-people"); document.body.classList.remove("show-rooms"); };
$("search-toggle").onclick = () => { $("search-form").hidden = false; $("search-input").focus(); };
$("search-close").onclick = () => { $("search-form").hidden = true; $("search-results").hidden = true; };
$("search-form").onsubmit = async (e) => {
  e.preventDefault();
  const q = $("search-input").value.trim();
  if (!q) return;
  try {
    const { messages } = await api.search(state.current.name, q);
    const list = $("search-results");
    list.hidden = false;
    list.replaceChildren(...(messages.length ? messages.map(messageItem) : [Object.assign(document.createElement("li"), { textContent: "No match." })]));
  } catch (err) { note("voice-note", err.message); }
};
$("logout").onclick = async () => { await api.logout().catch(() => {}); location.reload(); };
window.addEventListener("focus", () => { if (state.current) { state.current.unread = 0; state.current.alerts = 0; renderRooms(); } });

// A join link opened in a tab that already shows the page changes only the fragment.
window.addEventListener("hashchange", () => location.reload());

start();
