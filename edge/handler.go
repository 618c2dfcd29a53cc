package edge

import (
	"time"

	"github.com/panjf2000/gnet/v2"
)

// handler is the gnet event handler. Its callbacks run on the event loops
// (OnTick on gnet's ticker goroutine); none of them may block.
type handler struct {
	gnet.BuiltinEventEngine
	s *Server
}

func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	s := h.s
	s.bound(eng)
	s.engMu.Lock()
	s.eng, s.booted = eng, true
	stop := s.stopping.Load()
	s.engMu.Unlock()
	s.readyOnce.Do(func() { close(s.ready) })
	if stop {
		return gnet.Shutdown
	}
	s.log.Info("edge: listening", "addr", s.Addr(), "loops", len(s.loops), "max_conns", s.maxConns, "node", s.cfg.NodeID)
	return gnet.None
}

// OnOpen admits or refuses a connection. A refused one is closed at once (its
// descriptor freed), counted by reason, and the engine keeps serving: the
// MaxConns cap is what keeps accept(2) away from EMFILE, which would stop
// gnet's whole engine.
func (h *handler) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := h.s
	l := s.loopOf(gc.EventLoop())
	if l == nil {
		s.ctr.rejects[rejectServerFull].Add(1)
		return nil, gnet.Close
	}
	l.ctr.accepts.Add(1)
	if r, ok := s.admit(gc); !ok {
		l.ctr.rejects[r].Add(1)
		return nil, gnet.Close
	}
	now := time.Now().UnixMilli()
	c := &conn{
		gc:      gc,
		session: s.newSession(l.idx),
		ip:      addrIP(gc.RemoteAddr()),
		opened:  now,
		seen:    now,
		listIdx: int32(len(l.list)),
	}
	l.list = append(l.list, c)
	l.sessions[c.session] = c
	s.connsPending.Add(1)
	gc.SetContext(c)
	return nil, gnet.None
}

// admit applies the caps in order: draining, MaxConns, accept rate, per IP.
func (s *Server) admit(gc gnet.Conn) (rejectReason, bool) {
	if s.draining.Load() || s.stopping.Load() {
		return rejectDraining, false
	}
	if s.open.Add(1) > int64(s.maxConns) {
		s.open.Add(-1)
		return rejectServerFull, false
	}
	if s.accept != nil && !s.accept.Allow() {
		s.open.Add(-1)
		return rejectAcceptRate, false
	}
	if !s.ips.acquire(addrIP(gc.RemoteAddr())) {
		s.open.Add(-1)
		return rejectPerIP, false
	}
	return 0, true
}

func (h *handler) OnTraffic(gc gnet.Conn) gnet.Action {
	c, _ := gc.Context().(*conn)
	if c == nil {
		return gnet.Close
	}
	return h.s.loops[c.session&0xff].readInput(c, time.Now().UnixMilli())
}

// OnClose forgets the connection: its rooms (unwatching the last), its
// session, its caps. It runs for refused connections too (no context then).
func (h *handler) OnClose(gc gnet.Conn, _ error) gnet.Action {
	c, _ := gc.Context().(*conn)
	if c == nil {
		return gnet.None
	}
	s := h.s
	l := s.loops[c.session&0xff]
	for len(c.rooms) > 0 {
		l.removeSlot(c, len(c.rooms)-1)
	}
	last := len(l.list) - 1
	moved := l.list[last]
	l.list[c.listIdx] = moved
	moved.listIdx = c.listIdx
	l.list[last] = nil
	l.list = l.list[:last]
	delete(l.sessions, c.session)

	s.ips.release(c.ip)
	s.open.Add(-1)
	switch {
	case c.phase == phaseSniff:
		s.connsPending.Add(-1)
	case c.ws:
		s.connsWS.Add(-1)
	default:
		s.connsTCP.Add(-1)
	}
	reason := c.reason
	if reason == closePeer && s.stopping.Load() {
		reason = closeStopped
	}
	l.ctr.closes[reason].Add(1)
	c.phase, c.frag, c.allowed = phaseClosed, nil, nil
	gc.SetContext(nil)
	return gnet.None
}

// OnTick asks every loop for a deadline scan (handshake and heartbeat
// timeouts, outbound sampling): one task per loop per tick, no timer per
// connection.
func (h *handler) OnTick() (time.Duration, gnet.Action) {
	for _, l := range h.s.loops {
		l.requestScan()
	}
	return h.s.tick, gnet.None
}
