// Wire format of docs/PROTOCOL.md: one msgpack map per frame, short keys.
// This file turns frames into the SDK's named objects and back; it knows
// nothing of sockets or timers.

import { Decoder, Encoder } from "@msgpack/msgpack";

/** Protocol version spoken (hello.v). */
export const VERSION = 1;

/** Message types, the `t` key (PROTOCOL.md §3). */
export const T = Object.freeze({
  hello: 1, welcome: 2, join: 3, joined: 4, leave: 5, chat: 6, like: 7, gift: 8, ack: 9,
  resume: 10, resumed: 11, ping: 12, pong: 13, batch: 14, notice: 15, error: 16,
  reconnect: 17, missed: 18,
});

// Limits the SDK checks before sending (PROTOCOL.md §1.4); the server checks
// them again.
export const MAX_ROOM_LEN = 64;
export const MAX_TEXT_RUNES = 100; // default; welcome.lim.tx overrides
export const MAX_KEY_BYTES = 64; // gift id and idempotency key
export const MAX_GIFT_COUNT = 10000;
export const MAX_LIKE_COUNT = 1000;
// A server frame is at most 1 MiB; a batch holds at most 10,000 entries.
export const MAX_ENTRIES = 10000;

// Undefined keys are left out: "an absent key means the zero value".
const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();

/** encode returns the frame body of msg (a map with `t`). */
export function encode(msg) {
  return encoder.encode(msg);
}

/**
 * decode returns the map of one frame body. It throws on malformed msgpack,
 * trailing bytes, or a body that is not a map with a positive integer `t`.
 */
export function decode(bytes) {
  const m = decoder.decode(bytes);
  if (m === null || typeof m !== "object" || Array.isArray(m) || m instanceof Uint8Array) {
    throw new Error("frame body is not a map");
  }
  if (!Number.isInteger(m.t) || m.t <= 0) {
    throw new Error("frame has no message type");
  }
  return m;
}

// Zero values for absent or nil keys, and for keys of an unexpected type
// (a receiver skips what it cannot use rather than failing the frame).
export const str = (v) => (typeof v === "string" ? v : "");
export const num = (v) => (typeof v === "number" ? v : typeof v === "bigint" ? Number(v) : 0);
export const bool = (v) => v === true;
const arr = (v) => (Array.isArray(v) ? v.slice(0, MAX_ENTRIES) : []);
const map = (v) => (v !== null && typeof v === "object" && !Array.isArray(v) ? v : {});

/** entry maps a batch/joined/resumed entry. */
export function entry(raw) {
  const m = map(raw);
  return {
    kind: str(m.k),
    seq: num(m.s),
    mid: num(m.mid),
    user: str(m.u),
    name: str(m.n),
    role: str(m.rl),
    text: str(m.x),
    color: num(m.c),
    mode: num(m.m),
    gift: str(m.g),
    count: num(m.cn),
    level: str(m.lv),
    data: str(m.d),
    clientTime: num(m.ct),
    serverTime: num(m.st),
  };
}

const entries = (v) => arr(v).map(entry);

/** roomState maps `rs` (joined, resumed). */
export function roomState(raw) {
  const m = map(raw);
  return {
    title: str(m.ti),
    live: bool(m.lv),
    media: str(m.md),
    online: num(m.on),
    epoch: str(m.e),
    seq: num(m.s),
    backlog: entries(m.bl),
    budget: num(m.bud),
    slowMode: num(m.slow),
    vipOnly: bool(m.vip),
    closed: bool(m.cl),
  };
}

/** welcome maps the server's answer to hello. */
export function welcome(m) {
  const l = map(m.lim);
  return {
    session: str(m.sid),
    node: str(m.node),
    user: str(m.u),
    name: str(m.n),
    role: str(m.rl),
    heartbeat: num(m.hb),
    serverTime: num(m.st),
    limits: {
      maxClientFrame: num(l.cf),
      maxText: num(l.tx),
      chatRate: num(l.cr),
      maxRooms: num(l.rm),
      maxServerFrame: num(l.sf),
      resumeWindow: num(l.rw),
    },
  };
}

/** batch maps one room tick. `online` is undefined when the batch has none. */
export function batch(m) {
  return {
    room: str(m.r),
    tick: num(m.tk),
    serverTime: num(m.st),
    epoch: str(m.e),
    reliable: entries(m.rel),
    lossy: entries(m.los),
    likes: num(m.lk),
    online: typeof m.on === "number" ? m.on : undefined,
    dropped: num(m.dr),
    replay: false,
  };
}

/** ack maps an answer to chat, like, gift or leave. */
export function ack(m) {
  return {
    id: num(m.id),
    code: str(m.code),
    message: str(m.msg),
    mid: num(m.mid),
    seq: num(m.s),
    epoch: str(m.e),
    sampledOut: bool(m.so),
    duplicate: bool(m.dup),
    retryAfter: num(m.ra),
  };
}

/** resumed maps the answer to resume. */
export function resumed(m) {
  return {
    id: num(m.id),
    room: str(m.r),
    recovered: bool(m.rec),
    epoch: str(m.e),
    seq: num(m.s),
    entries: entries(m.ents),
    state: m.rs == null ? undefined : roomState(m.rs),
  };
}

/** pongOnline maps pong's per-room online counts. */
export function pongOnline(m) {
  return arr(m.on).map((o) => ({ room: str(map(o).r), online: num(map(o).on) }));
}

/** validRoom: 1–64 characters of A-Z a-z 0-9 _ - (PROTOCOL.md §1.4). */
export function validRoom(id) {
  return typeof id === "string" && /^[A-Za-z0-9_-]{1,64}$/.test(id);
}

/**
 * checkText returns "" when text is a valid chat of at most maxRunes runes,
 * else the code the server would answer: "invalid_text" (empty, control
 * characters, line breaks) or "too_long".
 */
export function checkText(text, maxRunes) {
  if (typeof text !== "string" || text === "") return "invalid_text";
  let n = 0;
  for (const ch of text) {
    const r = ch.codePointAt(0);
    if (r < 0x20 || r === 0x7f || (r >= 0x80 && r < 0xa0) || r === 0x2028 || r === 0x2029) {
      return "invalid_text";
    }
    if (r >= 0xd800 && r <= 0xdfff) return "invalid_text"; // a lone surrogate is not UTF-8
    n++;
  }
  return n > maxRunes ? "too_long" : "";
}

/** byteLength is the UTF-8 length of s. */
export function byteLength(s) {
  return new TextEncoder().encode(s).length;
}
