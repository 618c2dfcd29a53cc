// The demo room page: lobby (room + name → guest token from the server's
// demo endpoint), then the room: video (WHEP when live), danmaku overlay,
// chat, likes, gifts, online count and the connection's status.
//
// Rendered state is mirrored in data attributes (body[data-status],
// #chat-list li[data-kind][data-text], #overlay[data-drawn], …) and in
// window.danmakuDemo, so browser tests read what a viewer sees.

import { Client, checkText } from "./sdk/danmaku.js";
import { Overlay } from "./overlay.js";
import { play } from "./whep.js";

const $ = (id) => document.getElementById(id);
const MAX_CHAT_ITEMS = 200; // chat list lines kept in the DOM
const LIKE_FLUSH_MS = 400; // taps are merged into one like message this often
const GIFTS = { rose: "🌹 Rose", heart: "💖 Heart", rocket: "🚀 Rocket" };
const GIFT_ICONS = { rose: "🌹", heart: "💖", rocket: "🚀" };

const demo = {
  client: null, overlay: null, room: "", user: "", token: "", tokenExp: 0,
  likes: 0, chats: 0, gifts: 0, live: false, player: null,
};
window.danmakuDemo = demo;

// ---- lobby --------------------------------------------------------------

function initLobby() {
  const params = new URLSearchParams(location.search);
  const room = params.get("room");
  const name = params.get("name") || localStorage.getItem("danmaku.name") || "";
  if (room) $("room-input").value = room;
  $("name-input").value = name;
  for (const b of $("room-picks").querySelectorAll("button")) {
    b.onclick = () => { $("room-input").value = b.dataset.room; $("name-input").focus(); };
  }
  $("join-form").onsubmit = (e) => {
    e.preventDefault();
    enter($("room-input").value.trim(), $("name-input").value.trim());
  };
  if (room && name && params.get("auto") === "1") enter(room, name);
}

/** fetchToken asks the demo endpoint for a guest token. */
async function fetchToken(room, name) {
  let res;
  try {
    res = await fetch("/api/v1/demo/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name, room }),
    });
  } catch (e) {
    throw new Error(`cannot reach the server: ${e.message}`);
  }
  if (res.status === 404) throw new Error("Demo tokens are off on this server: start it with `danmaku serve --demo` (make run does).");
  if (!res.ok) {
    let msg = `${res.status} ${res.statusText}`;
    try { const j = await res.json(); msg = j.message || j.error || j.code || msg; } catch { /* not JSON */ }
    throw new Error(`token refused: ${msg}`);
  }
  const j = await res.json();
  demo.token = j.token;
  demo.tokenExp = jwtExp(j.token);
  return j;
}

/** jwtExp reads a token's exp (ms), 0 when it has none. */
function jwtExp(token) {
  try {
    const p = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return typeof p.exp === "number" ? p.exp * 1000 : 0;
  } catch {
    return 0;
  }
}

async function enter(room, name) {
  const err = $("lobby-error");
  err.textContent = "";
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(room)) { err.textContent = "Room: 1–64 letters, digits, _ or -."; return; }
  if (!name) { err.textContent = "Pick a display name."; return; }
  localStorage.setItem("danmaku.name", name);
  $("join-button").disabled = true;
  try {
    const t = await fetchToken(room, name);
    const url = t.url || `${location.protocol === "https:" ? "wss" : "ws"}://${location.hostname}:7000/ws`;
    showRoom(room);
    setStatus("connecting");
    const client = new Client(url, {
      // The same token while it is valid, a fresh one once it is about to expire.
      tokenSource: async () => {
        if (demo.tokenExp && demo.tokenExp - Date.now() < 30000) await fetchToken(room, name);
        return demo.token;
      },
    });
    demo.client = client;
    wireClient(client); // before open: the status events of the first connection count
    await client.open();
    demo.user = client.welcome.user;
    const state = await client.join(room);
    history.replaceState(null, "", `?room=${encodeURIComponent(room)}`);
    applyState(state, false);
  } catch (e) {
    if (demo.client) demo.client.close();
    demo.client = null;
    showLobby();
    err.textContent = e.code ? describe(e) : e.message;
  } finally {
    $("join-button").disabled = false;
  }
}

function showRoom(room) {
  demo.room = room;
  $("lobby").hidden = true;
  $("room").hidden = false;
  $("room-name").textContent = `#${room}`;
  $("room-title").textContent = room;
  $("chat-list").replaceChildren();
  demo.likes = demo.chats = demo.gifts = 0;
  setLikes(0);
  if (!demo.overlay) demo.overlay = new Overlay($("overlay"));
  demo.overlay.clear();
  document.title = `${room} — danmaku`;
}

function showLobby() {
  stopVideo();
  $("room").hidden = true;
  $("lobby").hidden = false;
  setStatus("idle");
}

// ---- connection ---------------------------------------------------------

function wireClient(c) {
  c.on("status", ({ status }) => setStatus(status));
  c.on("reconnecting", ({ attempt, delay, error }) => {
    banner(`Connection lost${error ? ` (${error.code || error.message})` : ""} — reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${attempt})…`, "warn");
  });
  c.on("reconnect_requested", ({ retryAfter }) => {
    banner(`The server is restarting — moving you in ${(retryAfter / 1000).toFixed(1)} s…`, "warn");
  });
  c.on("reconnected", () => banner("Reconnected.", "ok", 2500));
  c.on("resumed", ({ recovered }) => {
    if (!recovered) systemLine("Some messages were missed while you were away.", "warn");
  });
  c.on("closed", ({ error }) => {
    setStatus("closed");
    banner(`Disconnected: ${describe(error)}. Reload the page to try again.`, "bad");
  });
  c.on("left", ({ error }) => {
    banner(`You left the room: ${describe(error)}`, "bad");
  });
  c.on("state", ({ state, rejoined }) => { if (rejoined) applyState(state, true); });
  c.on("online", ({ online }) => setOnline(online));
  c.on("notice", ({ text }) => systemLine(text, "notice"));
  c.on("error", ({ error }) => systemLine(`Server: ${describe(error)}`, "warn"));
  c.on("batch", ({ batch }) => onBatch(batch));
}

function setStatus(s) {
  document.body.dataset.status = s;
  const el = $("status");
  el.dataset.status = s;
  el.textContent = s;
}

let bannerTimer = 0;
function banner(text, kind, hideAfter = 0) {
  const el = $("conn-banner");
  el.textContent = text;
  el.className = `conn-banner ${kind}`;
  el.hidden = false;
  clearTimeout(bannerTimer);
  if (hideAfter) bannerTimer = setTimeout(() => { el.hidden = true; }, hideAfter);
}

function setOnline(n) {
  const el = $("online-count");
  el.dataset.online = String(n);
  el.textContent = n.toLocaleString();
}

function setLikes(n) {
  const el = $("like-count");
  el.dataset.likes = String(n);
  el.textContent = n.toLocaleString();
}

// ---- room data ----------------------------------------------------------

function applyState(st, rejoined) {
  if (st.title) $("room-title").textContent = st.title;
  setOnline(st.online);
  if (!rejoined) for (const e of st.backlog) chatLine(e);
  if (st.closed) banner("This room is closed.", "bad");
  setLive(st.live, st.media);
  roomStats(st);
}

function roomStats(st) {
  const bits = [`budget ${st.budget || "?"} msgs/s`];
  if (st.slowMode) bits.push(`slow mode ${st.slowMode} s`);
  if (st.vipOnly) bits.push("VIP only");
  $("room-stats").textContent = bits.join(" · ");
}

let dropped = 0;
function onBatch(b) {
  const frag = document.createDocumentFragment();
  for (const e of b.reliable) {
    if (e.kind === "gift") giftLine(e, frag);
    else if (e.kind === "notice") systemLine(e.text, "notice", frag);
    else if (e.kind === "state") stateEntry(e);
    else if (e.kind === "mod") systemLine(modText(e), "system", frag);
  }
  for (const e of b.lossy) {
    if (e.kind === "chat") {
      chatLine(e, frag);
      demo.overlay.add({ text: e.text, color: e.color, mode: e.mode, own: e.user === demo.user });
    } else if (e.kind === "enter") {
      systemLine(`${e.name || e.user} entered`, "system", frag);
    }
  }
  appendLines(frag);
  if (b.likes) setLikes((demo.likes += b.likes));
  if (b.dropped) {
    dropped += b.dropped;
    $("room-stats").dataset.dropped = String(dropped);
  }
}

function stateEntry(e) {
  try {
    const d = JSON.parse(e.data || "{}");
    if (typeof d.live === "boolean") setLive(d.live, d.media || "");
  } catch { /* not ours */ }
}

function modText(e) {
  if (e.text) return e.text;
  try {
    const d = JSON.parse(e.data || "{}");
    return `moderation: ${d.action || d.kind || "event"}${d.user ? ` (${d.user})` : ""}`;
  } catch {
    return "moderation event";
  }
}

function li(kind, e) {
  const el = document.createElement("li");
  el.className = kind;
  el.dataset.kind = kind;
  if (e) {
    el.dataset.user = e.user;
    el.dataset.text = e.text;
    if (e.user && e.user === demo.user) el.classList.add("own");
  }
  return el;
}

function who(e) {
  const s = document.createElement("span");
  s.className = "who";
  if (e.role && !["viewer", "guest", ""].includes(e.role)) {
    const r = document.createElement("span");
    r.className = "role";
    r.textContent = e.role;
    s.append(r);
  }
  s.append(`${e.name || e.user}:`);
  return s;
}

function chatLine(e, into, tag) {
  const el = li("chat", e);
  const dot = document.createElement("span");
  dot.className = "dot";
  dot.style.background = e.color ? `#${e.color.toString(16).padStart(6, "0")}` : "#fff";
  el.append(dot, who(e), e.text);
  if (tag) {
    const t = document.createElement("span");
    t.className = "tag";
    t.textContent = tag;
    el.append(t);
    el.dataset.tag = tag;
  }
  demo.chats++;
  if (into) into.append(el);
  else appendLines(el);
}

function giftLine(e, into) {
  const el = li("gift", e);
  el.dataset.gift = e.gift;
  el.dataset.count = String(e.count);
  el.dataset.seq = String(e.seq);
  el.append(who(e), `sent ${e.count} × ${GIFTS[e.gift] || e.gift}`);
  demo.gifts++;
  into.append(el);
  giftBanner(e);
}

function systemLine(text, kind = "system", into) {
  const el = li(kind);
  el.dataset.text = text;
  el.textContent = text;
  if (into) into.append(el);
  else appendLines(el);
}

function appendLines(node) {
  const list = $("chat-list");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(node);
  while (list.childElementCount > MAX_CHAT_ITEMS) list.firstElementChild.remove();
  list.dataset.count = String(demo.chats);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

const MAX_BANNERS = 3; // banners on screen at once; more wait their turn
const bannerQueue = [];
function giftBanner(e) {
  bannerQueue.push(e);
  pumpBanners();
}
function pumpBanners() {
  const box = $("gift-banners");
  while (bannerQueue.length && box.childElementCount < MAX_BANNERS) {
    const e = bannerQueue.shift();
    const el = document.createElement("div");
    el.className = "gift-banner";
    el.dataset.gift = e.gift;
    const icon = document.createElement("span");
    icon.className = "icon";
    icon.textContent = GIFT_ICONS[e.gift] || "🎁";
    el.append(icon, `${e.name || e.user} sent ${e.count > 1 ? `${e.count} × ` : ""}${(GIFTS[e.gift] || e.gift).replace(/^\S+\s/, "")}`);
    el.addEventListener("animationend", (ev) => {
      if (ev.animationName === "gift-out") { el.remove(); pumpBanners(); }
    });
    box.append(el);
  }
}

// ---- video --------------------------------------------------------------

async function setLive(live, media) {
  const box = $("video-box");
  box.dataset.live = String(live);
  demo.live = live;
  if (!live) {
    stopVideo(true);
    $("offline-detail").textContent = "No one is streaming in this room right now.";
    return;
  }
  if (demo.player) return;
  const room = demo.room;
  try {
    demo.player = await play($("video"), room, demo.token);
    if (!demo.live || demo.room !== room) stopVideo();
    box.dataset.media = media;
  } catch (e) {
    demo.player = null;
    box.dataset.live = "false";
    $("offline-detail").textContent = e.code === "unavailable"
      ? "The stream has not started yet." : `Cannot play the stream: ${e.message}`;
  }
}

function stopVideo(ended = false) {
  if (demo.player) demo.player.stop(ended);
  demo.player = null;
}

// ---- sending ------------------------------------------------------------

const MESSAGES = {
  rate_limited: (e) => `Slow down — you can send again in ${secs(e.retryAfter || 1000)}.`,
  slow_mode: (e) => `Slow mode is on: wait ${secs(e.retryAfter || 1000)}.`,
  muted: () => "You are muted in this room.",
  banned: () => "You are banned from this room.",
  vip_only: () => "Only VIPs and staff can chat in this room right now.",
  duplicate: () => "You just sent that.",
  too_long: () => `Too long: at most ${maxText()} characters.`,
  invalid_text: () => "Can't send empty text, line breaks or control characters.",
  forbidden: () => "You are not allowed to do that here.",
  not_joined: () => "Not in the room (rejoining…).",
  room_closed: () => "This room is closed.",
  unavailable: () => "Not connected — reconnecting…",
  timeout: () => "No answer from the server — try again.",
  gift_denied: (e) => `Gift refused${e.message ? `: ${e.message}` : ""}.`,
  closed: () => "Disconnected.",
};
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
function describe(e) {
  if (!e) return "unknown error";
  const f = MESSAGES[e.code];
  return f ? f(e) : e.code ? `${e.code}` : e.message;
}
const maxText = () => (demo.client && demo.client.welcome && demo.client.welcome.limits.maxText) || 100;

function sendStatus(text, state) {
  const el = $("send-status");
  el.textContent = text;
  el.dataset.state = state;
}

function initSending() {
  let color = 0;
  for (const b of $("swatches").querySelectorAll("button")) {
    b.onclick = () => {
      color = Number(b.dataset.color);
      for (const x of $("swatches").children) x.classList.toggle("selected", x === b);
    };
  }
  const input = $("chat-input");
  const counter = () => {
    const n = Array.from(input.value).length;
    const el = $("char-count");
    el.textContent = `${n}/${maxText()}`;
    el.classList.toggle("over", n > maxText());
    $("send-button").disabled = n === 0 || n > maxText();
  };
  input.oninput = counter;
  counter();
  $("chat-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const c = demo.client;
    const text = input.value.trim();
    if (!c || !text) return;
    const bad = checkText(text, maxText());
    if (bad) { sendStatus(describe({ code: bad }), "error"); return; }
    const mode = Number($("mode-select").value);
    sendStatus("Sending…", "");
    try {
      const ack = await c.chat(demo.room, text, { color, mode });
      input.value = "";
      counter();
      if (ack.sampledOut) {
        // Accepted but not broadcast: show it to the sender only.
        sendStatus("Sampled out — the room is busy, only you see this one.", "sampled");
        chatLine({ user: demo.user, name: c.welcome.name, role: c.welcome.role, text, color }, null, "only you");
        demo.overlay.add({ text, color, mode, own: true });
      } else {
        sendStatus("Sent.", "ok");
      }
    } catch (e) {
      sendStatus(describe(e), "error");
    }
  };

  // Likes: every tap counts at once on the button, and taps are merged into
  // one like message per LIKE_FLUSH_MS (the protocol takes 1–1000 at once).
  let taps = 0;
  let flushing = null;
  $("like-button").onclick = () => {
    taps++;
    const btn = $("like-button");
    btn.classList.remove("pop");
    void btn.offsetWidth;
    btn.classList.add("pop");
    flushing ??= setTimeout(async () => {
      flushing = null;
      const n = Math.min(taps, 1000);
      taps -= n;
      try {
        await demo.client.like(demo.room, n);
      } catch (e) {
        sendStatus(describe(e), "error");
      }
    }, LIKE_FLUSH_MS);
  };

  for (const b of $("gift-buttons").querySelectorAll("button")) {
    b.onclick = async () => {
      const c = demo.client;
      if (!c) return;
      b.disabled = true;
      sendStatus(`Sending ${GIFTS[b.dataset.gift]}…`, "");
      try {
        // The SDK keeps the idempotency key across retries and reconnects.
        const ack = await c.gift(demo.room, b.dataset.gift, 1);
        sendStatus(`${GIFTS[b.dataset.gift]} sent (#${ack.seq}).`, "ok");
      } catch (e) {
        sendStatus(e.ack === null && !e.local ? "Gift not confirmed yet — it will not be charged twice." : describe(e), "error");
      } finally {
        b.disabled = false;
      }
    };
  }

  $("overlay-toggle").onchange = (e) => {
    demo.overlay.enabled = e.target.checked;
    if (!e.target.checked) demo.overlay.clear();
  };
  $("leave-button").onclick = () => {
    if (demo.client) demo.client.close();
    demo.client = null;
    history.replaceState(null, "", location.pathname);
    showLobby();
  };
}

initLobby();
initSending();
