// The SDK against a real `danmaku serve` (started by web_test.go): connect,
// join, chat, like, gift with ack, gift retries under one key, error codes,
// heartbeats, reconnect + resume with exactly-once delivery, and the server's
// reconnect message.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect, DanmakuError, GiftError, newKey } from "../sdk/danmaku.js";
import { admin, env, interceptor, publish, record, skip, token, uniq, waitFor } from "./helpers.mjs";

const clients = [];
async function open(user, opts = {}) {
  const { role, rooms, name, ...o } = opts;
  const c = await connect(env.ws, { token: token(user, { role, rooms, name }), logger: quiet, ...o });
  clients.push(c);
  return c;
}
const quiet = { debug() {}, warn() {} };
after(() => { for (const c of clients) c.close(); });

/** strictlyConsecutive asserts seqs run base+1, base+2, … with no repeat and no hole. */
function strictlyConsecutive(entries, base) {
  entries.forEach((e, i) => assert.equal(e.seq, base + i + 1, `entry ${i}: seqs ${entries.map((x) => x.seq)}`));
}

describe("danmaku-js against a real server", { skip }, () => {
  test("hello/welcome: session, user, heartbeat and limits from the server", async () => {
    const user = uniq("u");
    const c = await open(user, { name: "Una" });
    const w = c.welcome;
    assert.ok(w.session, "session id");
    assert.equal(w.user, user);
    assert.equal(w.name, "Una");
    assert.equal(w.role, "viewer");
    assert.ok(w.heartbeat > 0, "heartbeat announced");
    assert.ok(w.limits.maxText > 0 && w.limits.maxClientFrame > 0);
    assert.equal(c.state, "connected");
    // Pings follow the announced interval by default: 4/5 of it.
    assert.equal(c.sess.pingEvery, (w.heartbeat * 4) / 5);
  });

  test("join, chat and like: another viewer receives them; chat acks carry a message id", async () => {
    const room = uniq("room");
    const a = await open(uniq("alice"), { name: "Alice" });
    const b = await open(uniq("bob"));
    const rb = record(b);
    const sa = await a.join(room);
    const sb = await b.join(room);
    assert.equal(typeof sa.epoch, "string");
    const text = `hello ${uniq("x")} 弹幕`;
    const ack = await a.chat(room, text, { color: 0xff4444, mode: 1 });
    assert.equal(ack.code, "");
    assert.ok(ack.mid > 0 || ack.sampledOut, "a message id, or sampled out");
    const got = await waitFor(() => rb.lossy.find((e) => e.text === text), "bob receives the chat");
    assert.equal(got.kind, "chat");
    assert.equal(got.name, "Alice");
    assert.equal(got.color, 0xff4444);
    assert.equal(got.mode, 1);
    await a.like(room, 3);
    await a.like(room, 2);
    await waitFor(() => rb.likes >= 5, "bob sees 5 merged likes");
    assert.equal(rb.likes, 5);
    await waitFor(() => b.online(room) >= 2, "online count reaches 2");
  });

  test("gift: acked with its reliable seq, delivered once; a retry with the same key returns the original ack", async () => {
    const room = uniq("room");
    const a = await open(uniq("alice"));
    const b = await open(uniq("bob"));
    const rb = record(b);
    await a.join(room);
    await b.join(room);
    const ack = await a.gift(room, "rose", 2);
    assert.equal(ack.code, "");
    assert.ok(ack.seq > 0 && ack.epoch, "seq and epoch");
    assert.equal(ack.duplicate, false);
    const e = await waitFor(() => rb.reliable.find((x) => x.seq === ack.seq), "bob receives the gift");
    assert.equal(e.kind, "gift");
    assert.equal(e.gift, "rose");
    assert.equal(e.count, 2);

    const key = newKey();
    const first = await a.giftWithKey(room, "rocket", 1, key);
    const again = await a.giftWithKey(room, "rocket", 1, key);
    assert.equal(again.duplicate, true, "the repeat is answered as a duplicate");
    assert.equal(again.seq, first.seq, "with the original seq");
    assert.equal(again.epoch, first.epoch);
    // A notice published after both is a sentinel: once bob has it, he has
    // everything before it in the reliable lane.
    const sentinel = await publish(room, { kind: "notice", text: "sentinel" });
    await waitFor(() => rb.reliable.some((x) => x.seq === sentinel.seq), "bob receives the sentinel");
    assert.equal(rb.reliable.filter((x) => x.gift === "rocket").length, 1, "the rocket is broadcast once");
    strictlyConsecutive(rb.reliable, rb.reliable[0].seq - 1);
  });

  test("gift: a lost ack is retried with the same key and never doubled", async () => {
    const room = uniq("room");
    const ws = interceptor();
    const a = await open(uniq("alice"), { WebSocket: ws.WebSocket, giftAttemptTimeout: 300, backoffBase: 50 });
    const b = await open(uniq("bob"));
    const rb = record(b);
    await a.join(room);
    await b.join(room);
    // Drop the first gift ack: the server accepted the gift, the client never hears.
    let dropped = 0;
    ws.dropIncoming = (m) => {
      const gift = ws.sent.find((s) => s.t === 8);
      if (m.t === 9 && gift && m.id === gift.id && dropped === 0) {
        dropped++;
        return true;
      }
      return false;
    };
    const ack = await a.gift(room, "heart", 1);
    assert.equal(dropped, 1);
    const sent = ws.sent.filter((s) => s.t === 8);
    assert.ok(sent.length >= 2, "sent again after the attempt timed out");
    assert.ok(sent.every((s) => s.k === sent[0].k), "every attempt carries the same key");
    assert.notEqual(sent[0].id, sent[1].id, "each attempt is its own request");
    assert.equal(ack.duplicate, true, "the server recognised the retry");
    assert.ok(a.stats().giftRetries >= 1);
    const sentinel = await publish(room, { kind: "notice", text: "sentinel" });
    await waitFor(() => rb.reliable.some((x) => x.seq === sentinel.seq), "bob receives the sentinel");
    assert.deepEqual(rb.reliable.filter((x) => x.kind === "gift").map((x) => x.seq), [ack.seq], "one heart, at the acked seq");
  });

  test("reconnect + resume: reliable entries missed while away arrive exactly once, in order", async () => {
    const room = uniq("room");
    const ws = interceptor();
    const a = await open(uniq("alice"), { WebSocket: ws.WebSocket, backoffBase: 20, backoffMax: 200 });
    const ra = record(a);
    const b = await open(uniq("bob"));
    const rb = record(b);
    const st = await a.join(room);
    await b.join(room);
    const base = st.seq;
    const g1 = await b.gift(room, "rose", 1);
    await waitFor(() => ra.reliable.some((e) => e.seq === g1.seq), "alice receives the first gift");

    // Alice's network goes: the socket dies and reconnects are refused.
    ws.open = false;
    ws.last().kill();
    await waitFor(() => ra.has("disconnected"), "alice notices the loss");
    const missed = [];
    for (let i = 0; i < 3; i++) missed.push((await publish(room, { kind: "notice", text: `missed ${i}` })).seq);
    missed.push((await b.gift(room, "rocket", 3)).seq);
    await waitFor(() => rb.reliable.some((e) => e.seq === missed[3]), "bob has them all");
    await waitFor(() => ws.refused >= 1, "a reconnect attempt was refused");
    assert.equal(a.state, "reconnecting");
    await assert.rejects(a.chat(room, "while away"), (e) => e instanceof DanmakuError && e.code === "unavailable");

    // The network is back: alice reconnects, resumes and gets what she missed.
    ws.open = true;
    await waitFor(() => ra.events.some((e) => e.kind === "resumed" && e.recovered), "alice resumes, recovered");
    await waitFor(() => ra.reliable.some((e) => e.seq === missed[3]), "alice receives the missed entries");
    const after = (await publish(room, { kind: "notice", text: "after" })).seq;
    await waitFor(() => ra.reliable.some((e) => e.seq === after), "alice receives live entries again");

    strictlyConsecutive(ra.reliable, base);
    assert.deepEqual(ra.reliable.filter((e) => missed.includes(e.seq)).map((e) => e.replay), [true, true, true, true],
      "the missed entries came from the resume");
    assert.deepEqual(ra.reliable.filter((e) => e.kind === "notice").map((e) => e.text), ["missed 0", "missed 1", "missed 2", "after"]);
    assert.equal(a.stats().reconnects, 1);
    assert.deepEqual(a.position(room), { epoch: st.epoch, seq: after });
    const order = ra.events.map((e) => e.kind);
    assert.ok(order.indexOf("disconnected") < order.indexOf("reconnecting"));
    assert.ok(order.indexOf("reconnecting") < order.indexOf("reconnected"));
    // Chat works on the new connection.
    assert.equal((await a.chat(room, "back")).code, "");
  });

  test("the server's reconnect message: wait retryAfter, reconnect, resume", async () => {
    const room = uniq("room");
    const ws = interceptor();
    const a = await open(uniq("alice"), { WebSocket: ws.WebSocket, backoffBase: 20, backoffMax: 200 });
    const ra = record(a);
    await a.join(room);
    const first = ws.last();
    first.inject({ t: 17, why: "shutdown", ra: 300 });
    const req = ra.events.find((e) => e.kind === "reconnect_requested");
    assert.deepEqual([req.reason, req.retryAfter], ["shutdown", 300]);
    const rc = await waitFor(() => ra.events.find((e) => e.kind === "reconnecting"), "a reconnect is scheduled");
    assert.ok(rc.delay >= 300, `waits at least the server's retryAfter (${rc.delay})`);
    await waitFor(() => ra.has("resumed"), "the room is resumed");
    assert.notEqual(ws.last(), first, "on a new connection");
    assert.ok(ws.sent.some((m) => m.t === 10 && m.r === room), "a resume was sent for the room");
    const n = await publish(room, { kind: "notice", text: "still here" });
    await waitFor(() => ra.reliable.some((e) => e.seq === n.seq), "entries flow on the new connection");
  });

  test("heartbeat: pings at the configured interval, pongs measure the round trip", async () => {
    const ws = interceptor();
    const a = await open(uniq("alice"), { WebSocket: ws.WebSocket, heartbeat: 100 });
    const t0 = Date.now();
    await waitFor(() => ws.sent.filter((m) => m.t === 12).length >= 3, "three pings");
    assert.ok(Date.now() - t0 >= 150, "not faster than the interval");
    const pings = new Set(ws.sent.filter((m) => m.t === 12).map((m) => m.id));
    await waitFor(() => ws.received.some((m) => m.t === 13 && pings.has(m.id)), "a pong answering a ping");
    assert.equal(a.state, "connected");
  });

  test("error codes: local checks, rate_limited with retryAfter, muted, forbidden, unauthorized", async () => {
    const room = uniq("room");
    const user = uniq("carol");
    const c = await open(user, { rooms: room });
    await c.join(room);
    const long = "x".repeat(c.welcome.limits.maxText + 1);
    await assert.rejects(c.chat(room, long), (e) => e.code === "too_long" && e.local);
    await assert.rejects(c.chat(room, "a\nb"), (e) => e.code === "invalid_text" && e.local);
    await assert.rejects(c.like(room, 0), (e) => e.code === "bad_request" && e.local);
    await assert.rejects(c.join("other-room"), (e) => e.code === "forbidden" && !e.local, "token limited to one room");

    // A viewer may burst 3 chats; the next ones are rate limited with a retry-after.
    const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => c.chat(room, `flood ${i}`)));
    const limited = results.filter((r) => r.status === "rejected");
    assert.ok(limited.length >= 1, "some are refused");
    for (const r of limited) {
      assert.equal(r.reason.code, "rate_limited");
      assert.ok(r.reason.retryAfter > 0, "with a retry-after");
      assert.equal(r.reason.ack.code, "rate_limited");
    }

    if (env.adminKey) {
      const m = await open(uniq("mutee"));
      await m.join(room);
      await admin(`users/${m.welcome.user}/mute`, { room, duration: "1m" });
      await waitFor(async () => {
        try {
          await m.chat(room, `am I muted ${Date.now()}`);
          return false;
        } catch (e) {
          if (e.code === "rate_limited") return false;
          assert.equal(e.code, "muted");
          return true;
        }
      }, "the mute applies");
    }

    await assert.rejects(connect(env.ws, { token: "not-a-jwt", logger: quiet }), (e) => e.code === "unauthorized");
    const gift = await assert.rejects(c.giftWithKey(room, "rose", 0, "k"), (e) => e instanceof GiftError && e.local);
    assert.equal(gift, undefined);
  });

  test("close: pending and later calls fail with code closed, no reconnect", async () => {
    const room = uniq("room");
    const a = await open(uniq("alice"));
    const ra = record(a);
    await a.join(room);
    a.close();
    assert.equal(a.state, "closed");
    await assert.rejects(a.chat(room, "hi"), (e) => e.code === "closed");
    await assert.rejects(a.gift(room, "rose", 1), (e) => e instanceof GiftError && e.code === "closed");
    assert.ok(!ra.has("reconnecting"));
  });
});
