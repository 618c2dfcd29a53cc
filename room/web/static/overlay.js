// Overlay draws danmaku over the video on a canvas: scrolling lanes that
// never overlap, top and bottom fixed modes, the sender's colour, and a
// client-side density cap so the screen stays readable whatever the room's
// rate (the server already cut the room to its budget; this cuts it to what
// one screen can show).
//
// Each item is rendered once to its own small canvas and then only moved
// (drawImage per frame): text layout and outlines cost nothing per frame.

const MODE_SCROLL = 0;
const MODE_TOP = 1;
const MODE_BOTTOM = 2;

/** Tunables of the overlay; every one has a reason. */
export const OVERLAY_DEFAULTS = Object.freeze({
  // A scrolling item crosses the screen in this many ms (plus its own width).
  scrollMs: 8000,
  // A fixed (top/bottom) item stays this long.
  fixedMs: 4000,
  // Horizontal gap between two items of a lane, px.
  gap: 24,
  // Density cap: items that may start per second, and on screen at once.
  // 40/s with 8 s crossings keeps a 1080p screen readable (Bilibili's and
  // Rongyun's players cap in the same range); past it items are dropped.
  maxPerSecond: 40,
  maxOnScreen: 160,
  // An item waits at most this long for a free lane, then is dropped.
  maxWaitMs: 1500,
  // Items waiting for a lane, at most (the oldest is dropped past it).
  maxPending: 64,
  // Fraction of the height that scrolling lanes use (the rest stays clear
  // for subtitles and the player's controls).
  scrollArea: 0.8,
  // Fraction of the height that top (and, separately, bottom) items use.
  fixedArea: 0.25,
});

export class Overlay {
  constructor(canvas, options = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.o = { ...OVERLAY_DEFAULTS, ...options };
    this.items = []; // on screen
    this.pending = []; // waiting for a lane
    this.starts = []; // start times of the last second (rate cap)
    this.stats = { frames: 0, drawn: 0, capped: 0, onScreen: 0 };
    this.recent = []; // texts of the last items drawn, newest last (for tests)
    this.enabled = true;
    this.width = 0;
    this.height = 0;
    this.dpr = 1;
    this.resize();
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(() => this.resize()).observe(canvas);
    }
    this.frame = this.frame.bind(this);
    requestAnimationFrame(this.frame);
  }

  resize() {
    const r = this.canvas.getBoundingClientRect();
    this.dpr = globalThis.devicePixelRatio || 1;
    this.width = Math.max(1, r.width);
    this.height = Math.max(1, r.height);
    this.canvas.width = Math.round(this.width * this.dpr);
    this.canvas.height = Math.round(this.height * this.dpr);
    this.fontSize = Math.round(Math.min(28, Math.max(16, this.height / 14)));
    this.laneHeight = Math.round(this.fontSize * 1.35);
    this.lanes = Math.max(1, Math.floor((this.height * this.o.scrollArea) / this.laneHeight));
    // Top and bottom items each get a quarter of the height: they stay put
    // over the scrolling lanes, so fewer of them keep the picture readable.
    this.fixedLanes = Math.max(1, Math.floor((this.height * this.o.fixedArea) / this.laneHeight));
  }

  /** clear removes everything (leaving a room). */
  clear() {
    this.items = [];
    this.pending = [];
  }

  /**
   * add queues one chat for display. own items (the viewer's) skip the
   * density cap and jump the queue: a sender always sees their message.
   */
  add({ text, color = 0, mode = MODE_SCROLL, own = false }) {
    if (!this.enabled || !text) return;
    const now = performance.now();
    if (!own && this.capped(now)) {
      this.stats.capped++;
      return;
    }
    const it = { text, color, mode, own, queued: now };
    if (own) this.pending.unshift(it);
    else this.pending.push(it);
    if (this.pending.length > this.o.maxPending) {
      const i = this.pending.findLastIndex((p) => !p.own);
      this.pending.splice(i >= 0 ? i : this.pending.length - 1, 1);
      this.stats.capped++;
    }
  }

  /** capped: the rate or the on-screen cap says no more now. */
  capped(now) {
    while (this.starts.length && now - this.starts[0] > 1000) this.starts.shift();
    return this.starts.length + this.pending.length >= this.o.maxPerSecond ||
      this.items.length + this.pending.length >= this.o.maxOnScreen;
  }

  /** render makes the item's sprite: outlined text, a box around the viewer's own. */
  render(it) {
    const fs = this.fontSize;
    const font = `600 ${fs}px system-ui, "Noto Sans", "Noto Sans CJK SC", sans-serif`;
    this.ctx.font = font;
    const w = Math.ceil(this.ctx.measureText(it.text).width) + 8;
    const h = this.laneHeight;
    const c = document.createElement("canvas");
    c.width = Math.ceil(w * this.dpr);
    c.height = Math.ceil(h * this.dpr);
    const g = c.getContext("2d");
    g.scale(this.dpr, this.dpr);
    if (it.mode === MODE_TOP || it.mode === MODE_BOTTOM) {
      g.fillStyle = "rgba(0,0,0,0.45)"; // fixed items sit on scrolling ones: keep them legible
      g.fillRect(0, 2, w, h - 4);
    }
    g.font = font;
    g.textBaseline = "middle";
    g.lineJoin = "round";
    g.lineWidth = Math.max(2, fs / 8);
    g.strokeStyle = "rgba(0,0,0,0.75)";
    g.strokeText(it.text, 4, h / 2);
    g.fillStyle = it.color ? `#${it.color.toString(16).padStart(6, "0")}` : "#ffffff";
    g.fillText(it.text, 4, h / 2);
    if (it.own) {
      g.strokeStyle = "rgba(255,255,255,0.9)";
      g.lineWidth = 1.5;
      g.strokeRect(1, 1, w - 2, h - 2);
    }
    it.sprite = c;
    it.w = w;
  }

  /** place finds a lane for it now, or returns false. */
  place(it, now) {
    if (!it.sprite) this.render(it);
    const W = this.width;
    if (it.mode === MODE_TOP || it.mode === MODE_BOTTOM) {
      for (let lane = 0; lane < this.fixedLanes; lane++) {
        if (!this.items.some((o) => o.mode === it.mode && o.lane === lane)) {
          it.lane = lane;
          it.y = it.mode === MODE_TOP ? lane * this.laneHeight : this.height - (lane + 1) * this.laneHeight;
          it.x = (W - it.w) / 2;
          it.until = now + this.o.fixedMs;
          return true;
        }
      }
      return false;
    }
    const v = (W + it.w) / this.o.scrollMs; // px per ms
    for (let lane = 0; lane < this.lanes; lane++) {
      const last = this.lastInLane(lane);
      if (last) {
        const x = this.scrollX(last, now);
        if (x + last.w + this.o.gap > W) continue; // its tail has not entered yet
        // A faster (longer) newcomer must not catch it before it leaves.
        if (v > last.v && W / v < (x + last.w) / last.v) continue;
      }
      it.mode = MODE_SCROLL;
      it.lane = lane;
      it.y = lane * this.laneHeight;
      it.v = v;
      it.t0 = now;
      it.until = now + (W + it.w) / v;
      return true;
    }
    return false;
  }

  lastInLane(lane) {
    let last = null;
    for (const o of this.items) {
      if (o.mode === MODE_SCROLL && o.lane === lane && (!last || o.t0 > last.t0)) last = o;
    }
    return last;
  }

  scrollX(it, now) {
    return this.width - it.v * (now - it.t0);
  }

  frame(now) {
    requestAnimationFrame(this.frame);
    this.stats.frames++;
    this.items = this.items.filter((it) => it.until > now);
    // Place waiting items, oldest (and own) first; drop those that waited too long.
    const still = [];
    for (const it of this.pending) {
      if (this.place(it, now)) {
        this.items.push(it);
        this.starts.push(now);
        this.stats.drawn++;
        this.recent.push(it.text);
        if (this.recent.length > 100) this.recent.shift();
      } else if (!it.own && now - it.queued > this.o.maxWaitMs) {
        this.stats.capped++;
      } else {
        still.push(it);
      }
    }
    this.pending = still;
    this.stats.onScreen = this.items.length;
    const ds = this.canvas.dataset; // what a test (or devtools) reads
    if (ds.drawn !== String(this.stats.drawn)) ds.drawn = String(this.stats.drawn);
    if (ds.capped !== String(this.stats.capped)) ds.capped = String(this.stats.capped);
    const ctx = this.ctx;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.clearRect(0, 0, this.width, this.height);
    for (const it of this.items) {
      const x = it.mode === MODE_SCROLL ? this.scrollX(it, now) : it.x;
      ctx.drawImage(it.sprite, x, it.y, it.w, this.laneHeight);
    }
  }
}
