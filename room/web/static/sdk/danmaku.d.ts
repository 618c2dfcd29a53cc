// Types of the danmaku JavaScript SDK (sdk/danmaku.js), hand-written: keep
// them in step with the source. Protocol: docs/PROTOCOL.md.

/** An error code from the protocol's closed set (PROTOCOL.md §4), or "closed" for a closed client. */
export type Code =
  | "bad_frame" | "too_large" | "unknown_type" | "bad_request" | "hello_first" | "bad_version"
  | "unauthorized" | "token_expired" | "forbidden" | "not_joined" | "rate_limited" | "slow_mode"
  | "vip_only" | "duplicate" | "muted" | "banned" | "room_closed" | "too_long" | "invalid_text"
  | "gift_denied" | "unavailable" | "server_full" | "slow_consumer" | "timeout" | "kicked"
  | "shutdown" | "internal" | "closed"
  | (string & {}); // a newer server's code: handle as a generic failure

export type Role = "guest" | "viewer" | "vip" | "moderator" | "streamer" | "admin" | "system" | (string & {});

/** Chat display mode: 0 scroll, 1 top, 2 bottom. */
export type Mode = 0 | 1 | 2;

export type EntryKind = "chat" | "enter" | "gift" | "notice" | "state" | "mod" | (string & {});

/** One message in a batch, joined backlog or resume (absent keys are zero values). */
export interface Entry {
  kind: EntryKind;
  /** Reliable seq (gift, notice, state, mod); 0 for lossy entries. */
  seq: number;
  /** Server message id. */
  mid: number;
  user: string;
  name: string;
  role: Role;
  /** Text of chat, notice, enter. */
  text: string;
  /** Chat color 0xRRGGBB (0 = the app's default). */
  color: number;
  mode: Mode | number;
  /** Gift id and count. */
  gift: string;
  count: number;
  /** Notice level: info, warn, critical. */
  level: string;
  /** JSON payload of state and mod entries, e.g. {"live":true,"media":"h264"}. */
  data: string;
  /** Sender's clock and the room owner's admission time, Unix ms. */
  clientTime: number;
  serverTime: number;
}

export interface RoomState {
  title: string;
  /** A stream is live in the room (play it over WHEP). */
  live: boolean;
  /** Codecs of the live stream, e.g. "h264+opus". */
  media: string;
  online: number;
  epoch: string;
  seq: number;
  /** Newest chat entries (≤ 50), oldest first. */
  backlog: Entry[];
  /** Chat budget, msgs/s. */
  budget: number;
  /** Seconds between two chats of one user (0 = off). */
  slowMode: number;
  vipOnly: boolean;
  closed: boolean;
}

export interface Limits {
  maxClientFrame: number;
  /** Chat runes allowed. */
  maxText: number;
  /** Chat msgs/s allowed for this role. */
  chatRate: number;
  maxRooms: number;
  maxServerFrame: number;
  /** Reliable entries kept per room for resume. */
  resumeWindow: number;
}

export interface Welcome {
  session: string;
  node: string;
  user: string;
  name: string;
  role: Role;
  /** Heartbeat interval, ms. */
  heartbeat: number;
  serverTime: number;
  limits: Limits;
}

/** One room tick. Reliable entries are new to the app, exactly once and in seq order. */
export interface Batch {
  room: string;
  tick: number;
  serverTime: number;
  epoch: string;
  reliable: Entry[];
  lossy: Entry[];
  /** Likes since the previous batch. */
  likes: number;
  /** Cluster-wide online count, when the batch carries one. */
  online?: number;
  /** Lossy messages the room's policy dropped this tick. */
  dropped: number;
  /** True when the entries were recovered by a resume, not pushed. */
  replay: boolean;
}

export interface Ack {
  id: number;
  /** "" on success. */
  code: Code | "";
  message: string;
  mid: number;
  /** Reliable seq and epoch of a gift. */
  seq: number;
  epoch: string;
  /** Chat accepted but sampled out by the room's budget: show it to the sender only. */
  sampledOut: boolean;
  /** This gift was already accepted: this is its original ack. */
  duplicate: boolean;
  /** Retry after, ms. */
  retryAfter: number;
}

export type Status = "idle" | "connecting" | "connected" | "reconnecting" | "closed";

/** Events and their payloads; every payload also has `kind`. */
export interface Events {
  /** The first connection is up. */
  connected: { welcome: Welcome };
  /** The connection was lost; a reconnect follows (unless kicked). */
  disconnected: { error: Error };
  /** A reconnect attempt (from 1) starts after delay ms; error is the previous attempt's. */
  reconnecting: { attempt: number; delay: number; error: Error | null };
  /** A new connection is up; resumes follow for every room. */
  reconnected: { welcome: Welcome };
  /** The server asked this client to move (node draining). */
  reconnect_requested: { reason: string; retryAfter: number };
  /** The client stopped by itself (refused token, kicked, maxReconnectAttempts). */
  closed: { error: Error };
  /** The connection status changed. */
  status: { status: Status };
  /** A room was joined, or rejoined after a resume that could not recover (rejoined: redraw, history was missed). */
  state: { room: string; state: RoomState; rejoined: boolean };
  batch: { room: string; batch: Batch };
  /** The answer to a resume the SDK sent after a reconnect or a gap. */
  resumed: { room: string; recovered: boolean };
  /** The server refused to resume the room (banned, closed…): it is no longer joined. */
  left: { room: string; error: DanmakuError };
  /** A room's online count changed (joined, batch, pong). */
  online: { room: string; online: number };
  /** A text from the server to this connection. */
  notice: { room: string; text: string; level: string };
  /** Lossy batches the server skipped while this client read too slowly. */
  missed: { room: string; batches: number };
  /** An error the server sent outside any request. */
  error: { room: string; error: DanmakuError };
}

export interface Options {
  /** JWT for hello ("" = guest). */
  token?: string;
  /** Supplies the token for every (re)connect instead of `token`, so an expired one can be refreshed. */
  tokenSource?: (() => Promise<string> | string) | null;
  /** WebSocket constructor (default globalThis.WebSocket; Node 20: --experimental-websocket or the `ws` package). */
  WebSocket?: { new (url: string): WebSocket } | null;
  /** Sent in hello. Default "web". */
  platform?: string;
  /** One connection attempt: open, hello, welcome. Default 10000 ms. */
  dialTimeout?: number;
  /** How long join, leave, chat and like wait for their answer. Default 10000 ms. */
  requestTimeout?: number;
  /** Ping interval; 0 (default) = 4/5 of the server's welcome.heartbeat. */
  heartbeat?: number;
  /** Full-jitter backoff: attempt n waits random(0, min(backoffMax, backoffBase·2^n)). Defaults 200 and 10000 ms. */
  backoffBase?: number;
  backoffMax?: number;
  /** Consecutive failed reconnects before giving up (closed event); 0 (default) = never. */
  maxReconnectAttempts?: number;
  /** How long a gift keeps retrying (same key). Default 30000 ms. */
  giftDeadline?: number;
  /** How long one gift attempt waits for its ack. Default 5000 ms. */
  giftAttemptTimeout?: number;
  /** How long a resume may go unanswered before it is sent again. Default 10000 ms. */
  resumeTimeout?: number;
  /** Reliable entries held per room behind a gap. Default 10000. */
  maxHeld?: number;
  /** Batches held per room between join and joined. Default 64. */
  maxPreJoin?: number;
  /** Receives connection-level logs. Default: warnings to console. */
  logger?: { debug(...a: unknown[]): void; warn(...a: unknown[]): void } | null;
}

export const DEFAULTS: Readonly<Required<Options>>;
export const SDK_NAME: "danmaku-js";
export const SDK_VERSION: string;
export const VERSION: 1;

/** Message type numbers (the `t` key). */
export const T: Readonly<Record<
  "hello" | "welcome" | "join" | "joined" | "leave" | "chat" | "like" | "gift" | "ack" | "resume" |
  "resumed" | "ping" | "pong" | "batch" | "notice" | "error" | "reconnect" | "missed", number>>;

/** Opens a client; resolves once welcomed. After that it reconnects by itself until close(). */
export function connect(url: string, options?: Options): Promise<Client>;

export class Client {
  constructor(url: string, options?: Options);
  readonly url: string;
  /** Connection status. */
  readonly state: Status;
  /** Why the client stopped by itself, or null. */
  readonly error: Error | null;
  /** Welcome of the latest connection. */
  readonly welcome: Welcome | null;
  /** Latest ping round trip, ms. */
  readonly rtt: number;
  /** Makes the first connection (connect() calls it). */
  open(): Promise<void>;
  /** Subscribes to an event; returns the unsubscribe function. */
  on<K extends keyof Events>(kind: K, fn: (ev: Events[K] & { kind: K }) => void): () => void;
  /** Joins a room; rejects with DanmakuError (forbidden, bad_request, unavailable…). */
  join(room: string): Promise<RoomState>;
  leave(room: string): Promise<void>;
  /** Sends a danmaku. Resolves with the ack (check sampledOut); rejects on rate_limited, muted, too_long… */
  chat(room: string, text: string, opts?: { color?: number; mode?: Mode }): Promise<Ack>;
  /** Sends 1–1000 likes (merge taps). */
  like(room: string, count?: number): Promise<Ack>;
  /** Sends a gift with a fresh idempotency key, retried with that key until acked. */
  gift(room: string, giftId: string, count?: number): Promise<Ack>;
  /** Sends a gift under the app's own idempotency key; a repeat returns the original ack (duplicate). */
  giftWithKey(room: string, giftId: string, count: number, key: string): Promise<Ack>;
  /** Drops the connection and reconnects (resuming every room). */
  reconnect(): void;
  /** Disconnects and stops; pending calls reject with code "closed". */
  close(): void;
  /** A joined room's latest online count. */
  online(room: string): number | undefined;
  /** A joined room's resume position. */
  position(room: string): { epoch: string; seq: number } | undefined;
  /** Counters: batches, reliable, lossy, duplicates, gaps, reconnects, resumes, recovered, rebased, giftRetries, badFrames… */
  stats(): Record<string, number>;
}

export class DanmakuError extends Error {
  readonly code: Code;
  /** The server's ack, when the refusal came as one. */
  readonly ack: Ack | null;
  readonly room: string;
  /** The SDK refused the request without sending it. */
  readonly local: boolean;
  /** ms to wait before retrying, 0 if none. */
  readonly retryAfter: number;
  readonly retryable: boolean;
}

/** Failure of gift(): ack null means the outcome is unknown — retry with giftWithKey(key) later. */
export class GiftError extends DanmakuError {
  readonly key: string;
}

/** Whether a request refused with code may succeed later. */
export function retryable(code: string): boolean;
/** Full-jitter backoff delay of attempt n, ms. */
export function backoff(base: number, max: number, n: number): number;
/** A random 128-bit idempotency key (32 hex digits). */
export function newKey(): string;
/** "" when text is a valid chat of at most maxRunes runes, else "invalid_text" or "too_long". */
export function checkText(text: string, maxRunes: number): "" | "invalid_text" | "too_long";
/** Room ids are 1–64 characters of A-Z a-z 0-9 _ -. */
export function validRoom(id: string): boolean;
/** Frame body codec (msgpack map with `t`). */
export function encode(msg: Record<string, unknown> & { t: number }): Uint8Array;
export function decode(body: Uint8Array): Record<string, unknown> & { t: number };

/** The reliable-lane tracker (exactly once, in seq order) the client runs per room. */
export class Tracker {
  constructor(maxHeld: number, maxPre: number, note?: (counter: string, n: number) => void);
  readonly based: boolean;
  gap(): boolean;
  position(): { epoch: string; seq: number };
  join(epoch: string, seq: number): Batch[];
  batch(b: Batch): Batch | null;
  resumed(m: { recovered: boolean; epoch: string; seq: number; entries: Entry[]; state?: RoomState }): { replay: Entry[]; rebased: RoomState | null };
}
