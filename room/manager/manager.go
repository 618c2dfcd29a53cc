package manager

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// Manager owns rooms: one goroutine per active room serialises everything the
// room receives. Rooms start on their first request and stop after
// Config.IdleTimeout without one.
type Manager struct {
	cfg      Config
	store    Store
	sink     Sink
	bp       Backpressure // the sink's, or nil
	log      *slog.Logger
	auth     GiftAuthorizer
	met      *metrics
	now      func() int64 // Unix ns
	hashSeed maphash.Seed
	seed     *int64 // WithSeed, or nil for random sampling

	chatLimit  [classCount]gcra // per-user chat rate by priority class
	likeLimit  gcra             // per-user like messages
	enterLimit gcra             // per-room enter notices

	authSem     chan struct{} // webhook calls in flight
	authPending atomic.Int64  // gifts waiting for or in the webhook
	resumeSem   chan struct{} // resumes served from the store in flight

	mu       sync.RWMutex
	rooms    map[string]*room
	stopping map[string]*room // removed from rooms, goroutine still flushing
	online   map[string]int64 // last SetOnline per room, for rooms not active yet
	closed   bool
	wg       sync.WaitGroup
}

// Option configures New.
type Option func(*options)

type options struct {
	log       *slog.Logger
	auth      GiftAuthorizer
	seed      *int64
	clock     func() time.Time
	onMetrics []func(*metrics) error
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithGiftAuthorizer sets the gift webhook. Without one every gift that passes
// admission is persisted.
func WithGiftAuthorizer(a GiftAuthorizer) Option { return func(o *options) { o.auth = a } }

// WithSeed makes budget sampling deterministic: each room's random source is
// seeded from seed and the room id (tests replay a failure from its seed).
func WithSeed(seed int64) Option { return func(o *options) { o.seed = &seed } }

// WithClock replaces time.Now for admission and batching decisions (tests).
// Timers still run on the real clock; they only wake the room, which then
// decides with this clock.
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// New returns a running manager. store and sink are required.
func New(cfg Config, store Store, sink Sink, opts ...Option) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil || sink == nil {
		return nil, errors.New("manager: store and sink are required")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	m := &Manager{
		cfg:       cfg,
		store:     store,
		sink:      sink,
		log:       o.log,
		auth:      o.auth,
		met:       newMetrics(),
		hashSeed:  maphash.MakeSeed(),
		seed:      o.seed,
		authSem:   make(chan struct{}, cfg.GiftAuthConcurrency),
		resumeSem: make(chan struct{}, cfg.ResumeConcurrency),
		rooms:     map[string]*room{},
		stopping:  map[string]*room{},
		online:    map[string]int64{},
	}
	m.chatLimit[classStaff] = cfg.RateLimits.Staff.gcra()
	m.chatLimit[classVIP] = cfg.RateLimits.VIP.gcra()
	m.chatLimit[classViewer] = cfg.RateLimits.Viewer.gcra()
	m.likeLimit = cfg.LikeRate.gcra()
	if cfg.EnterBudget > 0 {
		m.enterLimit = RateLimit{PerSecond: float64(cfg.EnterBudget), Burst: cfg.EnterBudget}.gcra()
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	m.bp, _ = sink.(Backpressure)
	if o.clock != nil {
		clock := o.clock
		m.now = func() int64 { return clock().UnixNano() }
	} else {
		// Wall-clock Unix ns that never steps back: the monotonic reading
		// since start added to the wall clock at start.
		start := time.Now()
		base := start.UnixNano()
		m.now = func() int64 { return base + int64(time.Since(start)) }
	}
	for _, f := range o.onMetrics {
		if err := f(m.met); err != nil {
			return nil, fmt.Errorf("manager: register metrics: %w", err)
		}
	}
	return m, nil
}

// Submit hands one request to its room's owner goroutine. It never blocks:
// when the room's inbox is full, the manager is closed or at MaxRooms, the
// request is answered at once (and counted). A Publish has no room in the
// message: use SubmitTo.
func (m *Manager) Submit(in *Inbound) {
	if in == nil {
		return
	}
	room := ""
	if in.Msg != nil {
		room = proto.RoomOf(in.Msg)
	}
	m.SubmitTo(room, in)
}

// SubmitTo is Submit with the room given explicitly, for Inbound.Publish
// (a Publish carries no room of its own).
//
// Hot path: a read lock for the room lookup and one inbox lock; it must not
// allocate or block.
func (m *Manager) SubmitTo(id string, in *Inbound) {
	if in == nil {
		return
	}
	k := kindOf(in)
	m.met.inbound[k].Add(1)
	if (in.Msg == nil) == (in.Publish == nil) || !proto.ValidRoom(id) {
		m.refuse(nil, in, proto.CodeBadRequest, reasonBadRequest)
		return
	}
	for range 4 { // a room that is stopping closes its inbox; look again for its successor
		r, why := m.activate(id)
		if r == nil {
			m.refuse(nil, in, proto.CodeUnavailable, why)
			return
		}
		switch r.inbox.push(in) {
		case pushed:
			return
		case pushFull:
			code := proto.CodeUnavailable
			if k == kindChat || k == kindLike {
				code = proto.CodeRateLimited // lossy: tell the sender to slow down, not to retry
			}
			m.refuse(r, in, code, reasonInboxFull)
			return
		}
	}
	m.refuse(nil, in, proto.CodeUnavailable, reasonShutdown)
}

// activate returns the room's live instance, starting one if needed.
func (m *Manager) activate(id string) (*room, reason) {
	m.mu.RLock()
	r, closed := m.rooms[id], m.closed
	m.mu.RUnlock()
	if r != nil {
		return r, 0
	}
	if closed {
		return nil, reasonShutdown
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, reasonShutdown
	}
	if r := m.rooms[id]; r != nil {
		return r, 0
	}
	if len(m.rooms) >= m.cfg.MaxRooms {
		return nil, reasonMaxRooms
	}
	online, ok := m.online[id]
	if !ok {
		online = -1
	}
	r = newRoom(m, id, online)
	if prev := m.stopping[id]; prev != nil {
		r.prev = prev.done // load only after the previous owner flushed
	}
	m.rooms[id] = r
	m.met.activeRooms.Add(1)
	m.wg.Add(1)
	go r.run()
	return r, 0
}

// detach removes r from the active rooms (under m.mu), keeping it findable as
// the predecessor of a new instance until its goroutine ends.
func (m *Manager) detach(r *room) {
	if m.rooms[r.id] == r {
		delete(m.rooms, r.id)
		m.met.activeRooms.Add(-1)
	}
	m.stopping[r.id] = r
}

// finished is called by a room goroutine as it ends.
func (m *Manager) finished(r *room) {
	m.mu.Lock()
	if m.stopping[r.id] == r {
		delete(m.stopping, r.id)
	}
	m.mu.Unlock()
}

// refuse answers a request the manager could not hand to a room.
func (m *Manager) refuse(r *room, in *Inbound, code proto.Code, why reason) {
	m.met.dropped[why].Add(1)
	if r != nil {
		r.drops[why].Add(1)
	}
	ra := 0
	if code == proto.CodeUnavailable || code == proto.CodeRateLimited {
		ra = int(m.cfg.RetryAfter / time.Millisecond)
	}
	id := requestID(in)
	var body []byte
	switch in.Msg.(type) {
	case *proto.Chat, *proto.Like, *proto.Gift, *proto.Leave, nil: // nil: a Publish
		body = proto.Encode(&proto.Ack{ID: id, Code: code, RetryAfter: ra})
	default: // join, resume and anything unexpected have no ack
		body = proto.Encode(&proto.Error{ID: id, Code: code, Room: proto.RoomOf(in.Msg)})
	}
	m.sink.Reply(Reply{Node: in.Node, Session: in.Session, Body: body})
}

func kindOf(in *Inbound) kind {
	if in.Publish != nil {
		return kindPublish
	}
	switch in.Msg.(type) {
	case *proto.Chat:
		return kindChat
	case *proto.Like:
		return kindLike
	case *proto.Gift:
		return kindGift
	case *proto.Join:
		return kindJoin
	case *proto.Resume:
		return kindResume
	}
	return kindOther
}

func requestID(in *Inbound) uint32 {
	if rq, ok := in.Msg.(proto.Request); ok {
		return rq.RequestID()
	}
	return 0
}

// SetOnline records a room's cluster-wide online count. An active room sends
// it in its next batch (when it changed by ≥ 1% or 5 s passed); an inactive
// room gets it when it activates. It does not activate the room: viewers who
// only watch do not keep a room's goroutine alive.
func (m *Manager) SetOnline(room string, n int64) {
	m.mu.Lock()
	r := m.rooms[room]
	switch {
	case n <= 0:
		delete(m.online, room)
	case len(m.online) < m.cfg.MaxRooms || r != nil:
		m.online[room] = n // bounded: at most MaxRooms remembered
	}
	m.mu.Unlock()
	if r != nil {
		r.onlineIn.Store(n)
		r.control()
	}
}

// ApplySanction updates the cached sanctions of the active room (every active
// room for a global sanction, Room ""). The caller already wrote the change to
// the store; inactive rooms read it when they activate.
func (m *Manager) ApplySanction(s Sanction, lifted bool) {
	m.mu.RLock()
	var targets []*room
	if s.Room == "" {
		for _, r := range m.rooms {
			targets = append(targets, r)
		}
	} else if r := m.rooms[s.Room]; r != nil {
		targets = append(targets, r)
	}
	m.mu.RUnlock()
	for _, r := range targets {
		r.ctlMu.Lock()
		r.ctlSanctions = append(r.ctlSanctions, sanctionChange{s, lifted})
		r.ctlMu.Unlock()
		r.control()
	}
}

// ApplyPolicy updates the active room's policy (already written to the store).
func (m *Manager) ApplyPolicy(room string, p Policy) {
	m.mu.RLock()
	r := m.rooms[room]
	m.mu.RUnlock()
	if r == nil {
		return
	}
	r.ctlMu.Lock()
	r.ctlPolicy = &p
	r.ctlMu.Unlock()
	r.control()
}

// Release stops owning room: what is queued is processed, entries already
// persisted are acked and broadcast, and the room stops. It returns when the
// room has stopped (bounded by StoreTimeout). A later request re-activates it.
func (m *Manager) Release(room string) {
	m.mu.Lock()
	r := m.rooms[room]
	if r != nil {
		r.inbox.close()
		m.detach(r)
	}
	m.mu.Unlock()
	if r == nil {
		return
	}
	r.requestStop()
	<-r.done
}

// Close flushes and stops every room and waits for them. Requests after Close
// are answered unavailable.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	var rs []*room
	for _, r := range m.rooms {
		r.inbox.close()
		rs = append(rs, r)
	}
	for _, r := range rs {
		m.detach(r)
	}
	m.mu.Unlock()
	for _, r := range rs {
		r.requestStop()
	}
	m.wg.Wait()
}

// flush makes an active room emit now and waits until it has (tests: exact
// tick boundaries make sampling deterministic). It reports whether the room
// was active.
func (m *Manager) flush(room string) bool {
	m.mu.RLock()
	r := m.rooms[room]
	m.mu.RUnlock()
	if r == nil {
		return false
	}
	done := make(chan struct{})
	r.ctlMu.Lock()
	r.ctlFlush = append(r.ctlFlush, done)
	r.ctlMu.Unlock()
	r.control()
	select {
	case <-done:
	case <-r.done:
	}
	return true
}

// roomRand returns a room's random source: seeded from WithSeed and the room id
// when set, random otherwise.
func (m *Manager) roomRand(id string) *rand.Rand {
	if m.seed == nil {
		return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return rand.New(rand.NewPCG(uint64(*m.seed), fnv64(id)))
}

// fnv64 hashes a room id for seeding (stable across processes, unlike maphash).
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
