package media

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"

	"github.com/pion/webrtc/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/danmaku/danmaku/room/auth"
	"github.com/danmaku/danmaku/room/proto"
)

// eventQueue bounds the notices waiting for the RoomNotifier: each stream
// makes two, so 256 absorbs a burst of 128 stream starts. A full queue makes
// the publisher's goroutine wait (a notice is never dropped).
const eventQueue = 256

// Relay is the media relay: RTMP and WHIP ingest, WHEP playback, one stream
// per room.
type Relay struct {
	cfg      Config
	secret   []byte
	notifier RoomNotifier
	log      *slog.Logger
	m        *metrics

	ingest, egress *webrtc.API

	mu        sync.Mutex
	closed    bool
	streams   map[string]*stream    // room → stream (connecting or live)
	sessions  map[string]*session   // resource id → WebRTC session
	rtmpConns map[net.Conn]struct{} // open RTMP connections
	ln        net.Listener
	wg        sync.WaitGroup // goroutines started through spawn

	evMu     sync.Mutex
	evClosed bool
	events   chan event
	evDone   chan struct{}
}

// event is one notice for the RoomNotifier.
type event struct {
	room    string
	started bool
	info    StreamInfo // started
	reason  string     // ended
}

// Option configures New.
type Option func(*options)

type options struct {
	log *slog.Logger
	reg prometheus.Registerer
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the relay's metrics (danmaku_media_*) with reg
// (default: not registered).
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// New checks cfg and builds a relay. secret is the HS256 key of tokens
// (room/auth). notifier hears stream starts and ends; nil means nobody.
// Call Start to open the RTMP listener, mount Handler for WHIP/WHEP, and
// Close to stop.
func New(cfg Config, secret []byte, notifier RoomNotifier, opts ...Option) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(secret) == 0 {
		return nil, errors.New("media: empty token secret")
	}
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	m, err := newMetrics(o.reg)
	if err != nil {
		return nil, err
	}
	ingest, egress, err := newAPIs(cfg)
	if err != nil {
		return nil, err
	}
	r := &Relay{
		cfg: cfg, secret: secret, notifier: notifier, log: o.log.With("component", "media"), m: m,
		ingest: ingest, egress: egress,
		streams:   make(map[string]*stream),
		sessions:  make(map[string]*session),
		rtmpConns: make(map[net.Conn]struct{}),
		events:    make(chan event, eventQueue),
		evDone:    make(chan struct{}),
	}
	go r.runEvents()
	return r, nil
}

// Start opens the RTMP listener (when Config.RTMPAddr is set) and returns
// once it is bound; publishers are served in the background. When ctx ends
// the relay closes, as with Close.
func (r *Relay) Start(ctx context.Context) error {
	if r.cfg.RTMPAddr != "" {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", r.cfg.RTMPAddr)
		if err != nil {
			return fmt.Errorf("media: listen RTMP on %s: %w", r.cfg.RTMPAddr, err)
		}
		r.mu.Lock()
		if r.ln != nil || r.closed {
			r.mu.Unlock()
			_ = ln.Close()
			return errors.New("media: Start after Start or Close")
		}
		r.ln = ln
		r.mu.Unlock()
		r.log.Info("RTMP ingest listening", "addr", ln.Addr().String())
		if !r.spawn(func() { r.acceptRTMP(ln) }) {
			_ = ln.Close()
		}
	}
	context.AfterFunc(ctx, func() { _ = r.Close() })
	return nil
}

// RTMPAddr is the RTMP listener's address, nil before Start or when off.
func (r *Relay) RTMPAddr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln == nil {
		return nil
	}
	return r.ln.Addr()
}

// Streams lists the live streams, by room.
func (r *Relay) Streams() []StreamInfo {
	r.mu.Lock()
	out := make([]StreamInfo, 0, len(r.streams))
	for _, s := range r.streams {
		if s.live.Load() {
			out = append(out, s.snapshot())
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b StreamInfo) int { return cmp.Compare(a.Room, b.Room) })
	return out
}

// Stream returns the room's live stream.
func (r *Relay) Stream(room string) (StreamInfo, bool) {
	s := r.liveStream(room)
	if s == nil {
		return StreamInfo{}, false
	}
	return s.snapshot(), true
}

// EndStream stops the room's stream (an operator's action): the publisher
// is disconnected, viewers are closed and the room hears StreamEnded with
// reason "stopped". False when no stream was there. The publisher may
// publish again; revoke its token to prevent that.
func (r *Relay) EndStream(room string) bool {
	r.mu.Lock()
	s := r.streams[room]
	r.mu.Unlock()
	if s == nil {
		return false
	}
	s.end(EndStopped)
	<-s.done
	return true
}

// Close stops the RTMP listener, ends every stream (the notifier hears
// each StreamEnded, reason "shutdown"), closes every session and waits for
// the relay's goroutines and the last notice.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	ln := r.ln
	streams := make([]*stream, 0, len(r.streams))
	for _, s := range r.streams {
		streams = append(streams, s)
	}
	r.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	for _, s := range streams {
		s.end(EndShutdown)
		<-s.done
	}
	r.mu.Lock()
	sessions := make([]*session, 0, len(r.sessions))
	for _, s := range r.sessions {
		sessions = append(sessions, s)
	}
	for c := range r.rtmpConns {
		_ = c.Close()
	}
	r.mu.Unlock()
	for _, s := range sessions {
		s.close(closeShutdown)
	}
	r.wg.Wait()
	r.evMu.Lock()
	r.evClosed = true
	close(r.events)
	r.evMu.Unlock()
	<-r.evDone
	return nil
}

// spawn runs f in a goroutine Close waits for. It returns false, without
// running f, once the relay is closing.
func (r *Relay) spawn(f func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
	return true
}

// claim makes s the room's stream. The same user's earlier stream is
// replaced (ended first, so its StreamEnded precedes s's StreamStarted);
// another user's is kept and s is refused.
func (r *Relay) claim(s *stream) *httpError {
	r.mu.Lock()
	old := r.streams[s.room]
	switch {
	case r.closed:
		r.mu.Unlock()
		return refusal(http.StatusServiceUnavailable, proto.CodeShutdown, refuseShutdown, "relay is shutting down")
	case old != nil && old.user != s.user:
		r.mu.Unlock()
		return refusal(http.StatusConflict, proto.CodeUnavailable, refuseStreamLive, "another user is streaming in room %q", s.room)
	case old == nil && len(r.streams) >= r.cfg.MaxStreams:
		r.mu.Unlock()
		return refusal(http.StatusServiceUnavailable, proto.CodeServerFull, refuseServerFull, "too many streams on this node")
	}
	r.streams[s.room] = s
	r.mu.Unlock()
	if old != nil {
		old.end(EndReplaced)
		<-old.done
	}
	return nil
}

// unregister removes s from the registry if it is still the room's stream.
func (r *Relay) unregister(s *stream) {
	r.mu.Lock()
	if r.streams[s.room] == s {
		delete(r.streams, s.room)
	}
	r.mu.Unlock()
}

// liveStream returns the room's stream if it is live.
func (r *Relay) liveStream(room string) *stream {
	r.mu.Lock()
	s := r.streams[room]
	r.mu.Unlock()
	if s == nil || !s.live.Load() {
		return nil
	}
	return s
}

// newPublishedStream builds a stream for a publisher with claims c.
func (r *Relay) newPublishedStream(room string, c *auth.Claims, protocol string) *stream {
	s := newStream(r, room, c.User(), protocol, protocol == ProtocolRTMP)
	s.info.Name = c.Name
	return s
}

// notify queues a notice; it waits while the queue is full.
func (r *Relay) notify(ev event) {
	r.evMu.Lock()
	defer r.evMu.Unlock()
	if r.evClosed || r.notifier == nil {
		return
	}
	r.events <- ev
}

// runEvents delivers notices in order until Close.
func (r *Relay) runEvents() {
	defer close(r.evDone)
	for ev := range r.events {
		if ev.started {
			r.notifier.StreamStarted(ev.room, ev.info)
		} else {
			r.notifier.StreamEnded(ev.room, ev.reason)
		}
	}
}
