package client

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// Maintenance tick bounds: the loop wakes often enough to ping on time and
// notice a dead server within a fraction of an interval, and at most once a
// second so thousands of idle clients in one bench process stay cheap.
const (
	minTick = 10 * time.Millisecond
	maxTick = time.Second
)

// backoff is the full-jitter delay of attempt n (from 0): uniform in
// [0, min(max, base·2^n)).
func backoff(base, max time.Duration, n int) time.Duration {
	ceil := max
	if n < 32 {
		if d := base << n; d > 0 && d < max {
			ceil = d
		}
	}
	return time.Duration(rand.Int64N(int64(ceil)))
}

// run is the client's supervisor: it serves one connection at a time and
// reconnects with backoff until Close or a permanent failure.
func (c *Client) run(s *session) {
	defer c.wg.Done()
	defer func() {
		if c.events != nil {
			close(c.events) // every sender (this loop, the readers) has stopped
		}
	}()
	c.start(s, nil) // attached by Dial
	attempt := 0    // backoff exponent, reset by a connection that lasted
	for {
		err := c.serve(s)
		c.drop(s, err)
		if c.isClosing() {
			return
		}
		c.log.Debug("danmaku: connection lost", "err", err, "session", s.welcome.Session)
		c.emit(Event{Kind: EventDisconnected, Err: err})
		if s.kicked != nil {
			c.stop(fmt.Errorf("removed by an operator: %w", s.kicked))
			return
		}
		if time.Since(s.started) >= c.cfg.BackoffMax {
			attempt = 0
		}
		wait := s.reconnectAfter
		var lastErr error
		for failures := 0; ; failures++ {
			if n := c.cfg.MaxReconnectAttempts; n > 0 && failures >= n {
				c.stop(fmt.Errorf("gave up after %d reconnect attempts: %w", n, lastErr))
				return
			}
			delay := wait + backoff(c.cfg.BackoffBase, c.cfg.BackoffMax, attempt)
			wait = 0
			attempt++
			c.emit(Event{Kind: EventReconnecting, Attempt: failures + 1, Delay: delay, Err: lastErr})
			if c.pause(c.ctx, delay) != nil {
				return
			}
			ns, err := c.connect(c.ctx)
			if err == nil {
				s = ns
				break
			}
			if c.isClosing() {
				return
			}
			if c.permanent(err) {
				c.stop(err)
				return
			}
			lastErr = err
			c.log.Debug("danmaku: reconnect failed", "attempt", failures+1, "err", err)
		}
		c.stats.add(cReconnects, 1)
		resumes := c.attach(s)
		c.emit(Event{Kind: EventReconnected})
		c.start(s, resumes)
	}
}

// permanent reports a refusal that retrying cannot fix.
func (c *Client) permanent(err error) bool {
	if errors.Is(err, proto.CodeBadVersion) {
		return true
	}
	// Without a TokenSource the same token would be refused again.
	return c.cfg.TokenSource == nil &&
		(errors.Is(err, proto.CodeUnauthorized) || errors.Is(err, proto.CodeTokenExpired))
}

// stop ends the client after a permanent failure.
func (c *Client) stop(err error) {
	c.log.Warn("danmaku: client stopped", "err", err)
	c.emit(Event{Kind: EventClosed, Err: err})
	c.shutdown(err)
}

// attach makes s the current connection and returns the resumes of every
// joined room on it (none on the first connection).
func (c *Client) attach(s *session) []*proto.Resume {
	now := time.Now()
	var resumes []*proto.Resume
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sess, c.welcome = s, *s.welcome
	close(c.ready)
	for _, r := range c.rooms {
		if !r.tr.based {
			continue // a join racing the reconnect; it fails and removes itself
		}
		r.stale = true
		r.resumeAt = time.Time{}
		resumes = append(resumes, c.resumeLocked(r, now))
	}
	return resumes
}

// start begins reading s and sends the resumes attach returned.
func (c *Client) start(s *session, resumes []*proto.Resume) {
	c.wg.Add(1)
	go c.readLoop(s)
	for _, m := range resumes {
		if s.send(m) != nil {
			return // the session is over; the next one resumes
		}
	}
}

// serve runs the heartbeat and resume timers of s until it ends.
func (c *Client) serve(s *session) error {
	t := time.NewTicker(min(max(s.pingEvery/4, minTick), maxTick))
	defer t.Stop()
	for {
		select {
		case <-s.dead:
			return s.cause()
		case <-c.closing:
			s.fail(ErrClosed)
			<-s.dead
			return ErrClosed
		case now := <-t.C:
			c.maintain(s, now)
		}
	}
}

// maintain pings, declares a silent server dead, and (re)sends resumes that
// are due: unanswered for ResumeTimeout, or waiting out a failed one.
func (c *Client) maintain(s *session, now time.Time) {
	if w := s.waiting.Load(); w != 0 && now.Sub(time.Unix(0, w)) > s.deadAfter {
		s.fail(errHeartbeat)
		return
	}
	if now.Sub(s.lastPing) >= s.pingEvery {
		s.lastPing = now
		id := c.newID()
		s.pingID.Store(id)
		s.pingAt.Store(now.UnixNano())
		if s.send(&proto.Ping{ID: id}) != nil {
			return
		}
	}
	var resumes []*proto.Resume
	c.mu.Lock()
	for _, r := range c.rooms {
		if r.resumeID != 0 && now.Sub(r.resumeSent) > c.cfg.ResumeTimeout {
			r.resumeID = 0 // unanswered: ask again (a late answer is ignored)
		}
		if m := c.dueResume(r, now); m != nil {
			resumes = append(resumes, m)
		}
	}
	c.mu.Unlock()
	for _, m := range resumes {
		if s.send(m) != nil {
			return
		}
	}
}

// dueResume returns the resume r needs now, if any. Caller holds c.mu.
func (c *Client) dueResume(r *room, now time.Time) *proto.Resume {
	if !r.tr.based || r.resumeID != 0 || !(r.stale || r.tr.gap()) || now.Before(r.resumeAt) {
		return nil
	}
	return c.resumeLocked(r, now)
}

// resumeLocked builds a resume from r's position. Caller holds c.mu.
func (c *Client) resumeLocked(r *room, now time.Time) *proto.Resume {
	r.resumeID, r.resumeSent = c.newID(), now
	c.stats.add(cResumes, 1)
	epoch, seq := r.tr.position()
	return &proto.Resume{ID: r.resumeID, Room: r.name, Epoch: epoch, Seq: seq}
}

// resumeFailed delays r's next resume after a refused or fruitless one.
// Caller holds c.mu.
func (c *Client) resumeFailed(r *room, now time.Time) {
	r.resumeAt = now.Add(backoff(c.cfg.BackoffBase, c.cfg.BackoffMax, r.resumeFails))
	r.resumeFails++
}

// drop forgets s after it ended: its requests have failed; rooms whose join
// was in flight are gone (Join returns the error), the others wait for the
// next connection's resume.
func (c *Client) drop(s *session, err error) {
	s.fail(err)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == s {
		c.sess = nil
		c.ready = make(chan struct{})
	}
	for name, r := range c.rooms {
		r.resumeID = 0
		if !r.tr.based {
			delete(c.rooms, name)
		}
	}
}
