package fanout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lease is the outcome of an ownership call for one room.
type Lease struct {
	// Owner is the node that owns the room after the call ("" = nobody).
	Owner string
	// Until is when this node's lease ends at the latest, by this node's
	// clock: the time the call was sent plus the TTL, so it can only be
	// early. Zero when the lease never expires (local ownership) or when
	// Owner is another node.
	Until time.Time
}

// Ownership decides which node owns (runs the room manager of) each room.
// The Node calls it from its lease goroutine and, for a room with no known
// owner, from Forward. See OWNERSHIP.md for the protocol.
type Ownership interface {
	// Acquire makes this node the room's owner if nobody is, or extends its
	// lease if it already is, and returns who owns the room after the call.
	Acquire(ctx context.Context, room string) (Lease, error)
	// Renew extends this node's leases: one Lease per room, in order. A room
	// whose lease has lapsed and nobody took is taken again. An error means
	// nothing is known about any room (the store is unreachable).
	Renew(ctx context.Context, rooms []string) ([]Lease, error)
	// Release gives the room up if this node owns it.
	Release(ctx context.Context, room string) error
	// Owners returns the current owner of each room ("" = none), in order.
	Owners(ctx context.Context, rooms []string) ([]string, error)
}

// localOwnership is a single node's: it owns every room, forever.
type localOwnership struct{ node string }

// NewLocalOwnership returns the ownership of a single node (no Redis): node
// owns every room. Never use it on several nodes sharing a NATS: each would
// own every room.
func NewLocalOwnership(node string) Ownership { return localOwnership{node: node} }

func (l localOwnership) Acquire(context.Context, string) (Lease, error) {
	return Lease{Owner: l.node}, nil
}

func (l localOwnership) Renew(_ context.Context, rooms []string) ([]Lease, error) {
	out := make([]Lease, len(rooms))
	for i := range out {
		out[i] = Lease{Owner: l.node}
	}
	return out, nil
}

func (l localOwnership) Release(context.Context, string) error { return nil }

func (l localOwnership) Owners(_ context.Context, rooms []string) ([]string, error) {
	out := make([]string, len(rooms))
	for i := range out {
		out[i] = l.node
	}
	return out, nil
}

// RedisOwnership is a lease per room in Redis: key <prefix>:{<room>}:owner
// holds the owner's node id with a TTL. fanout/redisstore fences reliable
// appends on the same key, so only the node named there can assign seqs.
type RedisOwnership struct {
	rdb    redis.UniversalClient
	prefix string
	node   string
	ttl    time.Duration
}

// minLeaseTTL bounds the TTL from below: a lease must outlive a couple of
// renewals and a Redis round trip under load.
const minLeaseTTL = 100 * time.Millisecond

// NewRedisOwnership returns leases of ttl (3 s by default in cmd) under
// prefix ("dmk", the store's prefix) for node, on client. The client stays
// the caller's.
func NewRedisOwnership(client redis.UniversalClient, prefix, node string, ttl time.Duration) (*RedisOwnership, error) {
	switch {
	case client == nil:
		return nil, errors.New("redis ownership: nil client")
	case prefix == "" || strings.ContainsAny(prefix, "{} \r\n"):
		return nil, fmt.Errorf("redis ownership: prefix %q must be non-empty without braces or spaces", prefix)
	case !validID(node):
		return nil, fmt.Errorf("redis ownership: node id %q must be 1-64 of [A-Za-z0-9_-]", node)
	case ttl < minLeaseTTL:
		return nil, fmt.Errorf("redis ownership: ttl %v below %v", ttl, minLeaseTTL)
	}
	return &RedisOwnership{rdb: client, prefix: prefix, node: node, ttl: ttl}, nil
}

// TTL is the lease duration.
func (o *RedisOwnership) TTL() time.Duration { return o.ttl }

func (o *RedisOwnership) key(room string) string { return o.prefix + ":{" + room + "}:owner" }

// acquireScript takes a free lease or extends our own, and returns the owner.
// KEYS[1] owner key; ARGV[1] node id, ARGV[2] TTL in ms.
var acquireScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v
`)

// releaseScript deletes the lease only if it is ours (compare-and-delete).
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

func (o *RedisOwnership) lease(owner string, sent time.Time) Lease {
	if owner != o.node {
		return Lease{Owner: owner}
	}
	return Lease{Owner: owner, Until: sent.Add(o.ttl)}
}

// Acquire implements Ownership.
func (o *RedisOwnership) Acquire(ctx context.Context, room string) (Lease, error) {
	sent := time.Now()
	owner, err := acquireScript.Run(ctx, o.rdb, []string{o.key(room)}, o.node, o.ttl.Milliseconds()).Text()
	if err != nil {
		return Lease{}, fmt.Errorf("acquire room %q: %w", room, err)
	}
	return o.lease(owner, sent), nil
}

// Renew implements Ownership: one pipelined script per room (keys of
// different rooms may live on different Redis Cluster nodes, so no
// multi-key script).
func (o *RedisOwnership) Renew(ctx context.Context, rooms []string) ([]Lease, error) {
	if len(rooms) == 0 {
		return nil, nil
	}
	sent := time.Now()
	cmds := make([]*redis.Cmd, len(rooms))
	_, err := o.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, room := range rooms {
			cmds[i] = acquireScript.Eval(ctx, p, []string{o.key(room)}, o.node, o.ttl.Milliseconds())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("renew %d leases: %w", len(rooms), err)
	}
	out := make([]Lease, len(rooms))
	for i, c := range cmds {
		owner, err := c.Text()
		if err != nil {
			return nil, fmt.Errorf("renew lease of room %q: %w", rooms[i], err)
		}
		out[i] = o.lease(owner, sent)
	}
	return out, nil
}

// Release implements Ownership.
func (o *RedisOwnership) Release(ctx context.Context, room string) error {
	if err := releaseScript.Run(ctx, o.rdb, []string{o.key(room)}, o.node).Err(); err != nil {
		return fmt.Errorf("release room %q: %w", room, err)
	}
	return nil
}

// Owners implements Ownership.
func (o *RedisOwnership) Owners(ctx context.Context, rooms []string) ([]string, error) {
	if len(rooms) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(rooms))
	_, err := o.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, room := range rooms {
			cmds[i] = p.Get(ctx, o.key(room))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("look up %d owners: %w", len(rooms), err)
	}
	out := make([]string, len(rooms))
	for i, c := range cmds {
		v, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, fmt.Errorf("look up owner of room %q: %w", rooms[i], err)
		default:
			out[i] = v
		}
	}
	return out, nil
}
