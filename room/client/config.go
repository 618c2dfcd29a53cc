package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"time"
)

// SDK identification sent in hello.
const (
	SDKName    = "danmaku-go"
	SDKVersion = "0.1.0"
)

// minReadBuffer keeps ReadBuffer above a frame header plus a small frame:
// below it every frame costs several reads.
const minReadBuffer = 512

// Config tunes a Client. Start from DefaultConfig (Dial does) and change
// fields with Options; zero durations and sizes are invalid, not defaults.
type Config struct {
	// DialTimeout bounds one connection attempt: TCP connect, TLS, WebSocket
	// upgrade, hello and welcome. Default 10 s.
	DialTimeout time.Duration
	// WriteTimeout bounds writing one frame; a socket that does not take a
	// frame in this time is treated as dead (reconnect). Default 10 s.
	WriteTimeout time.Duration
	// Heartbeat is the ping interval. 0 (the default) means 4/5 of the
	// interval the server announces in welcome (which is 25 s by default).
	// The connection is considered dead when no frame arrives for two server
	// intervals while the SDK is waiting for one.
	Heartbeat time.Duration
	// BackoffBase and BackoffMax shape reconnect and gift-retry delays:
	// attempt n waits a uniformly random time in [0, min(BackoffMax,
	// BackoffBase·2^n)) ("full jitter", so a node's viewers do not all come
	// back at once). A connection that stayed up at least BackoffMax resets
	// the attempt count. Defaults 200 ms and 10 s.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// MaxReconnectAttempts is how many consecutive failed reconnects the
	// client makes before it gives up (EventClosed). 0 (default) = never.
	MaxReconnectAttempts int
	// GiftDeadline bounds how long Gift keeps retrying one gift (same key)
	// before it returns an error whose outcome is unknown. Default 30 s.
	GiftDeadline time.Duration
	// GiftAttemptTimeout is how long one gift attempt waits for its ack before
	// it is sent again with the same key. Default 5 s (a gift may wait for the
	// app's webhook).
	GiftAttemptTimeout time.Duration
	// ResumeTimeout is how long a resume may go unanswered before the SDK
	// sends it again. Default 10 s.
	ResumeTimeout time.Duration
	// EventBuffer is the capacity of the Events channel, at least 1. A full
	// channel blocks the connection's reader (nothing is dropped). Each slot
	// is ~110 bytes, allocated up front. Default 256: 25 s of one room's
	// 100 ms ticks.
	EventBuffer int
	// ReadBuffer is a connection's read buffer, bytes (at least 512). A frame
	// larger than it grows the buffer while it is read (up to
	// proto.MaxServerFrame). Default 16 KiB, a full tick of a busy room; the
	// bench lowers it to hold more connections per process.
	ReadBuffer int
	// MaxHeld bounds, per room, the reliable entries held after a gap while
	// the resume that fills it is in flight. Past it the held entries are
	// dropped (counted) and the resume brings them back. Default 10,000 (the
	// server's resume window is 1,000, so a full buffer is already past it).
	MaxHeld int
	// MaxPreJoin bounds, per room, the batches held between sending join and
	// receiving joined (the server may send a batch first). The oldest is
	// dropped past it (counted; a reliable loss shows as a gap and is
	// resumed). Default 64 batches, several seconds of ticks.
	MaxPreJoin int
	// OnEvent, when set, receives every event instead of the Events channel
	// (Events then returns nil). It runs on the SDK's goroutines: it must
	// return quickly and must not call the Client's blocking methods (Join,
	// Chat, Gift…: their answers are read by the goroutine it is blocking).
	OnEvent func(Event)
	// TokenSource, when set, supplies the token for every connection
	// (including the first, instead of Dial's token), so an expired token
	// can be refreshed. Errors count as failed attempts.
	TokenSource func(ctx context.Context) (string, error)
	// NetDial opens the TCP connection (both schemes). Default net.Dialer.
	// The bench sets it to spread connections over source addresses.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSConfig is used for wss:// URLs (nil = system defaults).
	TLSConfig *tls.Config
	// Platform is sent in hello. Default runtime.GOOS.
	Platform string
	// Logger receives connection-level logs. nil = slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		DialTimeout:        10 * time.Second,
		WriteTimeout:       10 * time.Second,
		BackoffBase:        200 * time.Millisecond,
		BackoffMax:         10 * time.Second,
		GiftDeadline:       30 * time.Second,
		GiftAttemptTimeout: 5 * time.Second,
		ResumeTimeout:      10 * time.Second,
		EventBuffer:        256,
		ReadBuffer:         16 << 10,
		MaxHeld:            10000,
		MaxPreJoin:         64,
		Platform:           runtime.GOOS,
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	positive := []struct {
		name string
		v    time.Duration
	}{
		{"DialTimeout", c.DialTimeout}, {"WriteTimeout", c.WriteTimeout},
		{"BackoffBase", c.BackoffBase}, {"BackoffMax", c.BackoffMax},
		{"GiftDeadline", c.GiftDeadline}, {"GiftAttemptTimeout", c.GiftAttemptTimeout},
		{"ResumeTimeout", c.ResumeTimeout},
	}
	for _, f := range positive {
		if f.v <= 0 {
			return fmt.Errorf("client config: %s must be positive, got %v", f.name, f.v)
		}
	}
	switch {
	case c.Heartbeat < 0:
		return errors.New("client config: Heartbeat must not be negative")
	case c.BackoffMax < c.BackoffBase:
		return fmt.Errorf("client config: BackoffMax (%v) is below BackoffBase (%v)", c.BackoffMax, c.BackoffBase)
	case c.MaxReconnectAttempts < 0:
		return errors.New("client config: MaxReconnectAttempts must not be negative")
	case c.EventBuffer < 1:
		return errors.New("client config: EventBuffer must be at least 1")
	case c.ReadBuffer < minReadBuffer:
		return fmt.Errorf("client config: ReadBuffer must be at least %d bytes", minReadBuffer)
	case c.MaxHeld < 1:
		return errors.New("client config: MaxHeld must be at least 1")
	case c.MaxPreJoin < 1:
		return errors.New("client config: MaxPreJoin must be at least 1")
	}
	return nil
}

// Option changes the Config Dial starts from.
type Option func(*Config)

// WithConfig replaces the whole configuration (start from DefaultConfig).
func WithConfig(cfg Config) Option { return func(c *Config) { *c = cfg } }

// WithOnEvent delivers events to fn instead of the Events channel (see
// Config.OnEvent for what fn must not do).
func WithOnEvent(fn func(Event)) Option { return func(c *Config) { c.OnEvent = fn } }

// WithEventBuffer sets the Events channel capacity.
func WithEventBuffer(n int) Option { return func(c *Config) { c.EventBuffer = n } }

// WithTokenSource fetches a token for every (re)connect.
func WithTokenSource(fn func(ctx context.Context) (string, error)) Option {
	return func(c *Config) { c.TokenSource = fn }
}

// WithBackoff sets the reconnect and retry backoff (full jitter).
func WithBackoff(base, max time.Duration) Option {
	return func(c *Config) { c.BackoffBase, c.BackoffMax = base, max }
}

// WithHeartbeat sets the ping interval instead of the server's.
func WithHeartbeat(d time.Duration) Option { return func(c *Config) { c.Heartbeat = d } }

// WithGiftDeadline bounds the retries of one gift.
func WithGiftDeadline(d time.Duration) Option { return func(c *Config) { c.GiftDeadline = d } }

// WithGiftAttemptTimeout sets how long one gift attempt waits for its ack.
func WithGiftAttemptTimeout(d time.Duration) Option {
	return func(c *Config) { c.GiftAttemptTimeout = d }
}

// WithNetDial sets how TCP connections are opened.
func WithNetDial(fn func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(c *Config) { c.NetDial = fn }
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(c *Config) { c.Logger = l } }
