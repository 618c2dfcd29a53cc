// Package edge is the connection server: it holds viewers' TCP and WebSocket
// connections on gnet event loops (one port speaks both, told apart by the
// first bytes), authenticates the hello, enforces per-connection limits and
// deadlines, forwards requests to room owners over a Bus, and writes each room
// batch the Bus delivers to every local member of the room — encoded once,
// one task per event loop, one socket write per member, never blocking a loop
// and never letting one slow reader hold back the others.
//
// Follow one batch: Server.DeliverBatch (bus goroutine: build the TCP and
// WebSocket frames once) → loop.pushBatch (per-loop inbox, one Execute) →
// loop.runInbox (on the loop: coalesce what is pending per room) →
// loop.writeRoom (per member: caps, one Write of the shared bytes).
// Follow one chat: OnTraffic → conn.readFrames → loop.handle (checks) →
// forwarder queue → Bus.Forward; the owner's Ack comes back via
// Server.DeliverReply → loop inbox → the session's socket.
//
// It imports room/proto, room/auth and room/manager (types only). It must not
// import fanout, Redis or NATS: the Bus interface (bus.go) is the boundary.
// The WebSocket parsing it relies on is edge/wsframe.
package edge
