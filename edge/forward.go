package edge

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// unwatchSweep is how often a forwarder unwatches rooms that lost their last
// local member without its hint getting through (queue full): a bound on a
// leaked subscription, not the normal path.
const unwatchSweep = time.Second

// fwdOp is one request for the owner, or (in == nil) a hint that a room may
// have lost its last local member.
type fwdOp struct {
	room  string
	in    *manager.Inbound
	watch bool // join or resume: make sure the room is watched first
}

// forwarder runs the Bus calls that may block (Forward, Watch, Unwatch) off
// the event loops. Rooms are hashed onto its workers, so one room's requests,
// watches and unwatches stay in order, and each worker alone owns the
// watched state of its rooms.
type forwarder struct {
	s      *Server
	bus    Bus
	seed   maphash.Seed
	queues []chan fwdOp
	done   chan struct{}
	wg     sync.WaitGroup
}

func newForwarder(s *Server, bus Bus) *forwarder {
	cfg := &s.cfg
	f := &forwarder{s: s, bus: bus, seed: maphash.MakeSeed(), done: make(chan struct{})}
	per := max(cfg.ForwardQueue/cfg.ForwardWorkers, 1)
	for range cfg.ForwardWorkers {
		f.queues = append(f.queues, make(chan fwdOp, per))
	}
	return f
}

func (f *forwarder) start() {
	for _, q := range f.queues {
		f.wg.Add(1)
		go f.run(q)
	}
}

// stop ends the workers (queued requests are dropped: the engine is down)
// and unwatches every room they watched.
func (f *forwarder) stop() {
	close(f.done)
	f.wg.Wait()
}

func (f *forwarder) queueFor(room string) chan fwdOp {
	return f.queues[maphash.String(f.seed, room)%uint64(len(f.queues))]
}

// push queues op without blocking; false (and counted) when the queue is full.
func (f *forwarder) push(op fwdOp) bool {
	select {
	case f.queueFor(op.room) <- op:
		return true
	default:
		f.s.ctr.drops[dropForwardQueueFull].Add(1)
		return false
	}
}

// unwatchHint tells the room's worker it may unwatch the room. Best effort:
// the sweep catches a hint lost to a full queue.
func (f *forwarder) unwatchHint(room string) {
	select {
	case f.queueFor(room) <- fwdOp{room: room}:
	default:
	}
}

func (f *forwarder) len() int {
	n := 0
	for _, q := range f.queues {
		n += len(q)
	}
	return n
}

func (f *forwarder) run(q chan fwdOp) {
	defer f.wg.Done()
	watched := make(map[string]struct{})
	sweep := time.NewTicker(unwatchSweep)
	defer sweep.Stop()
	for {
		select {
		case op := <-q:
			f.do(op, watched)
		case <-sweep.C:
			for room := range watched {
				f.maybeUnwatch(room, watched)
			}
		case <-f.done:
			for room := range watched {
				f.bus.Unwatch(room)
			}
			return
		}
	}
}

func (f *forwarder) do(op fwdOp, watched map[string]struct{}) {
	if op.in == nil {
		f.maybeUnwatch(op.room, watched)
		return
	}
	if _, ok := watched[op.room]; op.watch && !ok {
		if err := f.bus.Watch(op.room); err != nil {
			f.s.ctr.drops[dropWatchFailed].Add(1)
			f.s.log.Warn("edge: watch room failed", "room", op.room, "err", err)
			f.unavailable(op.in)
			return
		}
		watched[op.room] = struct{}{}
	}
	if err := f.bus.Forward(op.in); err != nil {
		f.s.ctr.drops[dropForwardFailed].Add(1)
		f.s.log.Debug("edge: forward failed", "room", op.room, "err", err)
		f.unavailable(op.in)
	}
}

// maybeUnwatch unwatches room if it is watched and has no local member now.
// A join racing with it is queued behind it on this worker and watches again.
func (f *forwarder) maybeUnwatch(room string, watched map[string]struct{}) {
	if _, ok := watched[room]; !ok || f.s.rooms.lookup(room) != nil {
		return
	}
	delete(watched, room)
	f.bus.Unwatch(room)
}

// unavailable answers a request that could not reach its owner, through the
// normal reply path (which also undoes a join's membership).
func (f *forwarder) unavailable(in *manager.Inbound) {
	var m proto.Message
	switch msg := in.Msg.(type) {
	case *proto.Join, *proto.Resume:
		m = &proto.Error{ID: requestID(msg), Code: proto.CodeUnavailable, Room: proto.RoomOf(msg)}
	default:
		m = &proto.Ack{ID: requestID(msg), Code: proto.CodeUnavailable, RetryAfter: retryAfterMs}
	}
	f.s.DeliverReply(manager.Reply{Node: in.Node, Session: in.Session, Body: proto.Encode(m)})
}
