package edge

import (
	"time"

	"github.com/gobwas/ws"

	"github.com/danmaku/danmaku/edge/wsframe"
	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// frames is one room batch, framed once for each transport and shared,
// read-only, by every loop and every member that writes it.
type frames struct {
	room     string
	tcp      []byte // 4-byte length + body
	ws       []byte // WebSocket binary frame header + body
	reliable bool
	at       int64 // Emitted.At, Unix ns
}

// newFrames builds both framings of a batch in one allocation.
func newFrames(e *manager.Emitted) *frames {
	n := len(e.Body)
	buf := make([]byte, 0, proto.FrameHeaderLen+n+ws.MaxHeaderSize+n)
	buf = proto.AppendFrame(buf, e.Body)
	tcp := buf[:len(buf):len(buf)]
	buf = wsframe.AppendFrame(buf, ws.OpBinary, e.Body)
	return &frames{room: e.Room, tcp: tcp, ws: buf[len(tcp):], reliable: e.Reliable, at: e.At}
}

// DeliverBatch hands a room batch to the event loops that have members of
// the room. Called by the bus (any goroutine); it never blocks: the frames
// are built once here, then each such loop gets a reference in its inbox
// and at most one Execute. It also caches e.Online (when ≥ 0) for pongs.
func (s *Server) DeliverBatch(e *manager.Emitted) {
	if e == nil || len(e.Body) == 0 {
		return
	}
	s.ctr.delivered.Add(1)
	if len(e.Body) > proto.MaxServerFrame {
		s.ctr.drops[dropBatchTooLarge].Add(1)
		return
	}
	var present [maxLoops]bool
	ri := s.rooms.loopsOf(e.Room, present[:])
	if ri == nil {
		s.ctr.drops[dropNoMembers].Add(1)
		return
	}
	if e.Online >= 0 {
		ri.online.Store(e.Online)
	}
	f := newFrames(e)
	for i, l := range s.loops {
		if present[i] {
			l.pushBatch(f)
		}
	}
}

// writeRoom writes the batches queued for one room to every member on this
// loop, oldest first, as one write per member.
//
// Hot path (members × batches): it must not allocate per member, encode per
// member, lock, or block. Coalescing reuses the loop's scratch buffers (gnet
// copies what the socket does not take at once, so they are free again after
// each Write); Writev is not used because it rewrites its [][]byte argument.
func (l *loop) writeRoom(lr *loopRoom) {
	q := lr.queued
	lossy, reliable := 0, 0
	for _, f := range q {
		if f.reliable {
			reliable++
		} else {
			lossy++
		}
	}
	all := l.coalesce(&l.cat, q, false)
	var rel [2][]byte // built on first need: only soft-capped members get it
	var writes, skipped, bytes uint64
	// Backwards: a connection closed here (hard cap, failed write) is
	// replaced by the last member, which was already served.
	for i := len(lr.members) - 1; i >= 0; i-- {
		if i >= len(lr.members) {
			continue
		}
		c := lr.members[i]
		backlog := c.gc.OutboundBuffered()
		if backlog > l.hardCap {
			l.kill(c, 0, proto.CodeSlowConsumer, closeSlowConsumer)
			continue
		}
		out := all
		if backlog > l.softCap && lossy > 0 {
			c.slotOf(lr).missed += uint32(lossy)
			c.missedAny = true
			skipped += uint64(lossy)
			if reliable == 0 {
				continue
			}
			if rel[0] == nil {
				rel = l.coalesce(&l.rel, q, true)
			}
			out = rel
		} else if c.missedAny && backlog <= l.softCap {
			l.tellMissed(c)
		}
		b := out[0]
		if c.ws {
			b = out[1]
		}
		if _, err := c.gc.Write(b); err == nil {
			writes++
			bytes += uint64(len(b))
		}
	}
	l.ctr.batches.Add(uint64(len(q)))
	l.ctr.writes.Add(writes)
	l.ctr.bytesOut.Add(bytes)
	l.ctr.skipped.Add(skipped)
	done := time.Now().UnixNano()
	for _, f := range q {
		if f.at > 0 && done > f.at {
			l.srv.metrics.latency.Observe(float64(done-f.at) / 1e9)
		}
	}
}

// coalesce returns the TCP and WebSocket bytes of the queued batches (only
// the reliable ones if reliableOnly): the shared frames themselves when there
// is one, else their concatenation in the loop's scratch buf.
func (l *loop) coalesce(buf *[2][]byte, q []*frames, reliableOnly bool) [2][]byte {
	if !reliableOnly && len(q) == 1 {
		return [2][]byte{q[0].tcp, q[0].ws}
	}
	tcp, wsb := buf[0][:0], buf[1][:0]
	for _, f := range q {
		if !reliableOnly || f.reliable {
			tcp = append(tcp, f.tcp...)
			wsb = append(wsb, f.ws...)
		}
	}
	buf[0], buf[1] = tcp, wsb
	return *buf
}

// tellMissed sends a missed frame for every room in which c skipped lossy
// batches while it was slow: it is below the soft cap again.
func (l *loop) tellMissed(c *conn) {
	c.missedAny = false
	for i := range c.rooms {
		s := &c.rooms[i]
		if s.missed == 0 {
			continue
		}
		l.missed = proto.Missed{Room: s.lr.info.name, Batches: s.missed}
		s.missed = 0
		if !l.send(c, &l.missed) {
			return
		}
	}
}
