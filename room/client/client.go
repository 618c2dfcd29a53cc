package client

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// Client is one viewer's connection to a danmaku edge, kept alive across
// reconnects. All methods are safe for concurrent use.
type Client struct {
	cfg   Config
	u     *url.URL
	token string
	log   *slog.Logger
	stats stats

	ctx     context.Context // ends on Close: bounds reconnect dials
	cancel  context.CancelFunc
	closing chan struct{}
	once    sync.Once
	wg      sync.WaitGroup // the reconnect loop and the current reader
	events  chan Event     // nil with Config.OnEvent

	ids atomic.Uint32 // request ids, from 1

	mu      sync.Mutex
	sess    *session      // nil between connections
	ready   chan struct{} // closed while sess is set
	welcome proto.Welcome // of the latest connection
	rooms   map[string]*room
	err     error // why the client stopped by itself
}

// room is one joined room: its delivery tracker and resume bookkeeping.
// Guarded by Client.mu; the tracker is only fed by the reader goroutine.
type room struct {
	name   string
	tr     *tracker
	joinID uint32 // the join in flight, until joined
	online int64

	stale       bool      // must be resumed on the current connection (after a reconnect)
	resumeID    uint32    // resume in flight, 0 = none
	resumeSent  time.Time // when resumeID was sent
	resumeAt    time.Time // no resume before this (after a failed or fruitless one)
	resumeFails int
}

// Dial connects to an edge and returns once the server has welcomed the
// client. rawURL is tcp://host:port or ws://host:port/ws (wss:// for TLS);
// token is the JWT for hello ("" for a guest, or when Config.TokenSource is
// set). A refusal is returned as an error wrapping its code, e.g.
// errors.Is(err, proto.CodeUnauthorized). Dial does not retry: after it
// succeeds, the client reconnects by itself until Close.
func Dial(ctx context.Context, rawURL, token string, opts ...Option) (*Client, error) {
	cfg := DefaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg: cfg, u: u, token: token, log: cfg.Logger,
		closing: make(chan struct{}),
		ready:   make(chan struct{}),
		rooms:   make(map[string]*room),
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if cfg.OnEvent == nil {
		c.events = make(chan Event, cfg.EventBuffer)
	}
	s, err := c.connect(ctx)
	if err != nil {
		c.cancel()
		return nil, fmt.Errorf("dial %s: %w", rawURL, err)
	}
	c.attach(s)                         // usable as soon as Dial returns
	c.emit(Event{Kind: EventConnected}) // never blocks: the buffer is empty
	c.wg.Add(1)
	go c.run(s)
	return c, nil
}

// connect opens one connection and completes hello/welcome.
func (c *Client) connect(ctx context.Context) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	token := c.token
	if c.cfg.TokenSource != nil {
		t, err := c.cfg.TokenSource(ctx)
		if err != nil {
			return nil, fmt.Errorf("token source: %w", err)
		}
		token = t
	}
	w, err := dialWire(ctx, c.u, &c.cfg)
	if err != nil {
		return nil, err
	}
	wel, err := handshake(ctx, w, &proto.Hello{
		ID: c.newID(), Version: proto.Version, SDK: SDKName, SDKVersion: SDKVersion,
		Platform: c.cfg.Platform, Token: token,
	})
	if err != nil {
		w.close()
		return nil, err
	}
	return newSession(w, wel, &c.cfg), nil
}

// Close disconnects, fails pending calls with ErrClosed, stops every
// goroutine the client started and closes the Events channel. It returns
// once all of that is done; call it once per Dial (more calls are no-ops).
// Do not call it from an OnEvent callback.
func (c *Client) Close() error {
	c.shutdown(nil)
	c.wg.Wait()
	return nil
}

// shutdown stops the client; cause is nil for Close.
func (c *Client) shutdown(cause error) {
	c.once.Do(func() {
		c.mu.Lock()
		c.err = cause
		s := c.sess
		c.mu.Unlock()
		close(c.closing)
		c.cancel()
		if s != nil {
			s.fail(ErrClosed)
		}
	})
}

// Done is closed when the client stops: Close, or a permanent failure (Err).
func (c *Client) Done() <-chan struct{} { return c.closing }

// Err is why the client stopped by itself (nil while it runs, or after Close).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Events returns the channel events arrive on, closed after Close (nil when
// Config.OnEvent is set). Read it promptly: the SDK never drops a reliable
// entry, so a full channel blocks the connection's reader, and a reader
// blocked long enough is disconnected by the server as a slow consumer (the
// SDK then reconnects and resumes). For the same reason, the goroutine that
// drains Events should not wait on Chat or Gift without a deadline.
func (c *Client) Events() <-chan Event { return c.events }

// Stats returns the client's counters.
func (c *Client) Stats() Stats { return c.stats.snapshot() }

// Welcome is the server's welcome on the latest connection: session, user,
// role, heartbeat and limits.
func (c *Client) Welcome() proto.Welcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.welcome
}

// Online is a joined room's latest cluster-wide online count (from joined,
// batches and pongs).
func (c *Client) Online(room string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.rooms[room]
	if !ok {
		return 0, false
	}
	return r.online, true
}

// Position is a joined room's epoch and the last reliable seq delivered to
// the app: what the SDK resumes from.
func (c *Client) Position(room string) (epoch string, seq uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.rooms[room]
	if !ok || !r.tr.based {
		return "", 0, false
	}
	epoch, seq = r.tr.position()
	return epoch, seq, true
}

// newID returns the next request id (never 0, which means "no id").
func (c *Client) newID() uint32 {
	for {
		if id := c.ids.Add(1); id != 0 {
			return id
		}
	}
}

// session returns the current connection.
func (c *Client) session() (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosing() {
		return nil, ErrClosed
	}
	if c.sess == nil {
		return nil, errNotConnected
	}
	return c.sess, nil
}

// waitSession returns the current connection, waiting for a reconnect.
func (c *Client) waitSession(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		s, ready := c.sess, c.ready
		c.mu.Unlock()
		if c.isClosing() {
			return nil, ErrClosed
		}
		if s != nil {
			return s, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.closing:
			return nil, ErrClosed
		}
	}
}

func (c *Client) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// call sends a request on s and waits for its answer, ctx or Close.
func (c *Client) call(ctx context.Context, s *session, id uint32, m proto.Message) (proto.Message, error) {
	ch := make(chan reply, 1)
	if err := s.register(id, ch); err != nil {
		return nil, err
	}
	if err := s.send(m); err != nil {
		s.forget(id)
		return nil, err
	}
	select {
	case r := <-ch:
		return r.msg, r.err
	case <-ctx.Done():
		s.forget(id)
		return nil, ctx.Err()
	case <-c.closing:
		s.forget(id)
		return nil, ErrClosed
	}
}
