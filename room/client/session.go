package client

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// defaultServerHeartbeat is the interval assumed when welcome announces none
// (docs/PROTOCOL.md §2: the server's default).
const defaultServerHeartbeat = 25 * time.Second

// Errors of the connection's life.
var (
	// ErrClosed is returned by calls on (or pending at) a closed Client.
	ErrClosed = errors.New("danmaku client: closed")
	// errNotConnected: the client is between two connections. Like a lost
	// connection it wraps proto.CodeUnavailable: retry with backoff.
	errNotConnected  = fmt.Errorf("not connected: %w", proto.CodeUnavailable)
	errHeartbeat     = errors.New("no frame from the server for two heartbeat intervals")
	errServerRequest = errors.New("the server asked to reconnect")
)

// reply is the answer a pending request receives.
type reply struct {
	msg proto.Message
	err error
}

// session is one connection's state: the wire, its welcome, the requests
// waiting for an answer on it, and what its reader and the heartbeat share.
type session struct {
	w         *wire
	welcome   *proto.Welcome
	started   time.Time
	pingEvery time.Duration
	deadAfter time.Duration

	mu      sync.Mutex
	pending map[uint32]chan<- reply
	err     error // why the session ended; non-nil once it has
	dead    chan struct{}

	// waiting is when the reader began waiting for a frame (Unix ns), 0 while
	// it handles one: a reader stuck on a slow app is not a dead server.
	waiting  atomic.Int64
	lastPing time.Time // supervisor only
	pingID   atomic.Uint32
	pingAt   atomic.Int64
	// reconnectAfter is the delay the server asked for, and kicked the
	// operator's kick: both written by the reader before dead is closed.
	reconnectAfter time.Duration
	kicked         error
}

func newSession(w *wire, wel *proto.Welcome, cfg *Config) *session {
	hb := time.Duration(wel.Heartbeat) * time.Millisecond
	if hb <= 0 {
		hb = defaultServerHeartbeat
	}
	every := cfg.Heartbeat
	if every == 0 {
		every = hb * 4 / 5
	}
	now := time.Now()
	return &session{
		w: w, welcome: wel, started: now, lastPing: now,
		pingEvery: every, deadAfter: 2 * max(hb, every),
		pending: make(map[uint32]chan<- reply),
		dead:    make(chan struct{}),
	}
}

// register makes id wait for its answer on this session.
func (s *session) register(id uint32, ch chan<- reply) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return lostErr(s.err)
	}
	s.pending[id] = ch
	return nil
}

func (s *session) forget(id uint32) {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
}

// deliver hands m to the request id, if one is waiting.
func (s *session) deliver(id uint32, m proto.Message) bool {
	s.mu.Lock()
	ch, ok := s.pending[id]
	delete(s.pending, id)
	s.mu.Unlock()
	if ok {
		ch <- reply{msg: m} // buffered, one answer per request
	}
	return ok
}

// send writes m; a failed write ends the session.
func (s *session) send(m proto.Message) error {
	if err := s.w.write(m); err != nil {
		s.fail(fmt.Errorf("write: %w", err))
		return fmt.Errorf("send %s: %w", m.Type(), lostErr(err))
	}
	return nil
}

// fail ends the session once: it records why, closes the connection (the
// reader then returns) and fails every pending request.
func (s *session) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	s.w.close()
	for _, ch := range pending {
		ch <- reply{err: lostErr(err)}
	}
}

// cause is why the session ended (after dead is closed).
func (s *session) cause() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// lostErr is what a request learns when its connection goes: ErrClosed when
// the client closed, otherwise an error wrapping proto.CodeUnavailable.
func lostErr(err error) error {
	if errors.Is(err, ErrClosed) || errors.Is(err, proto.CodeUnavailable) {
		return err
	}
	return fmt.Errorf("connection lost (%v): %w", err, proto.CodeUnavailable)
}
