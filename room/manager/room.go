package manager

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// room is one active room. Everything below "owned by the room goroutine" is
// touched only by run (and what it calls); other goroutines reach the room
// through its inbox, the control fields and the channels.
type room struct {
	m      *Manager
	id     string
	inbox  queue[*Inbound]
	wake   chan struct{} // inbox arrivals and control changes
	done   chan struct{} // closed when the goroutine ends
	prev   <-chan struct{}
	ctx    context.Context // parent of helper calls (webhook, store reads); cancelled when the room ends
	cancel context.CancelFunc

	// Control, written by other goroutines under ctlMu, then ctlPending and a wake.
	ctlMu        sync.Mutex
	ctlSanctions []sanctionChange
	ctlPolicy    *Policy
	ctlFlush     []chan struct{}
	ctlStop      bool
	ctlPending   atomic.Bool
	onlineIn     atomic.Int64

	drops   [reasonCount]atomic.Uint64
	statsMu sync.Mutex
	stats   RoomStats // published by the room goroutine, read by Manager.Rooms
	statsAt int64

	// Owned by the room goroutine.
	rng          *rand.Rand
	buf          []*Inbound
	policy       Policy
	budget       int   // effective chat budget, msgs/s
	tick         int64 // effective tick, ns
	slow         int64 // slow mode, ns (0 = off)
	resCap       int   // reservoir size per priority class: ceil(budget×tick)
	epoch        string
	emitted      uint64 // last reliable seq broadcast
	window       window
	backlog      ring
	sanctions    map[sanctionKey]int64 // until (Unix ns), 0 = permanent
	users        map[string]userState
	nextSweep    int64
	lastSweep    int64
	res          [classCount]reservoir
	resCount     int // candidates in all reservoirs
	credit       float64
	creditAt     int64
	enters       []proto.Entry
	enterTAT     int64
	likes        uint64
	dropped      uint32 // lossy drops by policy since the last batch
	pendingRel   []proto.Entry
	lossy        []proto.Entry // scratch for one tick's lossy entries
	batch        proto.Batch
	tickN        uint64
	lastTickAt   int64
	stretchAt    int64 // first skipped tick under backpressure, 0 = none
	stretchTicks int   // ticks skipped since stretchAt
	online       int64 // -1 = unknown
	sentOnline   int64 // -1 = never sent
	sentAt       int64
	msgID        uint64
	state        []byte // cached encoded RoomState (nil = stale)
	live         bool   // from the newest state entry with a "live" field
	media        string // its "media" field
	rw           proto.Writer
	timer        *time.Timer
	armed        int64 // when the timer fires, 0 = not armed
	lastIn       int64 // last inbound, for idle eviction

	inflight        int // helper goroutines (webhook, resume fallback, reload) not yet reported back
	async           chan func()
	pq              *queue[persistReq]
	persistOut      chan persistRes
	persistInflight int
	giftKeys        map[string]giftAck
	giftOrder       []string // ring of keys in giftKeys, for forgetting
	giftNext        int
	giftWait        map[string][]replyTo

	drainBy       time.Time // set before the persister's queue closes
	missing       loadParts // what the last load could not read
	reloadAt      int64
	reloading     bool
	backlogDirty  bool
	savingBacklog bool
	backlogAt     int64 // next periodic backlog save
	lastWarn      int64

	inTotal, outTotal uint64
	rateAt            int64
	inAtRate          uint64
	outAtRate         uint64
}

type sanctionChange struct {
	s      Sanction
	lifted bool
}

// maxUnixNano is the last instant UnixNano represents; a sanction until later
// is permanent in practice.
var maxUnixNano = time.Unix(0, math.MaxInt64)

type sanctionKey struct {
	user   string
	global bool
	ban    bool
}

// Timing constants of a room's housekeeping.
const (
	onlineMaxAge   = 5 * time.Second  // an unchanged-enough online count is still re-sent this often
	userSweepEvery = 10 * time.Second // forget per-user states that are back to fresh
	reloadEvery    = 5 * time.Second  // retry what activation could not read from the store
	warnEvery      = 10 * time.Second // at most one store warning per room per interval
	rateWindow     = time.Second      // RoomStats rates are over this window
)

func newRoom(m *Manager, id string, online int64) *room {
	r := &room{
		m:          m,
		id:         id,
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		async:      make(chan func()),
		online:     online,
		sentOnline: -1,
	}
	r.inbox = queue[*Inbound]{max: m.cfg.InboxSize, wake: r.wake}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.onlineIn.Store(math.MinInt64) // nothing pushed yet
	return r
}

// control wakes the room to read its control fields.
func (r *room) control() {
	r.ctlPending.Store(true)
	signal(r.wake)
}

func (r *room) requestStop() {
	r.ctlMu.Lock()
	r.ctlStop = true
	r.ctlMu.Unlock()
	r.control()
}

// run is the room goroutine.
func (r *room) run() {
	defer r.m.wg.Done()
	defer close(r.done)
	defer r.m.finished(r)
	if r.prev != nil {
		<-r.prev
	}
	r.init(r.m.now())
	defer r.timer.Stop()
	r.applyLoad(r.load(r.ctx, allParts), allParts, r.m.now())
	r.publishStats(r.m.now())

	for {
		select {
		case <-r.wake:
		case <-r.timer.C:
			r.armed = 0
		case res, ok := <-r.persistOut:
			if !ok {
				r.persistOut = nil
				break
			}
			r.onPersisted(res, r.m.now())
		case f := <-r.async:
			f()
		}
		if r.step() {
			return
		}
	}
}

// init sets up the room goroutine's state (before the store is read).
func (r *room) init(now int64) {
	r.rng = r.m.roomRand(r.id)
	r.lastIn, r.lastTickAt, r.creditAt, r.rateAt = now, now, now, now
	r.users = map[string]userState{}
	r.sanctions = map[sanctionKey]int64{}
	r.window.max = r.m.cfg.Retention
	r.backlog.max = r.m.cfg.BacklogSize
	r.setPolicy(Policy{})
	r.credit = float64(r.resCap)
	r.timer = time.NewTimer(time.Hour)
	r.timer.Stop()
}

// step runs after every event: take the inbox, apply control, tick when due,
// housekeeping, and decide whether to stop. It reports whether the room ended.
func (r *room) step() bool {
	now := r.m.now()
	// Control first (a mute applies to what is queued behind it), then the
	// inbox, then the tick (a flush covers what was submitted before it).
	flushes, stop := r.applyControl(now)
	r.drainInbox(now)
	if len(flushes) > 0 {
		r.emit(now)
		r.publishStats(now) // what Rooms says after a flush includes it
		for _, c := range flushes {
			close(c)
		}
	} else if now >= r.lastTickAt+r.tick && r.hasWork(now) {
		r.onTick(now)
	}
	if stop {
		r.stop()
		return true
	}
	r.housekeeping(now)
	if r.idle(now) && r.evict() {
		return true
	}
	r.rearm(now)
	return false
}

func (r *room) drainInbox(now int64) {
	r.buf = r.inbox.drain(r.buf)
	for _, in := range r.buf {
		r.handle(in, now)
	}
}

// applyControl applies what other goroutines asked since the last step.
func (r *room) applyControl(now int64) (flushes []chan struct{}, stop bool) {
	if !r.ctlPending.Swap(false) {
		return nil, false
	}
	r.ctlMu.Lock()
	sancs, pol := r.ctlSanctions, r.ctlPolicy
	flushes, stop = r.ctlFlush, r.ctlStop
	r.ctlSanctions, r.ctlPolicy, r.ctlFlush = nil, nil, nil
	r.ctlMu.Unlock()
	for _, c := range sancs {
		r.applySanction(c.s, c.lifted)
	}
	if pol != nil {
		r.setPolicy(*pol)
	}
	if n := r.onlineIn.Load(); n != math.MinInt64 && n != r.online {
		r.online = n
		r.state = nil
	}
	return flushes, stop
}

func (r *room) applySanction(s Sanction, lifted bool) {
	k := sanctionKey{user: s.User, global: s.Room == "", ban: s.Ban}
	if lifted {
		delete(r.sanctions, k)
		return
	}
	var until int64 // 0 = permanent
	if !s.Until.IsZero() && s.Until.Before(maxUnixNano) {
		until = s.Until.UnixNano()
	}
	r.sanctions[k] = until
}

// setPolicy applies an operator policy; budget and tick changes size the
// reservoirs from the next tick on (they are empty right after a tick, and
// sample() never keeps more than resCap).
func (r *room) setPolicy(p Policy) {
	r.policy = p
	cfg := &r.m.cfg
	r.budget = cfg.Budget
	if p.Budget > 0 {
		r.budget = min(p.Budget, maxBudget)
	}
	tick := cfg.Tick
	if p.Tick > 0 {
		tick = min(max(p.Tick, minTick), maxTick)
	}
	r.tick = int64(tick)
	r.slow = int64(max(p.SlowMode, 0))
	r.resCap = min(max(int(math.Ceil(float64(r.budget)*tick.Seconds())), 1), maxReservoir)
	r.state = nil
}

func (r *room) hasWork(now int64) bool {
	return len(r.pendingRel) > 0 || r.resCount > 0 || len(r.enters) > 0 || r.likes > 0 ||
		r.dropped > 0 || r.onlineDue(now)
}

// onlineDue reports whether the online count should go in the next batch:
// known, different from the last one sent, and changed by ≥ 1% or not sent
// for onlineMaxAge.
func (r *room) onlineDue(now int64) bool {
	if r.online < 0 || r.online == r.sentOnline {
		return false
	}
	if r.sentOnline < 0 {
		return true
	}
	d := r.online - r.sentOnline
	if d < 0 {
		d = -d
	}
	return d*100 >= r.sentOnline || now-r.sentAt >= int64(onlineMaxAge)
}

// onTick emits unless the sink is still writing the previous batch, in which
// case the tick stretches (entries merge into the next batch) for up to
// MaxStretch.
func (r *room) onTick(now int64) {
	r.lastTickAt = now
	if bp := r.m.bp; bp != nil && bp.Pending(r.id) {
		if r.stretchAt == 0 {
			r.stretchAt = now
		}
		if now-r.stretchAt < int64(r.m.cfg.MaxStretch) {
			r.stretchTicks++
			r.m.met.stretched.Add(1)
			return
		}
	}
	r.emit(now)
}

// rearm sets the timer to the next moment the room has something to do. It
// only ever moves the timer earlier: while a room is busy the due time (the
// tick, or the idle deadline that moves with every message) is at or after
// the armed one, so the timer is not touched per message.
func (r *room) rearm(now int64) {
	due := int64(math.MaxInt64)
	if r.hasWork(now) {
		due = r.lastTickAt + r.tick
	} else if r.online >= 0 && r.online != r.sentOnline {
		due = max(r.lastTickAt+r.tick, r.sentAt+int64(onlineMaxAge))
	}
	if r.backlogDirty {
		due = min(due, r.backlogAt)
	}
	if r.missing != 0 && !r.reloading {
		due = min(due, r.reloadAt)
	}
	if len(r.users) > 0 || len(r.sanctions) > 0 {
		due = min(due, r.nextSweep)
	}
	if idleAt := r.lastIn + int64(r.m.cfg.IdleTimeout); idleAt > now {
		due = min(due, idleAt)
	}
	if r.armed > now && r.armed <= due {
		return // an earlier wake is harmless (the step finds nothing due) and saves a Reset per message
	}
	if due == math.MaxInt64 {
		return
	}
	if due != r.armed {
		r.timer.Reset(time.Duration(max(due-now, 0)))
		r.armed = due
	}
}

// busy reports work in flight that will wake the room when it completes.
func (r *room) busy() bool {
	return r.inflight > 0 || r.persistInflight > 0
}

func (r *room) housekeeping(now int64) {
	if r.backlogDirty && now >= r.backlogAt {
		r.saveBacklogAsync()
	}
	if r.missing != 0 && !r.reloading && now >= r.reloadAt {
		r.reload()
	}
	if now >= r.nextSweep {
		r.sweep(now)
		r.nextSweep = now + int64(userSweepEvery)
	}
	if now-r.rateAt >= int64(rateWindow) {
		r.publishStats(now)
	}
}

// idle reports whether the room may be evicted: no inbound for IdleTimeout
// and nothing pending or in flight.
func (r *room) idle(now int64) bool {
	return now-r.lastIn >= int64(r.m.cfg.IdleTimeout) && !r.busy() && !r.hasWork(now) &&
		!r.reloading
}

// evict stops an idle room if its inbox is still empty; the check and the
// removal are atomic with Submit's lookup, so no request is stranded.
func (r *room) evict() bool {
	if r.backlogDirty {
		r.saveBacklogSync()
	}
	m := r.m
	m.mu.Lock()
	ok := r.inbox.closeIfEmpty()
	if ok {
		m.detach(r)
	}
	m.mu.Unlock()
	if !ok {
		return false
	}
	m.met.evictedRooms.Add(1)
	r.finish()
	return true
}

// stop flushes a released or closed room: queued requests are handled, work
// in flight (webhook calls, store reads) completes within its own deadline,
// the persister appends what is queued within StoreTimeout (and fails the
// rest: clients retry with the same key), and every persisted entry is acked
// and broadcast before the room ends.
func (r *room) stop() {
	r.drainInbox(r.m.now())
	for r.inflight > 0 {
		r.await()
	}
	r.closePersister(r.m.cfg.StoreTimeout)
	for r.persistOut != nil {
		r.await()
	}
	r.emit(r.m.now())
	if r.backlogDirty {
		r.saveBacklogSync()
	}
	r.finish()
}

// await handles one persister result or helper report.
func (r *room) await() {
	select {
	case res, ok := <-r.persistOut:
		if !ok {
			r.persistOut = nil
			return
		}
		r.onPersisted(res, r.m.now())
	case f := <-r.async:
		f()
	}
}

// finish releases what the room holds once nothing is pending.
func (r *room) finish() {
	r.cancel()
	r.closePersister(0)
	for r.persistOut != nil { // an idle persister ends at once
		r.await()
	}
	r.publishStats(r.m.now())
}

// warn logs a store problem at most once per warnEvery per room.
func (r *room) warn(msg string, err error) {
	now := r.m.now()
	if now-r.lastWarn < int64(warnEvery) {
		return
	}
	r.lastWarn = now
	r.m.log.Warn(msg, "room", r.id, "err", err)
}

// nextMsgID returns a message id unique in the room within an epoch: the
// counter starts at the activation time in µs, so a later activation starts
// above every id the earlier one gave (at < 1M msgs/s).
func (r *room) nextMsgID(now int64) uint64 {
	if r.msgID == 0 {
		r.msgID = uint64(now / 1e3)
	}
	r.msgID++
	return r.msgID
}

// serverTS converts a room clock reading to the wire's Unix ms.
func serverTS(now int64) int64 { return now / 1e6 }
