// Package fakeedge is a test double of a danmaku edge node for the bench's
// tests: enough of the room protocol, over TCP and WebSocket on one port, to
// run scenarios against — hello→welcome, join→joined, resume→resumed with a
// replay, chat/like/gift→ack (gifts idempotent by key, sequenced), a batch per
// room per tick with a chat budget and its dr, ping→pong — plus a Prometheus
// text endpoint and a few injectable faults. It is not the real server: one
// goroutine per connection and one lock per room, for a few hundred
// connections in a test.
//
// It must not import the server (edge, fanout, room/manager): it stands in
// for them.
package fakeedge
