// Package fanout is everything that crosses nodes: the NATS connection (an
// embedded nats-server by default, an external cluster in production), the
// subjects, room ownership (exactly one room manager per room cluster-wide),
// cluster-wide online counts and control events (sanctions, policy, kicks,
// notices, drains).
//
// A Node implements edge.Bus for the edge (Watch, Unwatch, Forward) and
// manager.Sink for the room manager (Publish, Reply, Pending). Traffic a node
// can serve itself never touches NATS: requests for rooms it owns go straight
// to its manager, and its rooms' batches go straight to its edge; NATS carries
// one copy of each batch to every other node with members in the room. The
// subjects and envelopes are described in subjects.go and envelope.go; the
// ownership protocol and its failure modes in OWNERSHIP.md.
//
// It must not import edge (the edge imports it, through the Edge interface
// defined here) nor know about sockets or sessions beyond their ids. The Redis
// implementation of manager.Store lives in fanout/redisstore.
package fanout
