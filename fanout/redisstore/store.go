package redisstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

var _ manager.Store = (*Store)(nil)

// ErrNotOwner is returned (wrapped) by Append when Config.FenceNode is set and
// the room's owner lease names another node or no node. It wraps
// proto.CodeUnavailable: for the client it is a retryable failure.
var ErrNotOwner = fmt.Errorf("not the room's owner (fenced): %w", proto.CodeUnavailable)

// ErrCorrupt is returned (wrapped) when a value in Redis cannot be parsed:
// something other than this package wrote the key, or a bug did.
var ErrCorrupt = fmt.Errorf("corrupt value in redis: %w", proto.CodeInternal)

// Input bounds, checked before anything reaches Redis.
const (
	// maxUserLen bounds a user id in a sanction: user ids come from verified
	// tokens; 256 bytes bounds one hash field.
	maxUserLen = 256
	// maxEntryBytes bounds one encoded reliable entry: gifts and notices are
	// under 1 KiB; 16 KiB leaves room for state JSON and lets a replay of 60
	// maximal entries fit proto.MaxServerFrame.
	maxEntryBytes = 16 << 10
	// maxFloors bounds the per-room rollback guard kept in memory (one entry
	// per room this process has touched); past it one entry is forgotten.
	maxFloors = 1 << 16
)

// Store is the Redis implementation of manager.Store. It is safe for
// concurrent use.
type Store struct {
	cfg    Config
	rdb    redis.UniversalClient
	owned  bool // rdb was dialed by New: Close closes it
	log    *slog.Logger
	m      *metrics
	mu     sync.Mutex
	floors map[string]floor
}

// floor is the highest seq this process has seen in a room's epoch. Seq never
// decreases within an epoch unless Redis lost acknowledged writes; a script
// that finds the room below its floor starts a new epoch instead of handing
// out the lost seqs again.
type floor struct {
	epoch string
	seq   uint64
}

// New returns a store on cfg.URL (or the client given WithClient). It does not
// contact Redis: call Ping to check it is reachable.
func New(cfg Config, opts ...Option) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	m, err := newMetrics(o.reg)
	if err != nil {
		return nil, fmt.Errorf("redisstore metrics: %w", err)
	}
	s := &Store{cfg: cfg, rdb: o.client, log: o.log, m: m, floors: make(map[string]floor)}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.rdb == nil {
		ro, err := redis.ParseURL(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("redisstore config: URL: %w", err)
		}
		applyTimeouts(ro, cfg)
		s.rdb, s.owned = redis.NewClient(ro), true
	}
	if o.reg != nil {
		if err := o.reg.Register(newPoolCollector(s.rdb.PoolStats)); err != nil {
			s.Close()
			return nil, fmt.Errorf("redisstore metrics: %w", err)
		}
	}
	return s, nil
}

// applyTimeouts makes a dead Redis cost at most OpTimeout per call instead of
// go-redis's multi-second defaults.
func applyTimeouts(ro *redis.Options, cfg Config) {
	ro.DialTimeout = cfg.DialTimeout
	ro.ReadTimeout = cfg.OpTimeout
	ro.WriteTimeout = cfg.OpTimeout
	ro.PoolTimeout = cfg.OpTimeout
	ro.ContextTimeoutEnabled = true
	ro.MaxRetries = cfg.Retries
	if cfg.Retries == 0 {
		ro.MaxRetries = -1 // go-redis: -1 disables retries, 0 means its default
	}
	// One dial attempt per call: the caller's retry (with the same key) is the
	// retry, and a refused dial should fail now, not after 5 backoffs.
	ro.DialerRetries = 1
	if cfg.PoolSize > 0 {
		ro.PoolSize = cfg.PoolSize
	}
	// Maintenance notifications are for Redis Enterprise/Cloud: one command
	// less per new connection.
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}

// Client returns the Redis client, e.g. for the owner lease in fanout.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Close closes the client if New dialed it.
func (s *Store) Close() error {
	if !s.owned {
		return nil
	}
	return s.rdb.Close()
}

// Ping checks that Redis answers, within OpTimeout (for /readyz).
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return s.fail("ping", "", err)
	}
	return nil
}

func (s *Store) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.OpTimeout)
}

// key returns "<prefix>:{<room>}:<suffix>".
func (s *Store) key(room, suffix string) string {
	return s.cfg.Prefix + ":{" + room + "}:" + suffix
}

// checkRoom keeps ids that would break the key layout out of Redis.
func checkRoom(op, room string) error {
	if !proto.ValidRoom(room) {
		return fmt.Errorf("redis %s: room %q: %w", op, room, proto.CodeBadRequest)
	}
	return nil
}

// fail counts err and wraps it: proto.CodeUnavailable for every Redis
// failure, ErrNotOwner for a fenced append.
func (s *Store) fail(op, room string, err error) error {
	reason := classify(err)
	s.m.ops.WithLabelValues(op, "error").Inc()
	s.m.errors.WithLabelValues(op, reason).Inc()
	if reason == "not_owner" {
		return fmt.Errorf("redis %s room %q: %w", op, room, ErrNotOwner)
	}
	return fmt.Errorf("redis %s room %q: %w: %w", op, room, proto.CodeUnavailable, err)
}

// corrupt counts and wraps a value that could not be parsed.
func (s *Store) corrupt(op, room string, err error) error {
	s.m.ops.WithLabelValues(op, "error").Inc()
	s.m.errors.WithLabelValues(op, "corrupt").Inc()
	return fmt.Errorf("redis %s room %q: %w: %w", op, room, ErrCorrupt, err)
}

func (s *Store) ok(op, result string) { s.m.ops.WithLabelValues(op, result).Inc() }

// classify names err for the errors metric.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, redis.ErrClosed):
		return "closed"
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "conn"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &ne):
		return "conn"
	}
	msg := err.Error()
	for _, p := range [...]struct{ prefix, reason string }{
		{"NOTOWNER", "not_owner"}, {"LOADING", "loading"}, {"READONLY", "readonly"},
		{"OOM", "oom"}, {"MASTERDOWN", "readonly"}, {"CLUSTERDOWN", "cluster"},
		{"TRYAGAIN", "cluster"}, {"MOVED", "cluster"}, {"ASK", "cluster"}, {"NOSCRIPT", "noscript"},
	} {
		if strings.HasPrefix(msg, p.prefix) {
			return p.reason
		}
	}
	var re redis.Error
	if errors.As(err, &re) {
		return "redis_error"
	}
	return "other"
}

// newEpoch returns a fresh random epoch, 16 hex chars. Its 64 random bits make
// a collision with any earlier epoch of the room negligible.
func newEpoch() string {
	var b [8]byte
	putUint64(b[:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

// newNonce returns 128 random bits, hex: unique per Append call.
func newNonce() string {
	var b [16]byte
	putUint64(b[:8], rand.Uint64())
	putUint64(b[8:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// floorOf returns the room's floor for a script's arguments.
func (s *Store) floorOf(room string) floor {
	s.mu.Lock()
	f := s.floors[room]
	s.mu.Unlock()
	return f
}

// raiseFloor records that the room reached seq in epoch; it never lowers the
// floor within an epoch.
func (s *Store) raiseFloor(room, epoch string, seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.floors[room]
	if ok && f.epoch == epoch && f.seq >= seq {
		return
	}
	if !ok && len(s.floors) >= maxFloors {
		for k := range s.floors { // forget one room: it loses only this guard
			delete(s.floors, k)
			break
		}
	}
	s.floors[room] = floor{epoch: epoch, seq: seq}
}
