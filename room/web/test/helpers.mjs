// Helpers of the tests that run against a real `danmaku serve`. web_test.go
// starts the server and passes it in the environment:
//
//   DANMAKU_BIN        the danmaku binary (mints tokens with `danmaku token`)
//   DANMAKU_WS         edge WebSocket URL, ws://127.0.0.1:PORT/ws
//   DANMAKU_HTTP       HTTP base URL, http://127.0.0.1:PORT
//   DANMAKU_SECRET     the server's --secret
//   DANMAKU_API_KEY    the server's --api-key (publish)
//   DANMAKU_ADMIN_KEY  the server's --admin-key (mute, ban)
//
// Without them the server tests are skipped (run them through
// `go test ./room/web/`, see README.md).

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { decode, encode } from "../sdk/wire.js";

export const env = {
  bin: process.env.DANMAKU_BIN || "",
  ws: process.env.DANMAKU_WS || "",
  http: process.env.DANMAKU_HTTP || "",
  secret: process.env.DANMAKU_SECRET || "",
  apiKey: process.env.DANMAKU_API_KEY || "",
  adminKey: process.env.DANMAKU_ADMIN_KEY || "",
};

/** skip is the reason the server tests cannot run here, or false. */
export const skip = env.bin && env.ws && env.http && env.secret
  ? false
  : "no server: run through `go test ./room/web/` (needs DANMAKU_BIN, DANMAKU_WS, DANMAKU_HTTP, DANMAKU_SECRET)";

/** uniq returns a fresh name with a prefix, so tests never share a room or user. */
export function uniq(prefix) {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

/** token mints a JWT with the real `danmaku token` command. */
export function token(user, { role = "viewer", rooms = "", name = "" } = {}) {
  const args = ["token", "--secret", env.secret, "--user", user, "--role", role];
  if (rooms) args.push("--room", rooms);
  if (name) args.push("--name", name);
  return execFileSync(env.bin, args, { encoding: "utf8", timeout: 10000 }).trim();
}

/** publish posts a reliable entry through the backend API and returns its answer ({seq, epoch}). */
export async function publish(room, body) {
  const res = await fetch(`${env.http}/api/v1/rooms/${room}/publish`, {
    method: "POST",
    headers: { Authorization: `Bearer ${env.apiKey}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`publish ${res.status}: ${text}`);
  return JSON.parse(text);
}

/** admin calls the admin API. */
export async function admin(path, body) {
  const res = await fetch(`${env.http}/api/v1/admin/${path}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${env.adminKey}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`admin ${path} ${res.status}: ${text}`);
  return text;
}

/** waitFor polls pred until it returns a truthy value or ms pass (then throws, naming what). */
export async function waitFor(pred, what, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** record collects what a client delivers, per room. */
export function record(client) {
  const rec = { reliable: [], lossy: [], likes: 0, events: [], batches: 0 };
  client.on("batch", ({ batch }) => {
    rec.batches++;
    for (const e of batch.reliable) rec.reliable.push({ ...e, replay: batch.replay });
    rec.lossy.push(...batch.lossy);
    rec.likes += batch.likes;
  });
  for (const k of ["connected", "disconnected", "reconnecting", "reconnected", "reconnect_requested",
    "resumed", "state", "closed", "left", "error"]) {
    client.on(k, (ev) => rec.events.push(ev));
  }
  rec.has = (kind) => rec.events.some((e) => e.kind === kind);
  return rec;
}

/**
 * interceptor returns a WebSocket class for the SDK's `WebSocket` option
 * that wraps the real one so a test can: refuse new connections (open =
 * false), kill the live socket, drop incoming frames (dropIncoming), inject
 * server frames, and read every frame the client sent and received (sent,
 * received, decoded).
 */
export function interceptor() {
  const ctl = {
    open: true, sockets: [], sent: [], received: [], dropIncoming: null, refused: 0,
    last: () => ctl.sockets[ctl.sockets.length - 1],
  };
  class WS {
    constructor(url) {
      this.binaryType = "arraybuffer";
      if (!ctl.open) {
        ctl.refused++;
        setTimeout(() => this.onclose && this.onclose({ code: 1006, reason: "refused by the test" }), 0);
        return;
      }
      const ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      ctl.sockets.push(this);
      ws.onopen = (e) => this.onopen && this.onopen(e);
      ws.onerror = (e) => this.onerror && this.onerror(e);
      ws.onclose = (e) => this.onclose && this.onclose(e);
      ws.onmessage = (e) => {
        const m = decode(new Uint8Array(e.data));
        ctl.received.push(m);
        if (ctl.dropIncoming && ctl.dropIncoming(m)) return;
        this.onmessage && this.onmessage(e);
      };
    }
    send(bytes) {
      ctl.sent.push(decode(bytes));
      this.ws.send(bytes);
    }
    close(code) {
      if (this.ws) this.ws.close(code);
    }
    /** inject delivers msg to the client as if the server had sent it. */
    inject(msg) {
      this.onmessage && this.onmessage({ data: encode(msg).buffer });
    }
    /** kill drops the connection under the client. */
    kill() {
      this.ws.close();
    }
  }
  ctl.WebSocket = WS;
  return ctl;
}
