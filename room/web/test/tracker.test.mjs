// Unit tests of the reliable-lane tracker and the wire helpers: no server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Tracker } from "../sdk/tracker.js";
import { backoff, checkText, decode, encode, newKey, validRoom } from "../sdk/danmaku.js";

const g = (seq) => ({ kind: "gift", seq, text: "" });
const batch = (epoch, ...seqs) => ({
  room: "r", epoch, reliable: seqs.map(g), lossy: [], likes: 0, online: undefined, dropped: 0,
});
const seqs = (es) => es.map((e) => e.seq);

test("tracker delivers in order, drops duplicates, holds a gap until a resume fills it", () => {
  const counts = {};
  const t = new Tracker(100, 8, (c, n) => { counts[c] = (counts[c] || 0) + n; });
  assert.deepEqual(t.join("e1", 10), []);
  assert.deepEqual(seqs(t.batch(batch("e1", 11, 12)).reliable), [11, 12]);
  assert.equal(t.batch(batch("e1", 12)), null, "a duplicate alone shows nothing");
  assert.equal(counts.duplicates, 1);
  // 13 is lost: 14 and 15 are held, a resume is due.
  assert.equal(t.batch(batch("e1", 14, 15)), null);
  assert.ok(t.gap());
  assert.deepEqual(t.position(), { epoch: "e1", seq: 12 });
  // The resume brings 13..15; the held ones are not delivered twice.
  const { replay, rebased } = t.resumed({ recovered: true, epoch: "e1", seq: 15, entries: [g(13), g(14), g(15)] });
  assert.equal(rebased, null);
  assert.deepEqual(seqs(replay), [13, 14, 15]);
  assert.ok(!t.gap());
  assert.deepEqual(seqs(t.batch(batch("e1", 15, 16)).reliable), [16]);
});

test("tracker fills a gap from a later batch without a resume", () => {
  const t = new Tracker(100, 8);
  t.join("e", 0);
  assert.equal(t.batch(batch("e", 2)), null);
  assert.deepEqual(seqs(t.batch(batch("e", 1)).reliable), [1, 2]);
  assert.ok(!t.gap());
});

test("tracker holds batches before joined and filters them by the baseline", () => {
  const t = new Tracker(100, 8);
  assert.equal(t.batch(batch("e", 4, 5)), null);
  assert.equal(t.batch(batch("e", 6)), null);
  const out = t.join("e", 5);
  assert.deepEqual(out.map((b) => seqs(b.reliable)), [[6]]);
});

test("tracker treats a new epoch as a gap and rebases on an unrecoverable resume", () => {
  const t = new Tracker(100, 8);
  t.join("old", 7);
  assert.equal(t.batch(batch("new", 3)), null);
  assert.ok(t.gap(), "an unknown epoch is a gap");
  const { replay, rebased } = t.resumed({
    recovered: false, epoch: "new", seq: 2, entries: [], state: { epoch: "new", seq: 2 },
  });
  assert.deepEqual(rebased, { epoch: "new", seq: 2 });
  assert.deepEqual(seqs(replay), [3], "the held entry after the new baseline is delivered");
  assert.deepEqual(t.position(), { epoch: "new", seq: 3 });
  assert.equal(t.batch(batch("old", 8)), null, "late batches of the retired epoch are stale");
  assert.ok(!t.gap());
});

test("tracker never goes back within an epoch", () => {
  const t = new Tracker(100, 8);
  t.join("e", 10);
  const { replay } = t.resumed({ recovered: false, epoch: "e", seq: 4, entries: [], state: { epoch: "e", seq: 4 } });
  assert.deepEqual(replay, []);
  assert.deepEqual(t.position(), { epoch: "e", seq: 10 });
});

test("tracker bounds what it holds", () => {
  const counts = {};
  const t = new Tracker(3, 2, (c, n) => { counts[c] = (counts[c] || 0) + n; });
  t.batch(batch("e", 1));
  t.batch(batch("e", 2));
  t.batch(batch("e", 3));
  assert.equal(counts.preJoinOverflow, 1);
  t.join("e", 0);
  t.batch(batch("e", 5, 6, 7, 8));
  assert.ok(t.held.size <= 3);
  assert.ok(counts.heldOverflow > 0);
});

test("wire: the PROTOCOL.md §6 chat frame encodes to the documented bytes", () => {
  const body = encode({ t: 6, id: 1, r: "lobby", x: "hi", ct: 1700000000000 });
  assert.equal(Buffer.from(body).toString("hex"),
    "85a17406a2696401a172a56c6f626279a178a26869a26374cf0000018bcfe56800");
  assert.deepEqual(decode(body), { t: 6, id: 1, r: "lobby", x: "hi", ct: 1700000000000 });
  assert.throws(() => decode(new Uint8Array([...body, 0])), /extra/i, "trailing bytes are invalid");
  assert.throws(() => decode(encode([1, 2])), /not a map/);
});

test("wire: text and room checks match the server's", () => {
  assert.equal(checkText("hello 弹幕 🎉", 100), "");
  assert.equal(checkText("", 100), "invalid_text");
  assert.equal(checkText("a\nb", 100), "invalid_text");
  assert.equal(checkText("a\u2028b", 100), "invalid_text");
  assert.equal(checkText("🎉".repeat(100), 100), "", "runes, not UTF-16 units");
  assert.equal(checkText("x".repeat(101), 100), "too_long");
  assert.ok(validRoom("lobby_1-A"));
  assert.ok(!validRoom("a b"));
  assert.ok(!validRoom("x".repeat(65)));
});

test("backoff is full jitter under min(max, base·2^n); keys are 128-bit hex", () => {
  for (let n = 0; n < 40; n++) {
    const d = backoff(200, 10000, n);
    assert.ok(d >= 0 && d < Math.min(10000, 200 * 2 ** n), `attempt ${n}: ${d}`);
  }
  const k = newKey();
  assert.match(k, /^[0-9a-f]{32}$/);
  assert.notEqual(k, newKey());
});
