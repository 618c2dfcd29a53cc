package fanout

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// PendingLimit bounds what a subscription may hold before its handler runs.
// nats.go drops messages past it (counted as slow-consumer drops); its own
// defaults (500,000 messages / 64 MB per subscription) are far too large to be
// a deliberate memory bound.
type PendingLimit struct {
	// Msgs is the most messages pending in one subscription.
	Msgs int
	// Bytes is the most payload bytes pending in one subscription.
	Bytes int
}

// EmbeddedConfig configures the nats-server this node runs in-process when
// Config.NATSURLs is empty.
type EmbeddedConfig struct {
	// ClientAddr is the host:port where the embedded server accepts NATS
	// clients (tools, other danmaku nodes with --nats). "" = no listener:
	// only this process connects, in-process — except that a clustered
	// server (ClusterAddr set) must listen for nats-server to start routing,
	// so it then listens on 127.0.0.1 on a free port. Port 0 picks a free
	// port. Default "".
	ClientAddr string
	// ClusterAddr is the host:port where the embedded server accepts routes
	// from other nodes' embedded servers, forming a real NATS cluster
	// (--nats-cluster). "" = not clustered. Port 0 picks a free port.
	// Default "".
	ClusterAddr string
	// Routes are other nodes' cluster addresses, "nats://host:port"
	// (--nats-routes). NATS gossips the rest of the mesh, so one live route
	// is enough to join. Default none.
	Routes []string
	// ClusterName names the NATS cluster; every route must agree.
	// Default "danmaku".
	ClusterName string
	// MaxPayload is the largest NATS message, bytes. A batch body is at most
	// proto.MaxServerFrame (1 MiB) plus a ~200-byte envelope, which NATS's
	// 1 MB default cannot carry. Default 2 MiB. (An external NATS must set
	// max_payload likewise; see docs.)
	MaxPayload int
}

// Config configures a Node.
type Config struct {
	// NodeID names this node in subjects, owner leases and replies: 1–64 of
	// [A-Za-z0-9_-], unique in the cluster. Required.
	NodeID string
	// NATSURLs are the servers of an external NATS cluster (--nats). Empty =
	// run an embedded nats-server in-process (Embedded). Default empty.
	NATSURLs []string
	// Embedded configures the in-process server used when NATSURLs is empty.
	Embedded EmbeddedConfig
	// Prefix is the first token of every subject (see subjects.go): two
	// deployments may share one NATS with different prefixes. 1–32 of
	// [A-Za-z0-9_-]. Default "dmk".
	Prefix string

	// InPending bounds each owned room's request subscription. A room's
	// handler only decodes and calls Manager.Submit (microseconds), so the
	// queue grows only when this process stalls; 32,768 requests (~3 s of a
	// 10,000 msgs/s room, ~200 B each) is the most worth answering late.
	// Default {32768, 16 MiB}.
	InPending PendingLimit
	// OutPending bounds each watched room's batch subscription. A room emits
	// at most ~20 batches/s and delivery to the edge never blocks, so 1,024
	// batches is nearly a minute of backlog: stale by then (reliable entries
	// are recovered by resume). Default {1024, 16 MiB}.
	OutPending PendingLimit
	// ReplyPending bounds this node's reply subscription (answers from
	// remote owners to all local sessions). Default {65536, 32 MiB}.
	ReplyPending PendingLimit
	// ControlPending bounds each of the small subscriptions: control events,
	// online counts and no-responder statuses. Default {4096, 16 MiB}.
	ControlPending PendingLimit

	// ReconnectBufSize bounds, in bytes, what nats.go buffers while it
	// reconnects; past it publishes fail and are counted as drops
	// (reason "nats_publish"), so an outage cannot grow memory. 8 MiB holds
	// a couple of seconds of a busy node's output, which covers the usual
	// failover to another server of the cluster without losing a batch.
	// -1 disables buffering (every publish fails while disconnected).
	// Default 8 MiB.
	ReconnectBufSize int
	// ReconnectWait is the pause between two reconnect attempts to the same
	// server (another server of the list is tried at once). Default 250 ms.
	ReconnectWait time.Duration
	// ConnectTimeout bounds one connection attempt. Default 2 s.
	ConnectTimeout time.Duration
	// PublishQueue is how many outgoing batches and replies wait for the
	// NATS publisher goroutine. The manager skips a room's tick while its
	// previous batch waits (Pending), so the queue holds about one batch per
	// room; past it batches are dropped and counted (reason "queue_full").
	// Default 8192.
	PublishQueue int

	// LeaseRenew is how often owned rooms' leases are renewed and watched
	// rooms' owners checked (a dead owner is replaced within the lease TTL
	// plus this). Default 1 s.
	LeaseRenew time.Duration
	// LeaseOpTimeout bounds one ownership call (Redis round trip). A
	// request for a room with no known owner waits at most this long for an
	// acquisition. Default 500 ms.
	LeaseOpTimeout time.Duration
	// StrictLease, when true, makes a node give its rooms up as soon as it
	// cannot renew their leases (LeaseMargin before they could expire), so
	// two owners never coexist even for chat — at the price that a Redis
	// outage stops every room. When false (the default) a node keeps the
	// rooms it owns while Redis is unreachable: chat keeps flowing
	// (invariant 9) and reliable appends fail fast, fenced by the store.
	// See OWNERSHIP.md.
	StrictLease bool
	// LeaseMargin is how long before its lease could expire a node gives a
	// room up under StrictLease. Default 500 ms.
	LeaseMargin time.Duration
	// OwnerCacheTTL is how long a node trusts an owner it looked up for a
	// room it does not watch (watched rooms are re-checked every
	// LeaseRenew). Default 3 s.
	OwnerCacheTTL time.Duration
	// IdleRelease hands over an owned room after it had no member on any
	// node for this long, so leases and subscriptions do not accumulate;
	// the next request re-acquires it. 0 = never. Default 1 min.
	IdleRelease time.Duration
	// RetryAfter is the RetryAfter (ms granularity) put in an unavailable
	// answer when a room's owner cannot be reached. Default 500 ms.
	RetryAfter time.Duration

	// OnlineInterval is how often this node reports its per-room member
	// counts and owners publish the cluster-wide totals. A node's counts
	// expire after 3 intervals without a report. Default 2 s.
	OnlineInterval time.Duration
	// MaxOnlineRooms bounds the rooms in the online-count table (rooms with
	// members on any node); reports past it are dropped and counted
	// (reason "online_table_full"). Default 100,000.
	MaxOnlineRooms int

	// MaxBroadcasts bounds concurrent Broadcast calls waiting for their ack;
	// past it Broadcast fails with proto.CodeUnavailable. Default 4096.
	MaxBroadcasts int
	// BroadcastTimeout bounds a Broadcast whose context has no deadline,
	// retries included. Default 5 s.
	BroadcastTimeout time.Duration
	// DrainTimeout bounds a drain started by a control event. Default 30 s.
	DrainTimeout time.Duration
}

// DefaultConfig returns the defaults documented on Config (NodeID empty).
func DefaultConfig() Config {
	return Config{
		Embedded:         EmbeddedConfig{ClusterName: "danmaku", MaxPayload: 2 << 20},
		Prefix:           "dmk",
		InPending:        PendingLimit{Msgs: 32768, Bytes: 16 << 20},
		OutPending:       PendingLimit{Msgs: 1024, Bytes: 16 << 20},
		ReplyPending:     PendingLimit{Msgs: 65536, Bytes: 32 << 20},
		ControlPending:   PendingLimit{Msgs: 4096, Bytes: 16 << 20},
		ReconnectBufSize: 8 << 20,
		ReconnectWait:    250 * time.Millisecond,
		ConnectTimeout:   2 * time.Second,
		PublishQueue:     8192,
		LeaseRenew:       time.Second,
		LeaseOpTimeout:   500 * time.Millisecond,
		LeaseMargin:      500 * time.Millisecond,
		OwnerCacheTTL:    3 * time.Second,
		IdleRelease:      time.Minute,
		RetryAfter:       500 * time.Millisecond,
		OnlineInterval:   2 * time.Second,
		MaxOnlineRooms:   100_000,
		MaxBroadcasts:    4096,
		BroadcastTimeout: 5 * time.Second,
		DrainTimeout:     30 * time.Second,
	}
}

// maxPrefixLen keeps subjects short: every message carries its subject.
const maxPrefixLen = 32

// Validate checks every field and names the first bad one.
func (c Config) Validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("fanout config: %s %v: %s", field, v, why)
	}
	if !validID(c.NodeID) {
		return bad("NodeID", fmt.Sprintf("%q", c.NodeID), "must be 1-64 of [A-Za-z0-9_-]")
	}
	if !validID(c.Prefix) || len(c.Prefix) > maxPrefixLen {
		return bad("Prefix", fmt.Sprintf("%q", c.Prefix), "must be 1-32 of [A-Za-z0-9_-]")
	}
	for _, u := range c.NATSURLs {
		if u == "" || strings.ContainsAny(u, " ,") {
			return bad("NATSURLs", fmt.Sprintf("%q", u), "must be single non-empty URLs")
		}
	}
	if len(c.NATSURLs) == 0 {
		if err := c.Embedded.validate(); err != nil {
			return err
		}
	}
	for name, p := range map[string]PendingLimit{"InPending": c.InPending, "OutPending": c.OutPending,
		"ReplyPending": c.ReplyPending, "ControlPending": c.ControlPending} {
		if p.Msgs < 1 || p.Bytes < 1<<10 {
			return bad(name, p, "needs Msgs >= 1 and Bytes >= 1 KiB")
		}
	}
	durations := []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{
		{"ReconnectWait", c.ReconnectWait, time.Millisecond},
		{"ConnectTimeout", c.ConnectTimeout, 10 * time.Millisecond},
		{"LeaseRenew", c.LeaseRenew, 10 * time.Millisecond},
		{"LeaseOpTimeout", c.LeaseOpTimeout, time.Millisecond},
		{"LeaseMargin", c.LeaseMargin, 0},
		{"OwnerCacheTTL", c.OwnerCacheTTL, time.Millisecond},
		{"IdleRelease", c.IdleRelease, 0},
		{"RetryAfter", c.RetryAfter, time.Millisecond},
		{"OnlineInterval", c.OnlineInterval, 10 * time.Millisecond},
		{"BroadcastTimeout", c.BroadcastTimeout, time.Millisecond},
		{"DrainTimeout", c.DrainTimeout, time.Millisecond},
	}
	for _, d := range durations {
		if d.v < d.min {
			return bad(d.name, d.v, fmt.Sprintf("below %v", d.min))
		}
	}
	switch {
	case c.ReconnectBufSize == 0 || c.ReconnectBufSize < -1:
		return bad("ReconnectBufSize", c.ReconnectBufSize, "must be -1 (no buffer) or > 0 bytes")
	case c.PublishQueue < 1:
		return bad("PublishQueue", c.PublishQueue, "must be >= 1")
	case c.MaxOnlineRooms < 1:
		return bad("MaxOnlineRooms", c.MaxOnlineRooms, "must be >= 1")
	case c.MaxBroadcasts < 1:
		return bad("MaxBroadcasts", c.MaxBroadcasts, "must be >= 1")
	case c.RetryAfter > time.Minute:
		return bad("RetryAfter", c.RetryAfter, "above 1m")
	}
	return nil
}

func (e EmbeddedConfig) validate() error {
	for name, addr := range map[string]string{"Embedded.ClientAddr": e.ClientAddr, "Embedded.ClusterAddr": e.ClusterAddr} {
		if addr == "" {
			continue
		}
		if _, _, err := splitHostPort(addr); err != nil {
			return fmt.Errorf("fanout config: %s %q: %w", name, addr, err)
		}
	}
	if len(e.Routes) > 0 && e.ClusterAddr == "" {
		return errors.New("fanout config: Embedded.Routes need Embedded.ClusterAddr")
	}
	if e.ClusterAddr != "" && !validID(e.ClusterName) {
		return fmt.Errorf("fanout config: Embedded.ClusterName %q must be 1-64 of [A-Za-z0-9_-]", e.ClusterName)
	}
	if e.MaxPayload < 64<<10 || e.MaxPayload > 64<<20 {
		return fmt.Errorf("fanout config: Embedded.MaxPayload %d out of [64 KiB, 64 MiB]", e.MaxPayload)
	}
	return nil
}

// splitHostPort parses host:port; port 0 means "any free port", which
// nats-server spells -1 (its 0 means the default 4222, never wanted here).
func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := net.LookupPort("tcp", p)
	if err != nil {
		return "", 0, err
	}
	if port == 0 {
		port = -1
	}
	return host, port, nil
}

// validID reports whether s is safe as one NATS subject token and a Redis
// key part: the room-id alphabet, reused for node ids and the prefix.
func validID(s string) bool { return proto.ValidRoom(s) }
