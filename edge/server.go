package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	gerrors "github.com/panjf2000/gnet/v2/pkg/errors"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/danmaku/danmaku/room/proto"
)

// Server is one edge node's connection server. Create it with New, serve with
// Run; the bus calls DeliverBatch and DeliverReply from its goroutines.
type Server struct {
	cfg      Config
	bus      Bus
	log      *slog.Logger
	maxConns int
	tick     time.Duration

	loops   []*loop
	rooms   *roomTable
	fwd     *forwarder
	ips     *ipCounts
	accept  *rate.Limiter // nil = no accept-rate cap
	ctr     counters      // what happens off the loops
	metrics *collector

	open         atomic.Int64 // admitted connections not yet closed
	pressure     atomic.Bool  // the outbound backlog is past MaxOutbound (outboundCaps)
	connsPending atomic.Int64
	connsTCP     atomic.Int64
	connsWS      atomic.Int64
	nextSession  atomic.Uint64
	draining     atomic.Bool
	stopping     atomic.Bool
	running      atomic.Bool

	elMu sync.Mutex
	byEL map[gnet.EventLoop]*loop

	engMu  sync.Mutex
	eng    gnet.Engine
	booted bool

	addr      atomic.Pointer[net.TCPAddr]
	ready     chan struct{}
	readyOnce sync.Once
	stopped   chan struct{} // closed when Run returns
}

// Option configures New.
type Option func(*options)

type options struct {
	log *slog.Logger
	reg prometheus.Registerer
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the edge's metrics (danmaku_edge_*) with r
// (default: not registered).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// New checks cfg and builds a server on bus (which must be safe for
// concurrent use: several goroutines call Forward).
func New(cfg Config, bus Bus, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if bus == nil {
		return nil, errors.New("edge: nil Bus")
	}
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	maxConns, err := cfg.maxConns()
	if err != nil {
		return nil, err
	}
	n := cfg.Loops
	if n == 0 {
		n = min(runtime.NumCPU(), maxLoops)
	}
	s := &Server{
		cfg:      cfg,
		bus:      bus,
		log:      o.log,
		maxConns: maxConns,
		tick:     min(max(min(cfg.HandshakeTimeout, cfg.Heartbeat)/4, 10*time.Millisecond), time.Second),
		rooms:    newRoomTable(n),
		ips:      newIPCounts(cfg.MaxConnsPerIP),
		byEL:     make(map[gnet.EventLoop]*loop, n),
		ready:    make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	if cfg.AcceptRate > 0 {
		s.accept = rate.NewLimiter(rate.Limit(cfg.AcceptRate), cfg.AcceptRate)
	}
	for i := range n {
		s.loops = append(s.loops, newLoop(s, i))
	}
	s.fwd = newForwarder(s, bus)
	s.metrics = newCollector(s)
	if o.reg != nil {
		if err := o.reg.Register(s.metrics); err != nil {
			return nil, fmt.Errorf("edge: register metrics: %w", err)
		}
	}
	return s, nil
}

// Run serves until ctx is done, Stop or Drain is called, or the listener
// fails. It returns after the engine stopped and every connection closed.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("edge: Run called twice")
	}
	defer close(s.stopped)
	defer s.readyOnce.Do(func() { close(s.ready) })
	s.fwd.start()
	defer s.fwd.stop()
	stopOnDone := context.AfterFunc(ctx, func() { _ = s.Stop(context.Background()) })
	defer stopOnDone()

	err := gnet.Run(&handler{s: s}, "tcp://"+s.cfg.Addr,
		gnet.WithNumEventLoop(len(s.loops)),
		gnet.WithReuseAddr(true), // a restart must not wait out TIME_WAIT
		gnet.WithTicker(true),
		gnet.WithLogger(gnetLogger{s.log}),
	)
	if err != nil {
		return fmt.Errorf("edge: serve %s: %w", s.cfg.Addr, err)
	}
	if !s.stopping.Load() {
		// gnet stops its engine on an accept error (EMFILE) and returns nil.
		return errors.New("edge: gnet engine stopped on its own (see its log)")
	}
	return nil
}

// Ready is closed once the listener is bound (Addr is set) or Run failed.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the server listens on, nil before it is bound.
func (s *Server) Addr() net.Addr {
	if a := s.addr.Load(); a != nil {
		return a
	}
	return nil
}

// MaxConns is the connection cap in force (configured or derived).
func (s *Server) MaxConns() int { return s.maxConns }

// Stop closes every connection at once and stops the engine; it returns when
// Run has returned, or ctx ends. Prefer Drain for a planned shutdown.
func (s *Server) Stop(ctx context.Context) error {
	s.stopping.Store(true)
	s.engMu.Lock()
	eng, booted := s.eng, s.booted
	s.engMu.Unlock()
	if booted {
		// Engine.Stop polls every 500 ms; Run returning says the same sooner.
		sctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-s.stopped:
				cancel()
			case <-sctx.Done():
			}
		}()
		err := eng.Stop(sctx)
		cancel()
		if err != nil && !errors.Is(err, gerrors.ErrEngineInShutdown) && ctx.Err() != nil {
			return fmt.Errorf("edge: stop engine: %w", err)
		}
	}
	if !s.running.Load() {
		return nil
	}
	select {
	case <-s.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sessionName is the session id a client sees: unique in the cluster.
func (s *Server) sessionName(id uint64) string {
	return s.cfg.NodeID + "-" + strconv.FormatUint(id, 10)
}

// newSession returns a session id whose low byte is the loop index, so a
// reply finds its loop without a shared map.
func (s *Server) newSession(loop int) uint64 {
	return s.nextSession.Add(1)<<8 | uint64(loop)
}

// loopOf maps a gnet event loop to the edge's state for it, the first time a
// connection opens on it.
func (s *Server) loopOf(el gnet.EventLoop) *loop {
	s.elMu.Lock()
	defer s.elMu.Unlock()
	if l, ok := s.byEL[el]; ok {
		return l
	}
	if len(s.byEL) >= len(s.loops) {
		return nil // gnet runs exactly len(s.loops) loops
	}
	l := s.loops[len(s.byEL)]
	l.mu.Lock()
	l.el = el
	l.mu.Unlock()
	s.byEL[el] = l
	return l
}

// bound records the listener's actual address (port 0 resolved).
func (s *Server) bound(eng gnet.Engine) {
	fd, err := eng.Dup()
	if err != nil {
		s.log.Warn("edge: cannot read the listen address", "err", err)
		return
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		s.log.Warn("edge: cannot read the listen address", "err", err)
		return
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		s.addr.Store(&net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port})
	case *unix.SockaddrInet6:
		s.addr.Store(&net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port})
	}
}

// Stats is a snapshot of the edge's counters.
type Stats struct {
	// Open connections: all, and by transport (pending = first bytes not seen yet).
	Conns, ConnsTCP, ConnsWS, ConnsPending int64
	// MaxConns is the cap in force.
	MaxConns int
	// Accepted counts connections the listener accepted (admitted or not).
	Accepted uint64
	// Rejects by reason: server_full, per_ip, accept_rate, draining.
	Rejects map[string]uint64
	// Closes by reason: peer (the client's doing), bad_preamble, bad_http,
	// header_too_large, handshake_timeout, heartbeat_timeout, slow_consumer,
	// protocol, auth, ws_unmasked, ws_text, ws_protocol, ws_close,
	// rate_limited, kicked, drain, stopped.
	Closes map[string]uint64
	// Drops by reason: forward_queue_full, forward_failed, watch_failed,
	// session_gone, wrong_node, reply_queue_full, loop_backlog,
	// batch_too_large, no_members.
	Drops map[string]uint64
	// BadInput by wire code.
	BadInput map[string]uint64
	// FramesIn by message type.
	FramesIn map[string]uint64
	// Rooms with a local member, and room memberships on this node.
	Rooms   int
	Members int64
	// BatchesDelivered counts DeliverBatch calls; LoopBatches batches written
	// by loops (one per batch per loop with members).
	BatchesDelivered, LoopBatches uint64
	// Writes counts fan-out socket writes (one per member per loop task).
	Writes uint64
	// BytesOut counts bytes handed to sockets.
	BytesOut uint64
	// LossySkipped counts lossy batches not sent to soft-capped connections.
	LossySkipped uint64
	// OutboundBuffered is the sum of connections' outbound backlogs at the
	// last scan tick.
	OutboundBuffered int64
	// OutboundPressure is true while OutboundBuffered is past MaxOutbound:
	// connections are held to their fair share of it.
	OutboundPressure bool
	// ForwardQueue is the number of requests waiting for Bus.Forward.
	ForwardQueue int
}

// Stats sums the counters of every loop and of the server.
func (s *Server) Stats() Stats {
	st := Stats{
		ConnsTCP: s.connsTCP.Load(), ConnsWS: s.connsWS.Load(), ConnsPending: s.connsPending.Load(),
		Conns: s.open.Load(), MaxConns: s.maxConns,
		Rejects: map[string]uint64{}, Closes: map[string]uint64{}, Drops: map[string]uint64{},
		BadInput: map[string]uint64{}, FramesIn: map[string]uint64{},
		Rooms: s.rooms.len(), ForwardQueue: s.fwd.len(),
	}
	s.rooms.each(func(ri *roomInfo) { st.Members += ri.members.Load() })
	add := func(m map[string]uint64, k string, v uint64) {
		if v > 0 {
			m[k] += v
		}
	}
	sets := []*counters{&s.ctr}
	for _, l := range s.loops {
		sets = append(sets, &l.ctr)
	}
	for _, c := range sets {
		st.Accepted += c.accepts.Load()
		for i := range c.rejects {
			add(st.Rejects, rejectNames[i], c.rejects[i].Load())
		}
		for i := range c.closes {
			add(st.Closes, closeNames[i], c.closes[i].Load())
		}
		for i := range c.drops {
			add(st.Drops, dropNames[i], c.drops[i].Load())
		}
		for i, code := range proto.Codes {
			if i < maxCodes {
				add(st.BadInput, string(code), c.badInput[i].Load())
			}
		}
		for i := range c.framesIn {
			name := "unknown"
			if i > 0 {
				name = proto.Type(i).String()
			}
			add(st.FramesIn, name, c.framesIn[i].Load())
		}
		st.BatchesDelivered += c.delivered.Load()
		st.LoopBatches += c.batches.Load()
		st.Writes += c.writes.Load()
		st.BytesOut += c.bytesOut.Load()
		st.LossySkipped += c.skipped.Load()
		st.OutboundBuffered += c.outbound.Load()
	}
	st.OutboundPressure = s.pressure.Load()
	return st
}

// gnetLogger sends gnet's logs to slog.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Debug("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error("gnet: " + fmt.Sprintf(f, a...)) }
