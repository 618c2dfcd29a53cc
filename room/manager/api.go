package manager

import (
	"context"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// Inbound is one request for a room, as the edge (or the backend API) hands it
// to the room's owner. Exactly one of Msg and Publish is set.
type Inbound struct {
	// Node is the edge node holding the sender's connection; replies go there.
	Node string
	// Session is the sender's session on Node (0 for API publishes).
	Session uint64
	// User, Name and Role come from the sender's verified token.
	User string
	Name string
	Role proto.Role
	// Msg is the client's request: *proto.Join, *proto.Resume, *proto.Chat,
	// *proto.Like or *proto.Gift, already validated with proto.Validate.
	Msg proto.Message
	// Publish is a reliable entry from the app's backend or an operator.
	Publish *Publish
	// Received is when the edge read the request (Unix ms).
	Received int64
}

// Publish asks the owner to put one entry in the room's reliable lane.
type Publish struct {
	// Entry to publish; its Kind must be reliable (gift, notice, state, mod).
	Entry proto.Entry
	// Key is the idempotency key ("" = none): a second publish with the same
	// key returns the first one's seq and broadcasts nothing.
	Key string
}

// Emitted is one batch leaving the owner, encoded once for every viewer.
type Emitted struct {
	Room string
	Tick uint64
	// Body is the msgpack body of a proto.Batch. The sink owns it after
	// Publish and may hand it to many connections; nobody modifies it.
	Body []byte
	// Reliable is true when the batch holds reliable entries: a slow
	// connection past its soft cap still gets these batches.
	Reliable bool
	// FirstSeq and LastSeq bound the batch's reliable entries (0 when none).
	FirstSeq, LastSeq uint64
	// Online is the cluster-wide count carried by the batch, or -1.
	Online int64
	// At is when the owner emitted the batch (Unix ns): the edge measures
	// fan-out latency from it.
	At int64
}

// Reply is one frame for one session, on the node Inbound.Node named.
type Reply struct {
	Node    string
	Session uint64
	// Body is a msgpack body: *proto.Ack, *proto.Joined, *proto.Resumed or
	// *proto.Error, carrying the request's id.
	Body []byte
}

// Sink is where a manager's output goes: the fan-out layer in production, a
// recorder in tests. Both methods are called from room goroutines and must not
// block for long (hand off, do not do I/O inline).
type Sink interface {
	Publish(b *Emitted)
	Reply(r Reply)
}

// Backpressure is optionally implemented by a Sink: when Pending(room) is true
// the previous batch of the room is still being written, so the room skips a
// tick and merges its entries into the next batch instead of queueing.
type Backpressure interface {
	Pending(room string) bool
}

// Head is the position of a room's reliable lane.
type Head struct {
	Epoch string
	Seq   uint64 // last seq assigned in Epoch, 0 when none yet
}

// Appended is the result of Ledger.Append.
type Appended struct {
	// Entry is the stored entry, Seq and ServerTS set. For a duplicate it is
	// the entry stored by the first append with the key.
	Entry proto.Entry
	Epoch string
	// Duplicate is true when the key was seen before: nothing was written.
	Duplicate bool
}

// Replay is the result of Ledger.Since.
type Replay struct {
	Head    Head
	Entries []proto.Entry // seq ascending
	// Complete is true when Entries are all entries after the asked seq in the
	// asked epoch; false when the epoch differs or they fell out of retention.
	Complete bool
}

// Ledger is the reliable lane's durable log (invariants 1, 2, 9). Seq comes
// from here, never from a manager's memory, so it survives owner changes.
type Ledger interface {
	// Head returns the room's epoch and last seq, creating the epoch if the
	// room has none.
	Head(ctx context.Context, room string) (Head, error)
	// Append assigns the next seq to e and stores it, atomically with the
	// idempotency check of key (if not ""). Errors leave nothing written.
	Append(ctx context.Context, room, key string, e proto.Entry) (Appended, error)
	// Since returns up to limit entries after seq `after` of epoch.
	Since(ctx context.Context, room, epoch string, after uint64, limit int) (Replay, error)
}

// Sanction is a mute or ban of one user, in one room or ("" room) everywhere.
type Sanction struct {
	Room  string
	User  string
	Ban   bool      // false = mute
	Until time.Time // zero = permanent
}

// Policy is a room's operator settings. Zero fields mean "the default".
type Policy struct {
	Title    string
	Budget   int           // chat msgs/s broadcast (0 = Config.Budget)
	Tick     time.Duration // batch interval (0 = Config.Tick)
	SlowMode time.Duration // min interval between one user's chats (0 = off)
	VIPOnly  bool          // chat only from vip and staff
	Closed   bool          // nobody may join or send
}

// State holds what rooms share across nodes besides the ledger.
type State interface {
	// Backlog returns the newest chat entries (≤ 50, oldest first).
	Backlog(ctx context.Context, room string) ([]proto.Entry, error)
	// SaveBacklog replaces the room's backlog.
	SaveBacklog(ctx context.Context, room string, entries []proto.Entry) error
	// Sanctions returns the active sanctions of room plus the global ones.
	Sanctions(ctx context.Context, room string) ([]Sanction, error)
	// SetSanction stores s, replacing an earlier one of the same room, user
	// and kind.
	SetSanction(ctx context.Context, s Sanction) error
	// LiftSanction removes a mute (ban=false) or ban of user in room.
	LiftSanction(ctx context.Context, room, user string, ban bool) error
	// Policy returns the room's policy (zero value when none was set).
	Policy(ctx context.Context, room string) (Policy, error)
	// SetPolicy stores the room's policy.
	SetPolicy(ctx context.Context, room string, p Policy) error
}

// Store is a Ledger and a State: the memory store (single node) and the Redis
// store (cluster) both implement it.
type Store interface {
	Ledger
	State
}

// GiftRequest is what a GiftAuthorizer is asked.
type GiftRequest struct {
	Room, User, Name string
	Gift             string
	Count            uint32
	Key              string
}

// GiftAuthorizer asks the app's backend whether a gift may go through (the
// gift webhook). Called off the room goroutine with bounded concurrency; an
// error denies the gift with its code (proto.CodeGiftDenied by default).
type GiftAuthorizer interface {
	AuthorizeGift(ctx context.Context, g GiftRequest) error
}
