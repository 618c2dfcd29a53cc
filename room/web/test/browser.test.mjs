// The demo page in a real headless Chromium (Debian's chromium, driven by
// playwright-core: no browser download), against a real `danmaku serve
// --demo` started by web_test.go. Two browser contexts join one room through
// the lobby form; one sends a chat, likes and a gift; the other shows them.
// Then the render budget: 400 chat msgs/s into the room while the page
// counts requestAnimationFrame callbacks.
//
// Extra environment (besides helpers.mjs's):
//   DANMAKU_CHROMIUM   the chromium executable
//   DANMAKU_ARTIFACTS  where screenshots and render.json go (default: a temp dir)
//   DANMAKU_RTMP       the server's RTMP address, for the live-video test (ffmpeg publishes)
import { spawn, spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { connect } from "../sdk/danmaku.js";
import { env, skip as noServer, token, uniq, waitFor } from "./helpers.mjs";

const exe = process.env.DANMAKU_CHROMIUM || "";
const skip = noServer || (!exe && "no chromium: set DANMAKU_CHROMIUM (web_test.go finds Debian's chromium)");
const artifacts = process.env.DANMAKU_ARTIFACTS || mkdtempSync(join(tmpdir(), "danmaku-web-"));
const STEP = 15000; // bound of one browser wait

describe("demo page in headless Chromium", { skip }, () => {
  let browser;
  const clients = [];
  before(async () => {
    mkdirSync(artifacts, { recursive: true });
    browser = await chromium.launch({
      executablePath: exe,
      headless: true,
      // Root in a container has no user namespace for the sandbox; nothing
      // but our own loopback page is loaded.
      // No network but loopback here: keep Chromium from reaching out.
      args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-quic",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--autoplay-policy=no-user-gesture-required"],
      timeout: STEP,
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    if (browser) await browser.close();
  });

  /** enter opens the page in a fresh context and joins room through the lobby form. */
  async function enter(room, name) {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const page = await ctx.newPage();
    page.setDefaultTimeout(STEP);
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    page.errors = errors;
    await page.goto(`${env.http}/`);
    await page.fill("#room-input", room);
    await page.fill("#name-input", name);
    await page.click("#join-button");
    await page.waitForSelector('body[data-status="connected"]');
    await page.waitForSelector("#room:not([hidden])");
    return page;
  }

  test("two viewers: a chat, likes and a gift sent in one show in the other; reconnect is visible", async () => {
    const room = uniq("demo");
    const alice = await enter(room, "Alice");
    const bob = await enter(room, "Bob");
    assert.equal(await bob.textContent("#room-name"), `#${room}`);
    assert.equal(await bob.getAttribute("#video-box", "data-live"), "false", "no stream: offline");
    assert.ok(await bob.isVisible("#offline"));

    // Chat: typed into Alice's input, acknowledged, shown in Bob's list and drawn on his overlay.
    const text = `hello from Alice ${uniq("m")}`;
    await alice.fill("#chat-input", text);
    await alice.click("#send-button");
    await alice.waitForSelector('#send-status[data-state="ok"], #send-status[data-state="sampled"]');
    const sel = `#chat-list li[data-kind="chat"][data-text="${text}"]`;
    await bob.waitForSelector(sel);
    assert.match(await bob.textContent(sel), /Alice:/);
    await alice.waitForSelector(`${sel}.own`);
    await bob.waitForFunction((t) => window.danmakuDemo.overlay.recent.includes(t), text);
    assert.ok(Number(await bob.getAttribute("#overlay", "data-drawn")) >= 1, "the overlay drew it");

    // Text limit: the counter turns red and Send is disabled past the limit.
    await alice.fill("#chat-input", "x".repeat(101));
    assert.match(await alice.getAttribute("#char-count", "class"), /over/);
    assert.ok(await alice.isDisabled("#send-button"));
    await alice.fill("#chat-input", "");

    // Likes: three taps merge into one message; Bob's counter shows them.
    for (let i = 0; i < 3; i++) await alice.click("#like-button");
    await bob.waitForSelector('#like-count[data-likes="3"]');

    // Gift: a banner and a line in Bob's chat.
    await alice.click('#gift-buttons button[data-gift="rocket"]');
    await alice.waitForFunction(() => /Rocket sent/.test(document.querySelector("#send-status").textContent));
    await bob.waitForSelector('#chat-list li[data-kind="gift"][data-gift="rocket"]');
    await bob.waitForSelector('.gift-banner[data-gift="rocket"]');
    assert.match(await bob.textContent(".gift-banner"), /Alice sent/);

    await bob.waitForFunction(() => Number(document.querySelector("#online-count").dataset.online) >= 2);
    await bob.screenshot({ path: join(artifacts, "room.png") });

    // Reconnect: drop Bob's connection; the status shows it, then he is back and resumed.
    await bob.evaluate(() => {
      window.statusSeen = [];
      window.danmakuDemo.client.on("status", ({ status }) => window.statusSeen.push(status));
      window.danmakuDemo.client.reconnect();
    });
    await bob.waitForFunction(() => window.statusSeen.includes("reconnecting") && document.body.dataset.status === "connected");
    await bob.waitForSelector("#conn-banner.ok");
    const again = `after reconnect ${uniq("m")}`;
    await alice.fill("#chat-input", again);
    await alice.click("#send-button");
    await bob.waitForSelector(`#chat-list li[data-kind="chat"][data-text="${again}"]`);

    assert.deepEqual(alice.errors, [], "no errors on Alice's page");
    assert.deepEqual(bob.errors, [], "no errors on Bob's page");
  });

  const rtmp = process.env.DANMAKU_RTMP || "";
  const ffmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
  test("live room: the page goes from offline to the WHEP video when a stream starts, and back", {
    skip: !rtmp ? "no DANMAKU_RTMP" : !ffmpeg && "no ffmpeg (apt-get install ffmpeg)",
  }, async () => {
    const room = uniq("tv");
    const viewer = await enter(room, "Vic");
    assert.equal(await viewer.getAttribute("#video-box", "data-live"), "false");
    const key = token(uniq("streamer"), { role: "streamer", rooms: room });
    // A generated test pattern for at most 30 s (the test kills it sooner).
    const pub = spawn("ffmpeg", ["-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25",
      "-t", "30", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "25", "-bf", "0",
      "-pix_fmt", "yuv420p", "-f", "flv", `rtmp://${rtmp}/live/${room}/${key}`], { stdio: "ignore" });
    try {
      await viewer.waitForSelector('#video-box[data-live="true"]', { state: "attached" });
      await viewer.waitForFunction(() => document.querySelector("#video").videoWidth > 0);
      assert.equal(await viewer.evaluate(() => document.querySelector("#video").videoWidth), 640);
      await viewer.screenshot({ path: join(artifacts, "live.png") });
    } finally {
      pub.kill("SIGKILL");
    }
    // The stream ends: the room state says so, the page shows offline again.
    await viewer.waitForSelector('#video-box[data-live="false"]', { state: "attached" });
    assert.deepEqual(viewer.errors, []);
  });

  test("render budget: frames per second at 400 chat msgs/s into the room", async () => {
    const room = uniq("load");
    const viewer = await enter(room, "Viewer");
    // 40 staff senders (10 msgs/s each allowed) at 10 msgs/s: 400 msgs/s in.
    // The room's budget (200/s by default) samples them; the page caps the
    // overlay's density on top.
    const senders = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
      const c = await connect(env.ws, { token: token(uniq(`s${i}`), { role: "moderator" }), logger: { debug() {}, warn() {} } });
      clients.push(c);
      await c.join(room);
      return c;
    }));
    let sent = 0;
    let accepted = 0;
    const palette = [0, 0xff4444, 0xffcc00, 0x44ff44, 0x44ccff, 0xff66cc];
    const tick = setInterval(() => {
      for (const c of senders) {
        const n = sent++;
        c.chat(room, `load ${n} ${"弹幕".repeat(n % 4)}`, { color: palette[n % palette.length], mode: [0, 0, 0, 0, 0, 0, 0, 0, 1, 2][n % 10] })
          .then(() => accepted++, () => {});
      }
    }, 100);
    try {
      await waitFor(() => sent >= 400, "the first second of load", STEP);
      const seconds = 3;
      const m = await viewer.evaluate(async (s) => {
        const o = window.danmakuDemo.overlay.stats;
        const start = { frames: o.frames, drawn: o.drawn, capped: o.capped, chats: window.danmakuDemo.chats };
        let frames = 0;
        const t0 = performance.now();
        await new Promise((resolve) => {
          const f = () => { frames++; if (performance.now() - t0 < s * 1000) requestAnimationFrame(f); else resolve(); };
          requestAnimationFrame(f);
        });
        const dt = (performance.now() - t0) / 1000;
        return {
          fps: frames / dt,
          chatsPerSecond: (window.danmakuDemo.chats - start.chats) / dt,
          drawnPerSecond: (o.drawn - start.drawn) / dt,
          cappedPerSecond: (o.capped - start.capped) / dt,
          onScreen: o.onScreen,
        };
      }, seconds);
      m.sentPerSecond = 400;
      m.acceptedTotal = accepted;
      writeFileSync(join(artifacts, "render.json"), JSON.stringify(m, null, 2));
      await viewer.screenshot({ path: join(artifacts, "load.png") });
      console.log(`# render budget: ${JSON.stringify(m)}`);
      // Frame rates are not asserted (shared 2-core machines; see
      // ARCHITECTURE.md): the figure is recorded. What must hold: the page
      // received the load and drew within its cap.
      assert.ok(m.chatsPerSecond > 0, "the room's sampled chat reached the page");
      assert.ok(m.drawnPerSecond <= 45, `the overlay stays under its density cap (${m.drawnPerSecond}/s)`);
      assert.deepEqual(viewer.errors, []);
    } finally {
      clearInterval(tick);
    }
  });
});
