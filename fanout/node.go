package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// Edge is what a Node calls on its local edge (*edge.Server in production).
type Edge interface {
	// DeliverBatch hands a room's batch to the node's members of the room.
	// It must not block.
	DeliverBatch(e *manager.Emitted)
	// DeliverReply hands an answer to one local session. It must not block.
	DeliverReply(r manager.Reply)
	// LocalCounts calls fn for every room with members on this node.
	LocalCounts(fn func(room string, n int))
	// SetOnline gives the edge a watched room's cluster-wide online count
	// (for pongs); batches carry it too.
	SetOnline(room string, n int64)
	// Kick disconnects user's connections from room with code: user "" =
	// every member of room, room "" = every room of user. It returns how
	// many connections it removed.
	Kick(user, room string, code proto.Code) int
	// Drain tells every local connection to reconnect to another node and
	// waits until they left or ctx is done.
	Drain(ctx context.Context) error
}

// pendingEdge is optionally implemented by the Edge: true while the room's
// previous batch is still being written to local members (Backpressure).
type pendingEdge interface {
	Pending(room string) bool
}

// Option adjusts New.
type Option func(*options)

type options struct {
	log   *slog.Logger
	reg   prometheus.Registerer
	state manager.State
}

// WithLogger logs there (nil: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the node's metrics there (nil: not registered).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithState makes Control store sanctions and policies there before telling
// the cluster, so an owner that takes a room later loads them.
func WithState(s manager.State) Option { return func(o *options) { o.state = s } }

// Node is this process's member of the cluster. It implements edge.Bus
// (Watch, Unwatch, Forward) and manager.Sink plus manager.Backpressure
// (Publish, Reply, Pending).
type Node struct {
	cfg    Config
	id     string
	survey atomic.Pointer[SurveyFunc] // SetSurvey
	subj   subjects
	own    Ownership
	log    *slog.Logger
	met    *metrics
	state  manager.State

	srv  *server.Server // the embedded server; nil with an external NATS
	nc   *nats.Conn
	solo bool // embedded, no listener, no routes: nobody else can hear

	wired atomic.Pointer[wiring]

	mu    sync.RWMutex
	rooms map[string]*roomState

	subsMu sync.Mutex
	subs   map[*subscription]struct{}

	outq     chan outMsg
	acquireq chan string
	writers  sync.Pool
	api      waiters
	online   *onlineTable

	draining atomic.Bool
	closed   atomic.Bool
	lifeMu   sync.Mutex // orders Close against goroutine starts
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	lastReported map[string]bool // rooms in this node's last counts report (online goroutine)
	renewFailing bool            // lease goroutine: last renewal failed (log on change)
}

// wiring is what Start connects: set once.
type wiring struct {
	mgr  *manager.Manager
	edge Edge
	pend pendingEdge // nil when the edge does not implement it
}

// roomState is what the node knows of one room. The atomics are read on hot
// paths without n.mu; the rest is guarded by n.mu.
type roomState struct {
	watched atomic.Bool  // this node has members: subscribed to P.out.<room>
	owned   atomic.Bool  // this node owns the room: subscribed to P.in.<room>
	pending atomic.Int32 // batches of the room waiting in the publish queue

	inSubj, outSubj string
	inSub, outSub   *subscription
	until           time.Time     // end of our lease (owned; zero = never)
	releasing       bool          // a handover is in progress
	owner           string        // last known owner, "" = unknown or none
	ownerSeen       time.Time     // when owner was learned
	idleSince       time.Time     // owned and no member anywhere since then
	refused         time.Time     // when an acquisition last failed (backoff)
	acquiring       chan struct{} // closed when the acquisition in flight ends
}

// Bounds of the node's queues, with their reasons.
const (
	// acquireQueue holds rooms a no-responders status asked to acquire;
	// past it the lease check (every LeaseRenew) catches up.
	acquireQueue = 1024
	// maxPooledWriter keeps huge batch buffers out of the pool: one 1 MiB
	// batch should not pin 1 MiB per pooled writer.
	maxPooledWriter = 64 << 10
)

// New starts the embedded NATS server (unless cfg.NATSURLs is set) and
// connects. Call Start to wire the manager and the edge.
func New(cfg Config, own Ownership, opts ...Option) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if own == nil {
		return nil, errors.New("fanout: nil Ownership")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	n := &Node{
		cfg:      cfg,
		id:       cfg.NodeID,
		subj:     newSubjects(cfg.Prefix),
		own:      own,
		log:      o.log.With("component", "fanout", "node", cfg.NodeID),
		met:      newMetrics(o.reg),
		state:    o.state,
		rooms:    make(map[string]*roomState),
		subs:     make(map[*subscription]struct{}),
		outq:     make(chan outMsg, cfg.PublishQueue),
		acquireq: make(chan string, acquireQueue),
		online:   newOnlineTable(cfg.MaxOnlineRooms),
	}
	n.writers.New = func() any { return &proto.Writer{B: make([]byte, 0, 1024)} }
	n.api.init(cfg.MaxBroadcasts)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if len(cfg.NATSURLs) == 0 {
		srv, err := startEmbedded(cfg.NodeID, cfg.Embedded, n.log)
		if err != nil {
			return nil, err
		}
		n.srv = srv
		n.solo = cfg.Embedded.ClientAddr == "" && cfg.Embedded.ClusterAddr == ""
	}
	nc, err := n.connect()
	if err != nil {
		if n.srv != nil {
			n.srv.Shutdown()
		}
		return nil, err
	}
	n.nc = nc
	return n, nil
}

// ID is the node id.
func (n *Node) ID() string { return n.id }

// ClusterURL is the embedded server's route address ("nats://host:port"),
// for other nodes' Embedded.Routes; "" when not clustered.
func (n *Node) ClusterURL() string {
	if n.srv == nil || n.cfg.Embedded.ClusterAddr == "" {
		return ""
	}
	if a := n.srv.ClusterAddr(); a != nil {
		return fmt.Sprintf("nats://%s", a.String())
	}
	return ""
}

// ClientURL is the embedded server's client address, "" when it has none.
func (n *Node) ClientURL() string {
	if n.srv == nil || n.cfg.Embedded.ClientAddr == "" {
		return ""
	}
	return n.srv.ClientURL()
}

// Start wires the room manager (built with this node as its Sink) and the
// edge, subscribes to the node's subjects and starts its goroutines.
func (n *Node) Start(mgr *manager.Manager, edge Edge) error {
	if mgr == nil || edge == nil {
		return errors.New("fanout start: nil manager or edge")
	}
	w := &wiring{mgr: mgr, edge: edge}
	w.pend, _ = edge.(pendingEdge)
	if !n.wired.CompareAndSwap(nil, w) {
		return errors.New("fanout start: already started")
	}
	fixed := []struct {
		k       kind
		subject string
		lim     PendingLimit
		h       nats.MsgHandler
	}{
		{kindReply, n.subj.Reply(n.id), n.cfg.ReplyPending, n.onReply},
		{kindNoResp, n.subj.NoResponders(n.id), n.cfg.ControlPending, n.onNoResponders},
		{kindOnline, n.subj.OnlineAll(), n.cfg.ControlPending, n.onCounts},
		{kindCtl, n.subj.ctl, n.cfg.ControlPending, n.onControl},
		{kindSurvey, n.subj.survey, n.cfg.ControlPending, n.onSurvey},
	}
	for _, f := range fixed {
		if _, err := n.subscribe(f.k, f.subject, "", f.lim, f.h); err != nil {
			return fmt.Errorf("fanout start: %w", err)
		}
	}
	n.flush()
	if !n.spawn(n.publishLoop, n.leaseLoop, n.onlineLoop) {
		return errors.New("fanout start: node closed")
	}
	return nil
}

// spawn starts fns as tracked goroutines unless the node is closed.
func (n *Node) spawn(fns ...func()) bool {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	if n.closed.Load() {
		return false
	}
	for _, fn := range fns {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			fn()
		}()
	}
	return true
}

// flush makes sure the server has what this node sent (subscriptions above
// all), when connected; while reconnecting nats.go resends them anyway.
func (n *Node) flush() {
	if n.nc.Status() == nats.CONNECTED {
		if err := n.nc.FlushTimeout(n.cfg.LeaseOpTimeout); err != nil {
			n.log.Debug("nats flush", "err", err)
		}
	}
}

// Healthy reports whether the node can reach the cluster (for /readyz).
func (n *Node) Healthy() error {
	if n.closed.Load() {
		return fmt.Errorf("fanout node closed: %w", proto.CodeUnavailable)
	}
	if s := n.nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("nats %v: %w", s, proto.CodeUnavailable)
	}
	return nil
}

// Close stops the node abruptly: it does not hand its rooms over (call
// Drain first for that); their leases expire and other nodes take them.
func (n *Node) Close() error {
	n.lifeMu.Lock()
	if n.closed.Swap(true) {
		n.lifeMu.Unlock()
		return nil
	}
	n.cancel()
	n.lifeMu.Unlock()
	n.wg.Wait()
	n.nc.Close()
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	}
	return nil
}

// RoomInfo is what Rooms reports of one room, for the admin API.
type RoomInfo struct {
	Room string
	// Owner is the owner as last seen by this node ("" = unknown or none).
	Owner string
	// Owned is true when this node owns the room; LeaseUntil is then the
	// end of its lease (zero = never expires).
	Owned      bool
	LeaseUntil time.Time
	// Watched is true when this node has members in the room.
	Watched bool
	// Online is the cluster-wide member count (as of the last reports).
	Online int64
}

// Rooms lists the rooms this node owns, watches or recently looked up.
func (n *Node) Rooms() []RoomInfo {
	n.mu.RLock()
	out := make([]RoomInfo, 0, len(n.rooms))
	for room, rs := range n.rooms {
		out = append(out, RoomInfo{Room: room, Owner: rs.owner, Owned: rs.owned.Load(),
			LeaseUntil: rs.until, Watched: rs.watched.Load()})
	}
	n.mu.RUnlock()
	for i := range out {
		out[i].Online = n.online.total(out[i].Room)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Room < out[j].Room })
	return out
}

// lookup returns the room's state, nil when the node knows nothing of it.
func (n *Node) lookup(room string) *roomState {
	n.mu.RLock()
	rs := n.rooms[room]
	n.mu.RUnlock()
	return rs
}

// roomLocked returns the room's state, creating it; n.mu held for writing.
func (n *Node) roomLocked(room string) *roomState {
	rs := n.rooms[room]
	if rs == nil {
		rs = &roomState{inSubj: n.subj.In(room), outSubj: n.subj.Out(room)}
		n.rooms[room] = rs
	}
	return rs
}

// roomsWhere lists the rooms whose state satisfies keep (n.mu read-held).
func (n *Node) roomsWhere(keep func(*roomState) bool) []string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	var out []string
	for room, rs := range n.rooms {
		if keep(rs) {
			out = append(out, room)
		}
	}
	return out
}

func isOwned(rs *roomState) bool { return rs.owned.Load() }

// prune forgets rooms the node neither owns nor watches once their owner
// lookup is stale, so the table is bounded by live rooms.
func (n *Node) prune(now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var owned, watched int
	for room, rs := range n.rooms {
		switch {
		case rs.owned.Load() || rs.releasing:
			owned++
			if rs.watched.Load() {
				watched++
			}
		case rs.watched.Load():
			watched++
		case rs.pending.Load() == 0 && now.Sub(rs.ownerSeen) > n.cfg.OwnerCacheTTL:
			delete(n.rooms, room)
		}
	}
	n.met.ownedRooms.Set(float64(owned))
	n.met.watchedRooms.Set(float64(watched))
}

func (n *Node) getWriter() *proto.Writer {
	w := n.writers.Get().(*proto.Writer)
	w.B = w.B[:0]
	return w
}

func (n *Node) putWriter(w *proto.Writer) {
	if cap(w.B) <= maxPooledWriter {
		n.writers.Put(w)
	}
}
