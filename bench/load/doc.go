// Package load is what one bench worker process runs: lean viewers (one
// socket read by a shared epoll loop, ~1.5 KiB each, no goroutine once
// connected) that connect over TCP or WebSocket, join a room, send
// heartbeats, measure end-to-end latency, check every reliable seq exactly
// once and count lossy traffic; the senders among them send chat, likes
// and gifts (gifts retried with their idempotency key until acked); timed
// steps cut connections and scale traffic. It speaks the room protocol through room/proto (with a
// zero-allocation scanner for batches, the one message every viewer reads
// many times a second) and mints tokens with room/auth. Linux only (epoll).
//
// The coordinator (package bench) talks to a worker with the messages in
// messages.go: a Plan, then a Finish; the worker streams Stats every second
// and one Result at the end.
//
// It must not import package bench (the coordinator) or anything of the
// server (edge, fanout, room/manager).
package load
