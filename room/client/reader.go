package client

import (
	"errors"
	"fmt"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// readLoop is the one goroutine reading a connection. It answers pending
// requests, runs every room's tracker and emits events in the order the
// server sent them. It ends when the connection does.
//
// Hot path (one pass per server frame; BenchmarkReceive): it must not copy
// frames beyond what the decoder allocates, nor hold c.mu across a write or
// an emit. It must not drop a reliable entry: when the app stops reading
// events it blocks (see Client.Events), and so does the socket behind it.
func (c *Client) readLoop(s *session) {
	defer c.wg.Done()
	defer close(s.dead)
	var dec proto.Decoder
	for {
		s.waiting.Store(time.Now().UnixNano())
		body, err := s.w.next()
		s.waiting.Store(0)
		if err != nil {
			s.fail(fmt.Errorf("read: %w", err))
			return
		}
		m, err := dec.Decode(body)
		switch {
		case errors.Is(err, proto.CodeUnknownType):
			c.stats.add(cUnknownType, 1) // a newer server: skip what we do not know
			continue
		case err != nil:
			// Framing is intact, so skip the frame; a lost reliable entry
			// shows up as a gap and is resumed.
			c.stats.add(cBadFrame, 1)
			c.log.Warn("danmaku: undecodable server frame", "err", err, "bytes", len(body))
			continue
		}
		c.handle(s, m)
	}
}

func (c *Client) handle(s *session, m proto.Message) {
	switch m := m.(type) {
	case *proto.Batch:
		c.onBatch(s, m)
	case *proto.Ack:
		s.deliver(m.ID, m)
	case *proto.Joined:
		c.onJoined(s, m)
	case *proto.Resumed:
		c.onResumed(s, m)
	case *proto.Error:
		c.onError(s, m)
	case *proto.Pong:
		c.onPong(s, m)
	case *proto.Notice:
		c.emit(Event{Kind: EventNotice, Room: m.Room, Notice: m})
	case *proto.Missed:
		c.stats.add(cMissed, int(m.Batches))
		c.emit(Event{Kind: EventMissed, Room: m.Room, Missed: m.Batches})
	case *proto.Reconnect:
		s.reconnectAfter = time.Duration(m.RetryAfter) * time.Millisecond
		s.fail(fmt.Errorf("%w (%s)", errServerRequest, m.Reason))
		c.emit(Event{Kind: EventReconnectRequested, Reconnect: m})
	}
	// Anything else (a second welcome, client-bound types) means nothing here.
}

// deliverBatch counts what the app gets and hands it over.
func (c *Client) deliverBatch(room string, b *proto.Batch, replay bool) {
	c.stats.add(cReliable, len(b.Reliable))
	c.stats.add(cLossy, len(b.Lossy))
	c.emit(Event{Kind: EventBatch, Room: room, Batch: b, Replay: replay})
}

func (c *Client) onBatch(s *session, b *proto.Batch) {
	c.stats.add(cBatches, 1)
	c.mu.Lock()
	r := c.rooms[b.Room]
	if r == nil {
		c.mu.Unlock()
		c.stats.add(cNotJoined, 1) // left, or a join that was given up
		return
	}
	if b.HasOnline {
		r.online = b.Online
	}
	out := r.tr.batch(b)
	res := c.dueResume(r, time.Now())
	c.mu.Unlock()
	if res != nil {
		_ = s.send(res) // a failed send ends the session; the next one resumes
	}
	if out != nil {
		c.deliverBatch(b.Room, out, false)
	}
}

func (c *Client) onJoined(s *session, m *proto.Joined) {
	c.mu.Lock()
	r := c.rooms[m.Room]
	ok := r != nil && r.joinID == m.ID && !r.tr.based
	var pre []*proto.Batch
	var res *proto.Resume
	if ok {
		r.online = m.State.Online
		pre = r.tr.join(m.State.Epoch, m.State.Seq)
		res = c.dueResume(r, time.Now())
	}
	c.mu.Unlock()
	// The caller first: a Join waiting in the goroutine that drains Events
	// must not wait behind the events below.
	s.deliver(m.ID, m)
	if !ok {
		return
	}
	if res != nil {
		_ = s.send(res)
	}
	c.emit(Event{Kind: EventState, Room: m.Room, State: &m.State})
	for _, b := range pre {
		c.deliverBatch(m.Room, b, false)
	}
}

func (c *Client) onResumed(s *session, m *proto.Resumed) {
	now := time.Now()
	c.mu.Lock()
	r := c.rooms[m.Room]
	if r == nil || r.resumeID != m.ID {
		c.mu.Unlock() // left meanwhile, or the answer to a resume already sent again
		return
	}
	r.resumeID, r.stale = 0, false
	_, before := r.tr.position()
	replay, rebased := r.tr.resumed(m)
	epoch, after := r.tr.position()
	if rebased != nil {
		c.stats.add(cRebased, 1)
		r.online = rebased.Online
	} else {
		c.stats.add(cRecovered, 1)
	}
	if r.tr.gap() && rebased == nil && after == before {
		c.resumeFailed(r, now) // no progress: do not spin, ask again later
	} else {
		r.resumeFails, r.resumeAt = 0, time.Time{}
	}
	res := c.dueResume(r, now)
	c.mu.Unlock()
	if res != nil {
		_ = s.send(res)
	}
	c.emit(Event{Kind: EventResumed, Room: m.Room, Recovered: rebased == nil})
	if rebased != nil {
		c.emit(Event{Kind: EventState, Room: m.Room, State: rebased, Rejoined: true})
	}
	if len(replay) > 0 {
		c.deliverBatch(m.Room, &proto.Batch{Room: m.Room, Epoch: epoch, Reliable: replay}, true)
	}
}

func (c *Client) onError(s *session, m *proto.Error) {
	err := codeErr(m.Code, m.Message)
	if m.ID == 0 {
		if m.Code == proto.CodeKicked {
			s.kicked = err // an operator's decision: do not come back by ourselves
		}
		c.emit(Event{Kind: EventError, Room: m.Room, Err: err})
		return
	}
	if s.deliver(m.ID, m) {
		return
	}
	// Not a call: maybe a resume the server refused.
	c.mu.Lock()
	var left *room
	for name, r := range c.rooms {
		if r.resumeID != m.ID {
			continue
		}
		r.resumeID = 0
		if retryable(m.Code) {
			c.resumeFailed(r, time.Now())
		} else {
			delete(c.rooms, name)
			left = r
		}
		break
	}
	c.mu.Unlock()
	if left != nil {
		c.emit(Event{Kind: EventLeft, Room: left.name, Err: fmt.Errorf("resume room %q: %w", left.name, err)})
	}
}

func (c *Client) onPong(s *session, m *proto.Pong) {
	if m.ID != 0 && m.ID == s.pingID.Load() {
		c.stats.rtt.Store(int64(time.Since(time.Unix(0, s.pingAt.Load()))))
	}
	if len(m.Online) == 0 {
		return
	}
	c.mu.Lock()
	for _, rc := range m.Online {
		if r := c.rooms[rc.Room]; r != nil {
			r.online = rc.Online
		}
	}
	c.mu.Unlock()
}

// retryable reports codes after which the same request may succeed later.
func retryable(code proto.Code) bool {
	switch code {
	case proto.CodeUnavailable, proto.CodeRateLimited, proto.CodeTimeout, proto.CodeInternal,
		proto.CodeShutdown, proto.CodeServerFull:
		return true
	}
	return false
}
