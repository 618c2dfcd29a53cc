package edge

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/gobwas/ws"

	"github.com/danmaku/danmaku/edge/wsframe"
	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// DeliverReply hands one frame to one local session (ack, joined, resumed,
// error). Called by the bus (any goroutine); it never blocks: replies are
// queued per loop and written by the loop's next task, many per Execute.
func (s *Server) DeliverReply(r manager.Reply) {
	if r.Node != s.cfg.NodeID {
		s.ctr.drops[dropWrongNode].Add(1)
		return
	}
	idx := int(r.Session & 0xff)
	if idx >= len(s.loops) || len(r.Body) == 0 {
		s.ctr.drops[dropSessionGone].Add(1)
		return
	}
	s.loops[idx].pushReply(r)
}

// reply writes one reply on the loop. An Error answering a pending join or
// resume undoes the membership the join added; a Joined or Resumed confirms it.
func (l *loop) reply(r *manager.Reply) {
	c := l.sessions[r.Session]
	if c == nil || c.phase != phaseReady {
		l.ctr.drops[dropSessionGone].Add(1)
		return
	}
	if h, err := proto.PeekHeader(r.Body); err == nil {
		switch h.Type {
		case proto.TypeError:
			room := ""
			if m, err := l.dec.Decode(r.Body); err == nil {
				room = m.(*proto.Error).Room
			}
			if i := c.pendingJoin(h.ID, room); i >= 0 {
				l.removeSlot(c, i)
			}
		case proto.TypeJoined, proto.TypeResumed:
			if i := c.pendingJoin(h.ID, ""); i >= 0 {
				c.rooms[i].joining = false
			}
		}
	}
	if c.gc.OutboundBuffered() > l.hardCap {
		l.kill(c, 0, proto.CodeSlowConsumer, closeSlowConsumer)
		return
	}
	l.sendBody(c, r.Body)
}

// pendingJoin finds the slot whose join or resume has request id id (and is
// for room, when room is known); -1 if none.
func (c *conn) pendingJoin(id uint32, room string) int {
	for i := range c.rooms {
		s := &c.rooms[i]
		if s.joining && s.joinID == id && (room == "" || s.lr.info.name == room) {
			return i
		}
	}
	return -1
}

// SetOnline sets a room's cached cluster-wide online count (used in pongs).
// Rooms without local members are ignored.
func (s *Server) SetOnline(room string, n int64) {
	if ri := s.rooms.lookup(room); ri != nil && n >= 0 {
		ri.online.Store(n)
	}
}

// LocalCounts calls fn with the number of local members of every room that
// has any (for cluster-wide online counts). fn runs without edge locks held.
func (s *Server) LocalCounts(fn func(room string, n int)) {
	s.rooms.each(func(ri *roomInfo) {
		if n := ri.members.Load(); n > 0 {
			fn(ri.name, int(n))
		}
	})
}

// onLoops runs fn on every event loop that has had a connection and waits
// until each has run it, ctx ends, or the engine stops. It returns how many
// loops ran it. Never call it from an event loop.
func (s *Server) onLoops(ctx context.Context, fn func(*loop)) int {
	done := make(chan struct{}, len(s.loops))
	queued := 0
	for _, l := range s.loops {
		if l.pushCtrl(func(l *loop) { fn(l); done <- struct{}{} }) {
			queued++
		}
	}
	ran := 0
	for ran < queued {
		select {
		case <-done:
			ran++
		case <-ctx.Done():
			return ran
		case <-s.stopped:
			return ran
		}
	}
	return ran
}

// ctrlTimeout bounds how long Kick waits for the loops to act.
const ctrlTimeout = 5 * time.Second

// Kick closes user's connections — all of them when room is "", else those
// that joined room — with an Error frame of code (proto.CodeKicked if empty).
// It returns how many it closed.
func (s *Server) Kick(user, room string, code proto.Code) int {
	if code == "" {
		code = proto.CodeKicked
	}
	ctx, cancel := context.WithTimeout(context.Background(), ctrlTimeout)
	defer cancel()
	counts := make(chan int, len(s.loops))
	s.onLoops(ctx, func(l *loop) {
		n := 0
		for i := len(l.list) - 1; i >= 0; i-- {
			if i >= len(l.list) {
				continue
			}
			c := l.list[i]
			if c.phase != phaseReady || c.user != user || (room != "" && c.slotIndex(room) < 0) {
				continue
			}
			l.errMsg = proto.Error{Code: code, Room: room}
			l.farewell(c, &l.errMsg, code, closeKicked)
			l.closeNow(c)
			n++
		}
		counts <- n
	})
	total := 0
	for {
		select {
		case n := <-counts:
			total += n
		default:
			return total
		}
	}
}

// Notice sends a notice frame to every local connection past hello (system
// announcements). It is encoded once; each loop writes it to its members.
func (s *Server) Notice(n *proto.Notice) {
	if n == nil {
		return
	}
	body := proto.Encode(n)
	f := [2][]byte{proto.AppendFrame(nil, body), wsframe.AppendFrame(nil, ws.OpBinary, body)}
	for _, l := range s.loops {
		l.pushCtrl(func(l *loop) {
			for i := len(l.list) - 1; i >= 0; i-- {
				if i >= len(l.list) {
					continue
				}
				c := l.list[i]
				if c.phase != phaseReady {
					continue
				}
				if c.gc.OutboundBuffered() > l.hardCap {
					l.kill(c, 0, proto.CodeSlowConsumer, closeSlowConsumer)
					continue
				}
				if c.ws {
					l.write(c, f[1])
				} else {
					l.write(c, f[0])
				}
			}
		})
	}
}

// drainPoll is how often Drain checks whether every connection is gone.
const drainPoll = 20 * time.Millisecond

// Drain stops accepting (new connections are refused, reason draining), sends
// every connection a reconnect frame with a retry-after spread over
// DrainJitter, waits until they are all gone or DrainTimeout (or ctx) runs
// out, then closes the rest and stops the engine. Run returns after it.
func (s *Server) Drain(ctx context.Context) error {
	first := s.draining.CompareAndSwap(false, true)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DrainTimeout)
	defer cancel()
	if first { // a second Drain only waits
		s.onLoops(ctx, s.sendReconnects)
	}
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for s.open.Load() > 0 {
		select {
		case <-ctx.Done():
			s.log.Info("edge: drain deadline, closing the rest", "open", s.open.Load())
			s.onLoops(context.Background(), func(l *loop) {
				for i := len(l.list) - 1; i >= 0; i-- {
					if i < len(l.list) {
						l.list[i].reason = closeDrain
						l.closeNow(l.list[i])
					}
				}
			})
			return s.Stop(context.Background())
		case <-s.stopped:
			return nil
		case <-t.C:
		}
	}
	return s.Stop(context.Background())
}

// sendReconnects runs on a loop: a reconnect frame to every connection past
// hello; connections still in their handshake are closed (nothing to resume).
func (s *Server) sendReconnects(l *loop) {
	jitter := s.cfg.DrainJitter.Milliseconds()
	for i := len(l.list) - 1; i >= 0; i-- {
		if i >= len(l.list) {
			continue
		}
		c := l.list[i]
		if c.phase < phaseReady {
			l.kill(c, 0, proto.CodeShutdown, closeDrain)
			continue
		}
		ra := 0
		if jitter > 0 {
			ra = rand.IntN(int(jitter))
		}
		l.send(c, &proto.Reconnect{Reason: proto.CodeShutdown, RetryAfter: ra})
	}
}

// Draining reports whether Drain was called.
func (s *Server) Draining() bool { return s.draining.Load() }
