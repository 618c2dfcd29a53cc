package client_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/danmaku/danmaku/room/proto"
)

// server is a minimal in-test edge: one listener for TCP (preamble) and
// WebSocket, hello/welcome, rooms with a reliable lane (epoch, seq, history),
// gift idempotency, resume, ping/pong. Tests change its behaviour with hook
// and drive it with publish, send, kill and resetEpoch.
type server struct {
	ln net.Listener
	hb int // welcome heartbeat, ms

	mu       sync.Mutex
	conns    map[*sconn]struct{}
	rooms    map[string]*sroom
	gifts    map[string]proto.Ack // by idempotency key
	received []proto.Message      // every client message, in arrival order
	accepted int
	refuse   proto.Code // answer hello with this error
	// hook sees every client message first (without s.mu held); true means
	// handled: skip the default behaviour.
	hook func(c *sconn, m proto.Message) bool

	wg sync.WaitGroup
}

type sroom struct {
	epoch   string
	head    uint64
	history []proto.Entry // entries (first, head]; first = head - len(history)
	members map[*sconn]bool
}

type sconn struct {
	s      *server
	nc     net.Conn
	isWS   bool
	rw     io.ReadWriter
	fr     *proto.FrameReader
	wmu    sync.Mutex
	silent atomic.Bool // read and ignore everything (a hung server)
}

func startServer(hb int) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{ln: ln, hb: hb, conns: map[*sconn]struct{}{}, rooms: map[string]*sroom{}, gifts: map[string]proto.Ack{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func newServer(t *testing.T) *server {
	t.Helper()
	s, err := startServer(5000)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func (s *server) url(transport string) string {
	if transport == "ws" {
		return "ws://" + s.ln.Addr().String() + "/ws"
	}
	return "tcp://" + s.ln.Addr().String()
}

// Close stops the listener and every connection and waits for their goroutines.
func (s *server) Close() {
	s.ln.Close()
	s.killAll()
	s.wg.Wait()
}

func (s *server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := &sconn{s: s, nc: nc}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.accepted++
		s.mu.Unlock()
		s.wg.Add(1)
		go c.serve()
	}
}

func (c *sconn) serve() {
	defer c.s.wg.Done()
	defer c.kill()
	br := bufio.NewReader(c.nc)
	pre, err := br.Peek(len(proto.Preamble))
	if err != nil {
		return
	}
	c.rw = struct {
		io.Reader
		io.Writer
	}{br, lockedConn{c}} // WebSocket control replies go between data frames
	if bytes.Equal(pre, proto.Preamble[:]) {
		_, _ = br.Discard(len(pre))
		c.fr = proto.NewFrameReader(br, proto.MaxClientFrame)
	} else {
		if _, err := ws.Upgrade(c.rw); err != nil {
			return
		}
		c.isWS = true
	}
	for {
		body, err := c.read()
		if err != nil {
			return
		}
		m, err := proto.Decode(body)
		if err != nil {
			_ = c.send(&proto.Error{Code: proto.CodeBadFrame})
			return
		}
		c.s.mu.Lock()
		c.s.received = append(c.s.received, m)
		hook := c.s.hook
		c.s.mu.Unlock()
		if c.silent.Load() || (hook != nil && hook(c, m)) {
			continue
		}
		c.s.handle(c, m)
	}
}

func (c *sconn) read() ([]byte, error) {
	if !c.isWS {
		return c.fr.Next()
	}
	for {
		body, op, err := wsutil.ReadClientData(c.rw)
		if err != nil || op == ws.OpBinary {
			return body, err
		}
	}
}

type lockedConn struct{ c *sconn }

func (l lockedConn) Write(p []byte) (int, error) {
	l.c.wmu.Lock()
	defer l.c.wmu.Unlock()
	return l.c.nc.Write(p)
}

func (c *sconn) send(m proto.Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.isWS {
		return wsutil.WriteServerBinary(c.nc, proto.Encode(m))
	}
	_, err := c.nc.Write(proto.AppendMessageFrame(nil, m))
	return err
}

// kill drops the connection and its memberships at once (publishes after it
// go to history only).
func (c *sconn) kill() {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	for _, r := range c.s.rooms {
		delete(r.members, c)
	}
	c.s.mu.Unlock()
	c.nc.Close()
}

func (s *server) killAll() {
	s.mu.Lock()
	conns := make([]*sconn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.kill()
	}
}

// room returns a room, creating it in epoch "e1". Caller holds s.mu.
func (s *server) room(name string) *sroom {
	r := s.rooms[name]
	if r == nil {
		r = &sroom{epoch: "e1", members: map[*sconn]bool{}}
		s.rooms[name] = r
	}
	return r
}

// append adds e to the room's reliable lane. Caller holds s.mu.
func (r *sroom) append(e proto.Entry) proto.Entry {
	r.head++
	e.Seq = r.head
	r.history = append(r.history, e)
	return e
}

// broadcast sends b to the room's members. Caller holds s.mu.
func (r *sroom) broadcast(b *proto.Batch) {
	for c := range r.members {
		_ = c.send(b)
	}
}

// publish appends n notices to room (one batch each) and returns the last seq.
func (s *server) publish(name string, n int) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.room(name)
	for range n {
		e := r.append(proto.Entry{Kind: proto.KindNotice, Text: "notice", User: "sys", Role: proto.RoleSystem})
		r.broadcast(&proto.Batch{Room: name, Epoch: r.epoch, Reliable: []proto.Entry{e}})
	}
	return r.head
}

// announce publishes one notice with text to room.
func (s *server) announce(name, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.room(name)
	e := r.append(proto.Entry{Kind: proto.KindNotice, Text: text, User: "sys", Role: proto.RoleSystem})
	r.broadcast(&proto.Batch{Room: name, Epoch: r.epoch, Reliable: []proto.Entry{e}})
}

// resetEpoch simulates a lost ledger: a new epoch at head, no history.
func (s *server) resetEpoch(name, epoch string, head uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.room(name)
	r.epoch, r.head, r.history = epoch, head, nil
}

// entry returns a history entry of room, for scripted batches.
func (s *server) entry(name string, seq uint64) proto.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.room(name)
	return r.history[int(seq)-int(r.head)+len(r.history)-1]
}

func (s *server) handle(c *sconn, m proto.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch m := m.(type) {
	case *proto.Hello:
		if s.refuse != "" {
			_ = c.send(&proto.Error{ID: m.ID, Code: s.refuse, Message: "refused by test"})
			go c.kill()
			return
		}
		_ = c.send(&proto.Welcome{ID: m.ID, Session: fmt.Sprintf("s%d", s.accepted), Node: "test",
			User: "u1", Name: "Ann", Role: proto.RoleViewer, Heartbeat: s.hb,
			Limits: proto.Limits{MaxText: 20, MaxRooms: 8}})
	case *proto.Join:
		r := s.room(m.Room)
		r.members[c] = true
		_ = c.send(&proto.Joined{ID: m.ID, Room: m.Room, State: proto.RoomState{
			Title: m.Room, Epoch: r.epoch, Seq: r.head, Online: int64(len(r.members))}})
	case *proto.Leave:
		delete(s.room(m.Room).members, c)
		_ = c.send(&proto.Ack{ID: m.ID})
	case *proto.Chat:
		a := &proto.Ack{ID: m.ID, MsgID: 7}
		switch m.Text {
		case "sample":
			a.SampledOut = true
		case "flood":
			a = &proto.Ack{ID: m.ID, Code: proto.CodeRateLimited, Message: "slow down", RetryAfter: 1500}
		}
		_ = c.send(a)
	case *proto.Like:
		_ = c.send(&proto.Ack{ID: m.ID})
	case *proto.Gift:
		if a, ok := s.gifts[m.Key]; ok {
			a.ID, a.Duplicate = m.ID, true
			_ = c.send(&a)
			return
		}
		r := s.room(m.Room)
		e := r.append(proto.Entry{Kind: proto.KindGift, Gift: m.Gift, Count: m.Count, User: "u1"})
		a := proto.Ack{ID: m.ID, Seq: e.Seq, Epoch: r.epoch, MsgID: e.Seq}
		s.gifts[m.Key] = a
		r.broadcast(&proto.Batch{Room: m.Room, Epoch: r.epoch, Reliable: []proto.Entry{e}})
		_ = c.send(&a)
	case *proto.Resume:
		r := s.room(m.Room)
		r.members[c] = true
		first := r.head - uint64(len(r.history))
		if m.Epoch == r.epoch && m.Seq >= first && m.Seq <= r.head {
			_ = c.send(&proto.Resumed{ID: m.ID, Room: m.Room, Recovered: true, Epoch: r.epoch, Seq: r.head,
				Entries: r.history[m.Seq-first:]})
			return
		}
		_ = c.send(&proto.Resumed{ID: m.ID, Room: m.Room, Epoch: r.epoch, Seq: r.head,
			State: &proto.RoomState{Title: m.Room, Epoch: r.epoch, Seq: r.head, Online: int64(len(r.members))}})
	case *proto.Ping:
		p := &proto.Pong{ID: m.ID, ServerTime: time.Now().UnixMilli()}
		for name, r := range s.rooms {
			if r.members[c] {
				p.Online = append(p.Online, proto.RoomCount{Room: name, Online: 42})
			}
		}
		_ = c.send(p)
	}
}

// got returns the client messages of type T received so far.
func got[T proto.Message](s *server) []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []T
	for _, m := range s.received {
		if t, ok := m.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

func (s *server) setHeartbeat(ms int) {
	s.mu.Lock()
	s.hb = ms
	s.mu.Unlock()
}

func (s *server) setRefuse(code proto.Code) {
	s.mu.Lock()
	s.refuse = code
	s.mu.Unlock()
}

func (s *server) setHook(h func(c *sconn, m proto.Message) bool) {
	s.mu.Lock()
	s.hook = h
	s.mu.Unlock()
}

func (s *server) acceptedConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// only returns the one live connection (tests with a single client).
func (s *server) only(t *testing.T) *sconn {
	t.Helper()
	c := s.onlyConn()
	if c == nil {
		t.Fatal("no connection")
	}
	return c
}

// onlyConn waits for the one live connection (benchmarks).
func (s *server) onlyConn() *sconn {
	var c *sconn
	_ = poll(5*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for k := range s.conns {
			c = k
		}
		return len(s.conns) == 1
	})
	return c
}

var errTimeout = errors.New("condition not met in time")

// eventually polls cond until it holds or 5 s pass.
func eventually(t testing.TB, cond func() bool) {
	t.Helper()
	if err := poll(5*time.Second, cond); err != nil {
		t.Fatal(err)
	}
}

func poll(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return errTimeout
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
