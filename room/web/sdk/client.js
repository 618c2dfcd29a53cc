// Client: one viewer's connection to a danmaku edge over WebSocket, kept
// alive across reconnects. The JavaScript twin of room/client (Go): same
// defaults, same reconnect, resume and gift-retry rules.

import * as wire from "./wire.js";
import { T } from "./wire.js";
import { Tracker } from "./tracker.js";
import { DanmakuError, GiftError, retryable } from "./errors.js";

export const SDK_NAME = "danmaku-js";
export const SDK_VERSION = "0.1.0";

// The heartbeat assumed when welcome announces none (PROTOCOL.md §2).
const DEFAULT_SERVER_HEARTBEAT = 25000;
// Maintenance timer bounds: often enough to ping on time and notice a dead
// server within a fraction of an interval, at most once a second.
const MIN_TICK = 10;
const MAX_TICK = 1000;

/** Defaults of every option, as in the Go SDK's DefaultConfig. */
export const DEFAULTS = Object.freeze({
  token: "",
  tokenSource: null,
  WebSocket: null,
  platform: "web",
  dialTimeout: 10000,
  requestTimeout: 10000,
  heartbeat: 0,
  backoffBase: 200,
  backoffMax: 10000,
  maxReconnectAttempts: 0,
  giftDeadline: 30000,
  giftAttemptTimeout: 5000,
  resumeTimeout: 10000,
  maxHeld: 10000,
  maxPreJoin: 64,
  logger: null,
});

/** backoff is the full-jitter delay of attempt n (from 0): uniform in [0, min(max, base·2^n)). */
export function backoff(base, max, n) {
  const ceil = n < 32 ? Math.min(max, base * 2 ** n) : max;
  return Math.random() * ceil;
}

/** newKey returns a random idempotency key: 32 hex digits, 128 bits. */
export function newKey() {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * connect opens a client and resolves once the server has welcomed it. It
 * does not retry the first connection; after it resolves, the client
 * reconnects by itself until close().
 */
export async function connect(url, options = {}) {
  const c = new Client(url, options);
  await c.open();
  return c;
}

export class Client {
  constructor(url, options = {}) {
    this.url = url;
    this.opts = { ...DEFAULTS, ...options };
    const o = this.opts;
    for (const k of ["dialTimeout", "requestTimeout", "backoffBase", "backoffMax", "giftDeadline",
      "giftAttemptTimeout", "resumeTimeout", "maxHeld", "maxPreJoin"]) {
      if (!(o[k] > 0)) throw new TypeError(`danmaku: option ${k} must be positive, got ${o[k]}`);
    }
    if (o.backoffMax < o.backoffBase) throw new TypeError("danmaku: backoffMax is below backoffBase");
    this.WS = o.WebSocket || globalThis.WebSocket;
    if (typeof this.WS !== "function") {
      throw new TypeError("danmaku: no WebSocket in this environment; pass options.WebSocket");
    }
    this.log = o.logger || { debug() {}, warn: (...a) => console.warn(...a) };
    this.listeners = new Map();
    this.rooms = new Map();
    this.sess = null; // the current connection, null between two
    this.dialing = null; // the connection being opened, until welcome
    this.waiters = []; // {resolve, reject} waiting for a connection
    this.sleeps = new Set(); // pending pauses, ended by close()
    this.ids = 0;
    this.attempt = 0; // reconnect backoff exponent
    this.closed = false;
    this.error = null; // why the client stopped by itself
    this.rttMs = 0;
    this.counters = Object.create(null);
    this.state = "idle"; // idle, connecting, connected, reconnecting, closed
  }

  // ---- public API -------------------------------------------------------

  /** open makes the first connection (connect() calls it). */
  async open() {
    if (this.sess || this.closed) throw new Error("danmaku: open called twice or after close");
    this.setState("connecting");
    let s;
    try {
      s = await this.dial();
    } catch (e) {
      this.closed = true;
      this.setState("closed");
      throw e;
    }
    if (this.closed) {
      this.fail(s, new DanmakuError("closed", "client closed"));
      throw new DanmakuError("closed", "client closed");
    }
    this.attach(s);
    this.emit("connected", { welcome: s.welcome });
  }

  /** on subscribes fn to an event kind and returns a function that unsubscribes it. */
  on(kind, fn) {
    let set = this.listeners.get(kind);
    if (!set) this.listeners.set(kind, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  /** welcome of the current (or latest) connection. */
  get welcome() {
    return this.lastWelcome || null;
  }

  /** rtt is the latest ping round trip, ms (0 before the first pong). */
  get rtt() {
    return this.rttMs;
  }

  /** stats returns a copy of the client's counters. */
  stats() {
    return { ...this.counters };
  }

  /** online is a joined room's latest cluster-wide online count. */
  online(room) {
    const r = this.rooms.get(room);
    return r ? r.online : undefined;
  }

  /** position is a joined room's epoch and the last reliable seq delivered: what a resume asks from. */
  position(room) {
    const r = this.rooms.get(room);
    return r && r.tracker.based ? r.tracker.position() : undefined;
  }

  /** join joins room and resolves with its state; the SDK resumes it after every reconnect. */
  async join(name) {
    if (!wire.validRoom(name)) throw this.local("bad_request", `invalid room id ${JSON.stringify(name)}`, name);
    if (this.rooms.has(name)) throw this.local("bad_request", "room already joined", name);
    const s = this.current(name);
    const id = this.newId();
    const r = {
      name, joinId: id, online: 0, tracker: new Tracker(this.opts.maxHeld, this.opts.maxPreJoin, (c, n) => this.count(c, n)),
      stale: false, resumeId: 0, resumeSent: 0, resumeAt: 0, resumeFails: 0,
    };
    this.rooms.set(name, r);
    let m;
    try {
      m = await this.call(s, { t: T.join, id, r: name });
    } catch (e) {
      if (this.rooms.get(name) === r) this.rooms.delete(name);
      if (e.code === "timeout") this.send(s, { t: T.leave, id: this.newId(), r: name }); // it may join us late
      throw e;
    }
    if (m.t === T.joined) return m.state;
    if (this.rooms.get(name) === r) this.rooms.delete(name);
    throw new DanmakuError(wire.str(m.code) || "internal", wire.str(m.msg), { room: name });
  }

  /** leave leaves room: its events stop at once. */
  async leave(name) {
    if (!this.rooms.delete(name)) throw this.local("not_joined", "room not joined", name);
    if (!this.sess) return; // no connection, no membership
    try {
      await this.ackCall(this.sess, { t: T.leave, id: this.newId(), r: name }, name);
    } catch (e) {
      if (e.code !== "unavailable") throw e;
    }
  }

  /**
   * chat sends a danmaku to a joined room and resolves with the ack. A
   * resolved ack may have sampledOut set: accepted, but the room was over its
   * budget and did not broadcast it (show it to the sender only). Refusals
   * reject with a DanmakuError (code, retryAfter).
   */
  async chat(room, text, { color = 0, mode = 0 } = {}) {
    const limit = (this.lastWelcome && this.lastWelcome.limits.maxText) || wire.MAX_TEXT_RUNES;
    const bad = wire.checkText(text, limit);
    if (bad) throw this.local(bad, bad === "too_long" ? `over ${limit} characters` : "empty text or control characters", room);
    if (!Number.isInteger(color) || color < 0 || color > 0xffffff) throw this.local("bad_request", "color must be 0xRRGGBB", room);
    if (![0, 1, 2].includes(mode)) throw this.local("bad_request", "mode must be 0, 1 or 2", room);
    const s = this.current(room);
    const msg = { t: T.chat, id: this.newId(), r: room, x: text, ct: Date.now() };
    if (color) msg.c = color;
    if (mode) msg.m = mode;
    return this.ackCall(s, msg, room);
  }

  /** like sends count likes (1–1000: merge taps client-side). */
  async like(room, count = 1) {
    if (!Number.isInteger(count) || count < 1 || count > wire.MAX_LIKE_COUNT) {
      throw this.local("bad_request", `like count must be 1–${wire.MAX_LIKE_COUNT}`, room);
    }
    return this.ackCall(this.current(room), { t: T.like, id: this.newId(), r: room, n: count }, room);
  }

  /** gift sends count of giftId with a fresh idempotency key; see giftWithKey. */
  gift(room, giftId, count = 1) {
    return this.giftWithKey(room, giftId, count, newKey());
  }

  /**
   * giftWithKey sends a gift under the app's own idempotency key (its order
   * id). It retries with the same key on timeouts, retryable codes and across
   * reconnects, with jittered backoff, until an ack arrives or giftDeadline
   * passes. A repeat of an accepted gift is answered with its original ack
   * (duplicate true, same seq): a gift is never doubled. Rejects with a
   * GiftError whose ack is null when the outcome is unknown.
   */
  async giftWithKey(room, giftId, count, key) {
    const bad = (msg) => new GiftError(key, "bad_request", msg, { room, local: true });
    if (!wire.validRoom(room)) throw bad("invalid room id");
    if (typeof giftId !== "string" || giftId === "" || wire.byteLength(giftId) > wire.MAX_KEY_BYTES) throw bad("gift id must be 1–64 bytes");
    if (typeof key !== "string" || key === "" || wire.byteLength(key) > wire.MAX_KEY_BYTES) throw bad("idempotency key must be 1–64 bytes");
    if (!Number.isInteger(count) || count < 1 || count > wire.MAX_GIFT_COUNT) throw bad(`gift count must be 1–${wire.MAX_GIFT_COUNT}`);
    const ct = Date.now();
    const deadline = ct + this.opts.giftDeadline;
    const gaveUp = (err) => new GiftError(key, err && err.code === "closed" ? "closed" : "timeout",
      `no ack before the deadline${err ? ` (last: ${err.message})` : ""}`, { room, cause: err });
    let lastErr = null;
    let wait = 0; // the server's retryAfter
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new GiftError(key, "closed", "client closed", { room, cause: lastErr });
      if (attempt > 0) {
        this.count("giftRetries");
        const d = Math.max(wait, backoff(this.opts.backoffBase, this.opts.backoffMax, attempt - 1));
        if (Date.now() + d >= deadline) throw gaveUp(lastErr);
        await this.pause(d);
      }
      let s;
      try {
        s = await this.waitSession(deadline - Date.now());
      } catch (e) {
        throw gaveUp(e.code === "closed" ? e : lastErr || e);
      }
      const left = deadline - Date.now();
      let m;
      try {
        m = await this.call(s, { t: T.gift, id: this.newId(), r: room, g: giftId, n: count, k: key, ct },
          Math.min(this.opts.giftAttemptTimeout, left));
      } catch (e) {
        if (this.closed || Date.now() >= deadline) throw gaveUp(e);
        lastErr = e; // attempt timeout or connection lost: again, same key
        wait = 0;
        continue;
      }
      const a = wire.ack(m);
      if (m.t === T.ack && !a.code) return a;
      const code = a.code || "internal";
      const err = new GiftError(key, code, a.message, { room, ack: m.t === T.ack ? a : null });
      if (!(retryable(code) || (code === "not_joined" && this.rooms.has(room)))) throw err;
      wait = a.retryAfter;
      lastErr = err;
    }
  }

  /**
   * reconnect drops the current connection and connects again at once (with
   * the usual backoff), resuming every room. For an app that knows the
   * network changed; the SDK reconnects by itself otherwise.
   */
  reconnect() {
    if (this.sess) this.fail(this.sess, new DanmakuError("unavailable", "reconnect asked by the app"));
  }

  /** close disconnects, fails pending calls and stops every timer. No event follows. */
  close() {
    if (this.closed) return;
    this.closed = true;
    const err = new DanmakuError("closed", "client closed");
    if (this.sess) this.fail(this.sess, err);
    if (this.dialing) this.fail(this.dialing, err);
    for (const w of this.waiters.splice(0)) w.reject(err);
    for (const sl of this.sleeps) sl();
    this.sleeps.clear();
    this.setState("closed");
  }

  // ---- connection -------------------------------------------------------

  /** dial opens one WebSocket and completes hello/welcome. */
  async dial() {
    const token = this.opts.tokenSource ? await this.opts.tokenSource() : this.opts.token;
    if (this.closed) throw new DanmakuError("closed", "client closed");
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new this.WS(this.url);
      } catch (e) {
        reject(new DanmakuError("unavailable", `connect ${this.url}: ${e.message}`, { cause: e }));
        return;
      }
      ws.binaryType = "arraybuffer";
      const s = {
        ws, welcome: null, pending: new Map(), dead: false, started: 0, lastRx: 0, lastPing: 0,
        pingId: 0, pingAt: 0, pingEvery: 0, deadAfter: 0, timer: 0, reconnectAfter: 0, kicked: null,
        handshake: { resolve, reject },
      };
      s.handshakeTimer = setTimeout(() => this.fail(s, new DanmakuError("timeout", `no welcome within ${this.opts.dialTimeout} ms`)), this.opts.dialTimeout);
      this.dialing = s; // close() ends it too
      ws.onopen = () => {
        if (s.dead) return;
        this.send(s, {
          t: T.hello, id: this.newId(), v: wire.VERSION, sdk: SDK_NAME, sv: SDK_VERSION,
          pf: this.opts.platform, tk: token || undefined,
        });
      };
      ws.onmessage = (ev) => this.onFrame(s, ev.data);
      ws.onerror = () => {}; // the close that follows says it
      ws.onclose = (ev) => this.fail(s, new DanmakuError("unavailable", `connection closed (${ev.code}${ev.reason ? " " + ev.reason : ""})`));
    });
  }

  /** attach makes s the current connection and resumes every joined room on it. */
  attach(s) {
    this.sess = s;
    this.lastWelcome = s.welcome;
    this.setState("connected");
    const hb = s.welcome.heartbeat > 0 ? s.welcome.heartbeat : DEFAULT_SERVER_HEARTBEAT;
    s.pingEvery = this.opts.heartbeat > 0 ? this.opts.heartbeat : (hb * 4) / 5;
    s.deadAfter = 2 * Math.max(hb, s.pingEvery);
    s.started = s.lastRx = s.lastPing = Date.now();
    s.timer = setInterval(() => this.maintain(s), Math.min(Math.max(s.pingEvery / 4, MIN_TICK), MAX_TICK));
    for (const w of this.waiters.splice(0)) w.resolve(s);
    const now = Date.now();
    for (const r of this.rooms.values()) {
      if (!r.tracker.based) continue;
      r.stale = true;
      r.resumeAt = 0;
      this.sendResume(s, r, now);
    }
  }

  /** fail ends s once: closes it, fails its requests and, if it was current, reconnects. */
  fail(s, err) {
    if (s.dead) return;
    s.dead = true;
    s.cause = err;
    clearInterval(s.timer);
    clearTimeout(s.handshakeTimer);
    s.ws.onopen = s.ws.onmessage = s.ws.onclose = null;
    try {
      s.ws.close(1000);
    } catch { /* already closed */ }
    if (this.dialing === s) this.dialing = null;
    const lost = err.code === "closed" ? err : new DanmakuError("unavailable", `connection lost (${err.message})`, { cause: err });
    for (const p of s.pending.values()) p.reject(lost);
    s.pending.clear();
    if (s.handshake) {
      s.handshake.reject(err);
      s.handshake = null;
      return;
    }
    if (this.sess !== s) return;
    this.sess = null;
    for (const [name, r] of this.rooms) {
      r.resumeId = 0;
      if (!r.tracker.based) this.rooms.delete(name); // its join fails with the connection
    }
    if (!this.closed) this.reconnectLoop(s);
  }

  /** reconnectLoop connects again with full-jitter backoff until it succeeds, close() or a permanent refusal. */
  async reconnectLoop(s) {
    this.log.debug("danmaku: connection lost", s.cause);
    this.emit("disconnected", { error: s.cause });
    if (s.kicked) return this.stop(s.kicked);
    this.setState("reconnecting");
    if (Date.now() - s.started >= this.opts.backoffMax) this.attempt = 0;
    let wait = s.reconnectAfter;
    let lastErr = null;
    for (let failures = 0; ; failures++) {
      const max = this.opts.maxReconnectAttempts;
      if (max > 0 && failures >= max) return this.stop(new DanmakuError("unavailable", `gave up after ${max} reconnect attempts`, { cause: lastErr }));
      const delay = wait + backoff(this.opts.backoffBase, this.opts.backoffMax, this.attempt);
      wait = 0;
      this.attempt++;
      this.emit("reconnecting", { attempt: failures + 1, delay, error: lastErr });
      await this.pause(delay);
      if (this.closed) return;
      try {
        const ns = await this.dial();
        if (this.closed) return this.fail(ns, new DanmakuError("closed", "client closed"));
        this.count("reconnects");
        this.attach(ns);
        this.emit("reconnected", { welcome: ns.welcome });
        return;
      } catch (e) {
        if (this.closed) return;
        if (this.permanent(e)) return this.stop(e);
        lastErr = e;
      }
    }
  }

  /** permanent: a refusal that retrying cannot fix. */
  permanent(e) {
    if (e.code === "bad_version") return true;
    return !this.opts.tokenSource && (e.code === "unauthorized" || e.code === "token_expired");
  }

  /** stop ends the client after a permanent failure. */
  stop(err) {
    this.log.warn("danmaku: client stopped:", err.message);
    this.error = err;
    this.emit("closed", { error: err });
    this.close();
  }

  /** maintain pings, declares a silent server dead and (re)sends resumes that are due. */
  maintain(s) {
    const now = Date.now();
    if (now - s.lastRx > s.deadAfter) {
      this.fail(s, new DanmakuError("timeout", "no frame from the server for two heartbeat intervals"));
      return;
    }
    if (now - s.lastPing >= s.pingEvery) {
      s.lastPing = now;
      s.pingId = this.newId();
      s.pingAt = now;
      this.send(s, { t: T.ping, id: s.pingId });
    }
    for (const r of this.rooms.values()) {
      if (r.resumeId && now - r.resumeSent > this.opts.resumeTimeout) r.resumeId = 0; // ask again
      this.dueResume(s, r, now);
    }
  }

  /** dueResume sends the resume r needs now, if any. */
  dueResume(s, r, now) {
    if (!r.tracker.based || r.resumeId || !(r.stale || r.tracker.gap()) || now < r.resumeAt) return;
    this.sendResume(s, r, now);
  }

  sendResume(s, r, now) {
    r.resumeId = this.newId();
    r.resumeSent = now;
    this.count("resumes");
    const { epoch, seq } = r.tracker.position();
    this.send(s, { t: T.resume, id: r.resumeId, r: r.name, e: epoch, s: seq });
  }

  /** resumeFailed delays r's next resume after a refused or fruitless one. */
  resumeFailed(r, now) {
    r.resumeAt = now + backoff(this.opts.backoffBase, this.opts.backoffMax, r.resumeFails);
    r.resumeFails++;
  }

  // ---- frames -----------------------------------------------------------

  send(s, msg) {
    if (s.dead) return false;
    try {
      s.ws.send(wire.encode(msg));
      return true;
    } catch (e) {
      this.fail(s, new DanmakuError("unavailable", `write: ${e.message}`, { cause: e }));
      return false;
    }
  }

  /** call sends a request and resolves with its answer (ack, joined, error…) or rejects. */
  call(s, msg, timeout = this.opts.requestTimeout) {
    return new Promise((resolve, reject) => {
      if (s.dead) {
        reject(new DanmakuError("unavailable", "not connected"));
        return;
      }
      const timer = setTimeout(() => {
        s.pending.delete(msg.id);
        reject(new DanmakuError("timeout", `no answer within ${timeout} ms`, { room: msg.r || "" }));
      }, timeout);
      s.pending.set(msg.id, {
        resolve: (m) => { clearTimeout(timer); resolve(m); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.send(s, msg);
    });
  }

  /** ackCall sends a request answered by an ack; a code rejects with a DanmakuError. */
  async ackCall(s, msg, room) {
    const m = await this.call(s, msg);
    if (m.t === T.error) throw new DanmakuError(wire.str(m.code) || "internal", wire.str(m.msg), { room });
    const a = wire.ack(m);
    if (a.code) throw new DanmakuError(a.code, a.message, { ack: a, room });
    return a;
  }

  /** answer hands m to the request waiting for it. */
  answer(s, id, m) {
    const p = s.pending.get(id);
    if (!p) return false;
    s.pending.delete(id);
    p.resolve(m);
    return true;
  }

  onFrame(s, data) {
    if (s.dead) return;
    s.lastRx = Date.now();
    if (typeof data === "string") {
      this.count("badFrames"); // the protocol never sends text messages
      return;
    }
    let m;
    try {
      m = wire.decode(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
    } catch (e) {
      // Framing is intact, so skip the frame; a lost reliable entry shows
      // up as a gap and is resumed.
      this.count("badFrames");
      this.log.warn("danmaku: undecodable server frame:", e.message);
      return;
    }
    if (s.handshake) return this.onHandshake(s, m);
    switch (m.t) {
      case T.batch: return this.onBatch(s, m);
      case T.ack: return void this.answer(s, wire.num(m.id), m);
      case T.joined: return this.onJoined(s, m);
      case T.resumed: return this.onResumed(s, m);
      case T.error: return this.onError(s, m);
      case T.pong: return this.onPong(s, m);
      case T.notice:
        return this.emit("notice", { room: wire.str(m.r), text: wire.str(m.x), level: wire.str(m.lv) });
      case T.missed:
        this.count("missed", wire.num(m.bt));
        return this.emit("missed", { room: wire.str(m.r), batches: wire.num(m.bt) });
      case T.reconnect: {
        const why = wire.str(m.why);
        s.reconnectAfter = wire.num(m.ra);
        this.emit("reconnect_requested", { reason: why, retryAfter: s.reconnectAfter });
        return this.fail(s, new DanmakuError(why || "shutdown", "the server asked to reconnect"));
      }
      default:
        if (m.t > T.missed) this.count("unknownTypes"); // a newer server: skip what we do not know
    }
  }

  onHandshake(s, m) {
    const h = s.handshake;
    if (m.t === T.welcome) {
      s.handshake = null;
      clearTimeout(s.handshakeTimer);
      if (this.dialing === s) this.dialing = null;
      s.welcome = wire.welcome(m);
      h.resolve(s);
    } else if (m.t === T.error) {
      this.fail(s, new DanmakuError(wire.str(m.code) || "internal", wire.str(m.msg)));
    }
  }

  /** deliver counts what the app gets and hands a batch over. */
  deliver(room, b) {
    this.count("batchesDelivered");
    this.count("reliable", b.reliable.length);
    this.count("lossy", b.lossy.length);
    this.emit("batch", { room, batch: b });
  }

  setOnline(r, n) {
    if (r.online === n) return;
    r.online = n;
    this.emit("online", { room: r.name, online: n });
  }

  onBatch(s, m) {
    this.count("batches");
    const b = wire.batch(m);
    const r = this.rooms.get(b.room);
    if (!r) {
      this.count("notJoined"); // left, or a join given up
      return;
    }
    const out = r.tracker.batch(b);
    this.dueResume(s, r, Date.now());
    if (r.tracker.based && b.online !== undefined) this.setOnline(r, b.online);
    if (out) this.deliver(r.name, out);
  }

  onJoined(s, m) {
    const state = wire.roomState(m.rs);
    const name = wire.str(m.r);
    const id = wire.num(m.id);
    const r = this.rooms.get(name);
    const ok = r && r.joinId === id && !r.tracker.based;
    let pre = [];
    if (ok) pre = r.tracker.join(state.epoch, state.seq);
    this.answer(s, id, { t: T.joined, state });
    if (!ok) return;
    this.dueResume(s, r, Date.now());
    this.emit("state", { room: name, state, rejoined: false });
    this.setOnline(r, state.online);
    for (const b of pre) this.deliver(name, b);
  }

  onResumed(s, m) {
    const res = wire.resumed(m);
    const r = this.rooms.get(res.room);
    if (!r || r.resumeId !== res.id) return; // left meanwhile, or a resume already sent again
    const now = Date.now();
    r.resumeId = 0;
    r.stale = false;
    const before = r.tracker.position().seq;
    const { replay, rebased } = r.tracker.resumed(res);
    const { epoch, seq: after } = r.tracker.position();
    this.count(rebased ? "rebased" : "recovered");
    if (r.tracker.gap() && !rebased && after === before) {
      this.resumeFailed(r, now); // no progress: do not spin, ask again later
    } else {
      r.resumeFails = 0;
      r.resumeAt = 0;
    }
    this.dueResume(s, r, now);
    this.emit("resumed", { room: r.name, recovered: !rebased });
    if (rebased) {
      if (rebased.backlog === undefined) rebased.backlog = [];
      this.emit("state", { room: r.name, state: rebased, rejoined: true });
      if (rebased.online !== undefined) this.setOnline(r, rebased.online);
    }
    if (replay.length > 0) {
      this.deliver(r.name, {
        room: r.name, tick: 0, serverTime: 0, epoch, reliable: replay, lossy: [], likes: 0,
        online: undefined, dropped: 0, replay: true,
      });
    }
  }

  onError(s, m) {
    const code = wire.str(m.code) || "internal";
    const room = wire.str(m.r);
    const id = wire.num(m.id);
    const err = new DanmakuError(code, wire.str(m.msg), { room });
    if (id === 0) {
      if (code === "kicked") s.kicked = err; // an operator's decision: do not come back by ourselves
      this.emit("error", { room, error: err });
      return;
    }
    if (this.answer(s, id, m)) return;
    // Not a call: maybe a resume the server refused.
    for (const [name, r] of this.rooms) {
      if (r.resumeId !== id) continue;
      r.resumeId = 0;
      if (retryable(code)) {
        this.resumeFailed(r, Date.now());
      } else {
        this.rooms.delete(name);
        this.emit("left", { room: name, error: err });
      }
      return;
    }
  }

  onPong(s, m) {
    if (s.pingId && wire.num(m.id) === s.pingId) this.rttMs = Date.now() - s.pingAt;
    for (const { room, online } of wire.pongOnline(m)) {
      const r = this.rooms.get(room);
      if (r && r.tracker.based) this.setOnline(r, online);
    }
  }

  // ---- helpers ----------------------------------------------------------

  newId() {
    this.ids = (this.ids + 1) >>> 0;
    if (this.ids === 0) this.ids = 1; // 0 means "no id"
    return this.ids;
  }

  count(name, n = 1) {
    if (n > 0) this.counters[name] = (this.counters[name] || 0) + n;
  }

  local(code, message, room) {
    return new DanmakuError(code, message, { room, local: true });
  }

  /** current returns the connection or throws "unavailable" while reconnecting. */
  current(room) {
    if (this.closed) throw new DanmakuError("closed", "client closed", { room });
    if (!this.sess) throw new DanmakuError("unavailable", "not connected (reconnecting)", { room });
    return this.sess;
  }

  /** waitSession resolves with the current connection, waiting up to ms for a reconnect. */
  waitSession(ms) {
    if (this.closed) return Promise.reject(new DanmakuError("closed", "client closed"));
    if (this.sess) return Promise.resolve(this.sess);
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (s) => { clearTimeout(timer); resolve(s); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new DanmakuError("unavailable", "not connected"));
      }, Math.max(0, ms));
      this.waiters.push(w);
    });
  }

  /** pause waits ms, or less if the client closes. */
  pause(ms) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.sleeps.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.sleeps.add(done);
    });
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit("status", { status: state });
  }

  emit(kind, ev) {
    const set = this.listeners.get(kind);
    if (!set) return;
    ev.kind = kind;
    for (const fn of [...set]) {
      try {
        fn(ev);
      } catch (e) {
        this.log.warn(`danmaku: ${kind} listener threw:`, e);
      }
    }
  }
}
