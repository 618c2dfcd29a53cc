package edge

import (
	"context"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/danmaku/danmaku/edge/wsframe"
	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// Inbox bounds, per event loop. A loop empties its inbox on every task, so
// these are reached only when a loop is starved of CPU for a long while.
const (
	// maxInboxBatches: past half of it lossy batches are dropped, past all of
	// it reliable ones too (clients see the seq gap and resume).
	maxInboxBatches = 8192
	// maxInboxBytes bounds the batch bytes waiting for one loop, same rule.
	maxInboxBytes = 64 << 20
	// maxInboxReplies bounds replies waiting for one loop (an ack storm).
	maxInboxReplies = 65536
)

// loop is the edge's state for one gnet event loop. The inbox (mu and the in*
// fields) is shared with other goroutines; everything else is touched only on
// the loop's goroutine (gnet callbacks and Execute tasks).
type loop struct {
	srv *Server
	idx int
	ctr counters
	// softCap and hardCap are the caps in force (Config's, or the node's
	// fair share under MaxOutbound), set on each scan.
	softCap, hardCap int

	mu        sync.Mutex
	el        gnet.EventLoop // set when the loop's first connection opens
	inBatches []*frames
	inBytes   int
	inReplies []manager.Reply
	inCtrl    []func(*loop)
	scanDue   bool
	scheduled bool // an Execute of runInbox is pending

	// Loop-owned from here.
	task      gnet.RunnableFunc
	list      []*conn          // every open connection, for the scan
	sessions  map[uint64]*conn // by session id, for replies
	rooms     map[string]*loopRoom
	touched   []*loopRoom // rooms with queued batches in the current task
	batches   []*frames   // swapped with inBatches
	replies   []manager.Reply
	ctrl      []func(*loop)
	dec       proto.Decoder
	wsp       wsframe.Parser
	hs        *wsframe.Handshake
	w         proto.Writer // message scratch
	out       []byte       // frame scratch
	cat       [2][]byte    // coalesced batches: TCP, WebSocket
	rel       [2][]byte    // coalesced reliable-only batches
	pong      proto.Pong
	ack       proto.Ack
	errMsg    proto.Error
	missed    proto.Missed
	onlineBuf []proto.RoomCount
}

func newLoop(s *Server, idx int) *loop {
	l := &loop{
		srv:      s,
		idx:      idx,
		softCap:  s.cfg.SoftCap,
		hardCap:  s.cfg.HardCap,
		sessions: make(map[uint64]*conn),
		rooms:    make(map[string]*loopRoom),
		hs:       wsframe.NewHandshake(maxHTTPHead),
	}
	l.task = l.runInbox
	return l
}

// pushBatch queues a batch for this loop. Called by bus goroutines: it only
// appends under the inbox lock and schedules one Execute if none is pending.
func (l *loop) pushBatch(f *frames) {
	l.mu.Lock()
	n, size := len(l.inBatches), l.inBytes+len(f.tcp)
	if n >= maxInboxBatches || size > maxInboxBytes ||
		(!f.reliable && (n >= maxInboxBatches/2 || size > maxInboxBytes/2)) {
		l.mu.Unlock()
		l.ctr.drops[dropLoopBacklog].Add(1)
		return
	}
	l.inBatches = append(l.inBatches, f)
	l.inBytes = size
	l.wakeLocked()
}

// pushReply queues a reply for one of this loop's sessions.
func (l *loop) pushReply(r manager.Reply) {
	l.mu.Lock()
	if l.el == nil {
		l.mu.Unlock()
		l.ctr.drops[dropSessionGone].Add(1) // no connection ever opened here
		return
	}
	if len(l.inReplies) >= maxInboxReplies {
		l.mu.Unlock()
		l.ctr.drops[dropReplyQueueFull].Add(1)
		return
	}
	l.inReplies = append(l.inReplies, r)
	l.wakeLocked()
}

// pushCtrl queues a function to run on the loop (kick, notice, drain). It
// reports false when the loop has no connection yet or is stopped.
func (l *loop) pushCtrl(fn func(*loop)) bool {
	l.mu.Lock()
	if l.el == nil {
		l.mu.Unlock()
		return false
	}
	l.inCtrl = append(l.inCtrl, fn)
	return l.wakeLocked()
}

// requestScan asks for a deadline scan on the loop's next task.
func (l *loop) requestScan() {
	l.mu.Lock()
	if l.el == nil {
		l.mu.Unlock()
		return
	}
	l.scanDue = true
	l.wakeLocked()
}

// wakeLocked schedules runInbox unless it is already scheduled, and unlocks.
func (l *loop) wakeLocked() bool {
	el := l.el
	if l.scheduled || el == nil {
		l.mu.Unlock()
		return el != nil
	}
	l.scheduled = true
	l.mu.Unlock()
	if err := el.Execute(context.Background(), l.task); err != nil {
		// The engine is stopping: nothing will run; let a later push retry.
		l.mu.Lock()
		l.scheduled = false
		l.mu.Unlock()
		return false
	}
	return true
}

// runInbox is the loop's one task: it takes everything queued since the last
// run — replies, batches, control functions — and does it. Batches that piled
// up for a room while the loop was busy are written as one buffer per
// connection (the hungry flush): under overload viewers get fewer, fuller
// writes instead of a growing queue.
func (l *loop) runInbox(context.Context) error {
	l.mu.Lock()
	l.batches, l.inBatches = l.inBatches, l.batches[:0]
	l.replies, l.inReplies = l.inReplies, l.replies[:0]
	l.ctrl, l.inCtrl = l.inCtrl, l.ctrl[:0]
	scan := l.scanDue
	l.inBytes, l.scanDue, l.scheduled = 0, false, false
	l.mu.Unlock()

	for i := range l.replies {
		l.reply(&l.replies[i])
	}
	clear(l.replies)

	for _, f := range l.batches {
		lr := l.rooms[f.room]
		if lr == nil {
			continue // the last member left after the batch was queued
		}
		if len(lr.queued) == 0 {
			l.touched = append(l.touched, lr)
		}
		lr.queued = append(lr.queued, f)
	}
	for _, lr := range l.touched {
		l.writeRoom(lr)
		clear(lr.queued)
		lr.queued = lr.queued[:0]
	}
	clear(l.touched)
	l.touched = l.touched[:0]
	clear(l.batches)

	for i, fn := range l.ctrl {
		fn(l)
		l.ctrl[i] = nil
	}
	if scan {
		l.scan(time.Now().UnixMilli())
	}
	return nil
}

// scan enforces the deadlines of every connection on the loop and samples
// their outbound backlog. It runs on the tick (no timer per connection).
func (l *loop) scan(now int64) {
	cfg := &l.srv.cfg
	l.softCap, l.hardCap = l.srv.outboundCaps()
	handshake := cfg.HandshakeTimeout.Milliseconds()
	silence := 2 * cfg.Heartbeat.Milliseconds()
	var outbound int64
	// Backwards: closing a connection moves the last one into its place.
	for i := len(l.list) - 1; i >= 0; i-- {
		if i >= len(l.list) {
			continue
		}
		c := l.list[i]
		switch {
		case c.phase < phaseReady && now-c.opened > handshake:
			l.kill(c, 0, proto.CodeTimeout, closeHandshakeTimeout)
		case c.phase == phaseReady && now-c.seen > silence:
			l.kill(c, 0, proto.CodeTimeout, closeHeartbeatTimeout)
		default:
			b := c.gc.OutboundBuffered()
			outbound += int64(b)
			switch {
			case b > l.hardCap:
				l.kill(c, 0, proto.CodeSlowConsumer, closeSlowConsumer)
			case c.missedAny && b <= l.softCap:
				l.tellMissed(c)
			}
		}
	}
	l.ctr.outbound.Store(outbound)
}

// minFairShare is the least backlog a connection keeps under MaxOutbound
// pressure: a few batches of a busy room.
const minFairShare = 64 << 10

// outboundCaps returns the soft and hard caps in force: Config's, or, while
// the node's outbound backlog (the loops' last samples) is past MaxOutbound,
// each connection's fair share of it.
func (s *Server) outboundCaps() (soft, hard int) {
	soft, hard = s.cfg.SoftCap, s.cfg.HardCap
	if s.cfg.MaxOutbound <= 0 {
		return soft, hard
	}
	var total int64
	for _, l := range s.loops {
		total += l.ctr.outbound.Load()
	}
	if total <= s.cfg.MaxOutbound {
		s.pressure.Store(false)
		return soft, hard
	}
	s.pressure.Store(true)
	fair := s.cfg.MaxOutbound / max(s.open.Load(), 1)
	hard = int(min(max(fair, minFairShare), int64(hard)))
	return min(soft, hard/2), hard
}
