package redisstore

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Bounds of the configuration, with their reasons.
const (
	// maxRetention bounds Config.Retention: a room's log is one stream in one
	// Redis node; a million entries (~200 MB) is far beyond any resume window.
	maxRetention = 1_000_000
	// maxBacklog bounds Config.BacklogSize: the backlog rides in the joined
	// frame, which must stay well under proto.MaxServerFrame.
	maxBacklog = 1000
	// minOpTimeout and maxOpTimeout bound Config.OpTimeout: below 10 ms a
	// loaded Redis fails healthy calls; above 10 s a dead Redis stalls senders
	// (and the :try: records, which live tryTTL, must outlive every retry).
	minOpTimeout = 10 * time.Millisecond
	maxOpTimeout = 10 * time.Second
	// minIdempotencyTTL bounds Config.IdempotencyTTL: a key must outlive the
	// SDK's retries, which span seconds at least.
	minIdempotencyTTL = time.Second
)

// Config configures a Store.
type Config struct {
	// URL is the Redis server, as redis.ParseURL reads it
	// (redis://[user:pass@]host:port/db, rediss:// for TLS).
	// Default "redis://127.0.0.1:6379/0". Ignored with WithClient.
	URL string
	// Prefix starts every key ("<Prefix>:{<room>}:…"). It must not contain
	// '{' or '}' (they would break the hash tags). Default "dmk".
	Prefix string
	// Retention is how many reliable entries each room keeps for resume, at
	// least (the stream is trimmed with MAXLEN ~, so it holds up to one
	// stream node, 100 entries by default, more). Default 1000.
	Retention int
	// IdempotencyTTL is how long an idempotency key is remembered: a retry
	// with the key within it gets the original seq. Default 24 h.
	IdempotencyTTL time.Duration
	// BacklogSize is how many chat entries the join backlog keeps (the
	// newest). Default 50.
	BacklogSize int
	// LedgerTTL, when > 0, makes a room's epoch, seq, log and backlog expire
	// after that long without a write, so abandoned rooms do not hold memory
	// forever; a room that comes back gets a new epoch. Policy and sanctions
	// never expire. Default 0 (never).
	LedgerTTL time.Duration
	// OpTimeout is the deadline of every store call, retries included: a dead
	// Redis costs a caller at most this long. Default 500 ms.
	OpTimeout time.Duration
	// DialTimeout is the deadline of one TCP connect (and handshake) to
	// Redis; at most OpTimeout. Default 250 ms. Ignored with WithClient.
	DialTimeout time.Duration
	// PoolSize is the number of connections to Redis (0 = go-redis's default,
	// 10 per CPU). Ignored with WithClient.
	PoolSize int
	// Retries is how many times go-redis retries one command after a
	// network error, within OpTimeout (0 = none). Safe for Append (see the
	// package doc). Default 2. Ignored with WithClient.
	Retries int
	// FenceNode, when not "", makes Append refuse (ErrNotOwner) unless the
	// room's owner lease key holds this node id: a stale owner on the wrong
	// side of a split brain cannot write. Default "" (no fencing).
	FenceNode string
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		URL:            "redis://127.0.0.1:6379/0",
		Prefix:         "dmk",
		Retention:      1000,
		IdempotencyTTL: 24 * time.Hour,
		BacklogSize:    50,
		OpTimeout:      500 * time.Millisecond,
		DialTimeout:    250 * time.Millisecond,
		Retries:        2,
	}
}

// Validate checks every field and names the first bad one.
func (c Config) Validate() error {
	switch {
	case c.Prefix == "" || strings.ContainsAny(c.Prefix, "{} \r\n"):
		return fmt.Errorf("redisstore config: Prefix %q must be non-empty without braces or spaces", c.Prefix)
	case c.Retention < 1 || c.Retention > maxRetention:
		return fmt.Errorf("redisstore config: Retention %d out of [1, %d]", c.Retention, maxRetention)
	case c.IdempotencyTTL < minIdempotencyTTL:
		return fmt.Errorf("redisstore config: IdempotencyTTL %v below %v", c.IdempotencyTTL, minIdempotencyTTL)
	case c.BacklogSize < 1 || c.BacklogSize > maxBacklog:
		return fmt.Errorf("redisstore config: BacklogSize %d out of [1, %d]", c.BacklogSize, maxBacklog)
	case c.LedgerTTL < 0 || (c.LedgerTTL > 0 && c.LedgerTTL < time.Second):
		return fmt.Errorf("redisstore config: LedgerTTL %v must be 0 or at least 1s", c.LedgerTTL)
	case c.OpTimeout < minOpTimeout || c.OpTimeout > maxOpTimeout:
		return fmt.Errorf("redisstore config: OpTimeout %v out of [%v, %v]", c.OpTimeout, minOpTimeout, maxOpTimeout)
	case c.DialTimeout <= 0 || c.DialTimeout > c.OpTimeout:
		return fmt.Errorf("redisstore config: DialTimeout %v out of (0, OpTimeout]", c.DialTimeout)
	case c.PoolSize < 0:
		return fmt.Errorf("redisstore config: PoolSize %d is negative", c.PoolSize)
	case c.Retries < 0 || c.Retries > 10:
		return fmt.Errorf("redisstore config: Retries %d out of [0, 10]", c.Retries)
	case strings.ContainsAny(c.FenceNode, "\r\n"):
		return errors.New("redisstore config: FenceNode contains a line break")
	}
	if _, err := redis.ParseURL(c.URL); err != nil {
		return fmt.Errorf("redisstore config: URL: %w", err)
	}
	return nil
}

// Option adjusts New.
type Option func(*options)

type options struct {
	reg    prometheus.Registerer
	log    *slog.Logger
	client redis.UniversalClient
}

// WithRegisterer registers the store's metrics there (nil: not registered).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithLogger logs there (nil: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClient uses c (a cluster, sentinel or shared client) instead of dialing
// Config.URL. The caller keeps ownership: Close does not close it. Its own
// timeouts and retries apply; OpTimeout still bounds every call.
func WithClient(c redis.UniversalClient) Option { return func(o *options) { o.client = c } }
