// Package wsframe is the WebSocket (RFC 6455) server side for an event loop
// that must never block: the opening handshake and client frames are parsed
// from bytes that already arrived (a gnet Peek), and a caller consumes input
// only once a whole handshake or frame is there. Parsing and header checks are
// gobwas/ws; this package adds the "is it complete yet" logic and the size
// limits around it, and builds server frame headers without allocating.
//
// It owns no connection state and does no I/O. It must not import gnet or the
// rest of the edge: the edge drives it, tests and fuzzers call it directly.
package wsframe
