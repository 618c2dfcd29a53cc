package edge

import "github.com/danmaku/danmaku/room/manager"

// Bus carries what the edge exchanges with room owners, wherever they run:
// fanout.Node in production (embedded or external NATS), an in-test loopback
// in this package's tests.
//
// The bus calls back into the edge with Server.DeliverBatch (a room's batch,
// once per node), Server.DeliverReply (an answer for one session) and
// Server.LocalCounts (for cluster-wide online counts).
type Bus interface {
	// Watch starts delivery of room's batches to this node. The edge calls it
	// when the room gets its first local member.
	Watch(room string) error
	// Unwatch stops it, when the room's last local member left.
	Unwatch(room string)
	// Forward sends a request to the room's owner. The answer comes back
	// through Server.DeliverReply. An error means the request was not sent
	// (answer the client with proto.CodeUnavailable). Forward may block
	// briefly: never call it from an event loop callback.
	Forward(in *manager.Inbound) error
}
