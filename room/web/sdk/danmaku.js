// danmaku JavaScript SDK: the browser (and Node ≥ 20.10) client of the
// danmaku room protocol, docs/PROTOCOL.md. Types: danmaku.d.ts.
//
//   import { connect } from "./danmaku.js";
//   const client = await connect("ws://127.0.0.1:7000/ws", { token });
//   client.on("batch", ({ room, batch }) => render(batch));
//   await client.join("lobby");
//   await client.chat("lobby", "hello");

export { Client, connect, backoff, newKey, DEFAULTS, SDK_NAME, SDK_VERSION } from "./client.js";
export { DanmakuError, GiftError, retryable } from "./errors.js";
export { Tracker } from "./tracker.js";
export { T, VERSION, checkText, validRoom, encode, decode } from "./wire.js";
