// Errors of the SDK. Every refusal carries a code from the protocol's closed
// set (docs/PROTOCOL.md §4); a client treats an unknown code as a generic
// failure.

/** Codes after which the same request may succeed later. */
const RETRYABLE = new Set(["unavailable", "rate_limited", "timeout", "internal", "shutdown", "server_full"]);

/** retryable reports whether a request refused with code may succeed later. */
export function retryable(code) {
  return RETRYABLE.has(code);
}

/**
 * DanmakuError is a refusal: by the server (an ack or error with a code), or
 * by the SDK before sending (local is true), or a lost connection
 * (code "unavailable").
 */
export class DanmakuError extends Error {
  constructor(code, message, { ack = null, room = "", local = false, cause } = {}) {
    super(message ? `${code}: ${message}` : code, cause === undefined ? undefined : { cause });
    this.name = "DanmakuError";
    /** The protocol code, e.g. "rate_limited". */
    this.code = code;
    /** The server's ack, when the refusal came as one. */
    this.ack = ack;
    /** The room the request was about, if any. */
    this.room = room;
    /** True when the SDK refused the request without sending it. */
    this.local = local;
    /** Milliseconds to wait before retrying (rate_limited, slow_mode, unavailable), 0 if none. */
    this.retryAfter = ack ? ack.retryAfter : 0;
  }

  /** retryable reports whether the same request may succeed later. */
  get retryable() {
    return retryable(this.code);
  }
}

/**
 * GiftError is the failure of gift(): key identifies the purchase. When ack is
 * null the outcome is unknown (no ack before the deadline): retrying later
 * with giftWithKey and this key can never double the gift.
 */
export class GiftError extends DanmakuError {
  constructor(key, code, message, opts = {}) {
    super(code, message, opts);
    this.name = "GiftError";
    this.key = key;
  }
}
