package edge

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/danmaku/danmaku/room/auth"
	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

var testSecret = []byte("edge-test-secret")

// loopBus is the test double of the remote owner: it answers joins with
// Joined (or an Error for rooms in joinErr), resumes with Resumed, and
// chats, likes and gifts with an Ack, through Server.DeliverReply — what
// fanout.Node does across NATS.
type loopBus struct {
	s *Server

	mu       sync.Mutex
	watches  map[string]int
	unwatch  map[string]int
	forwards int
	joinErr  map[string]proto.Code
	block    chan struct{} // when set, Forward waits on it
	fwdErr   error         // when set, Forward fails with it
	watchErr error         // when set, Watch fails with it
}

func newLoopBus() *loopBus {
	return &loopBus{watches: map[string]int{}, unwatch: map[string]int{}, joinErr: map[string]proto.Code{}}
}

func (b *loopBus) Watch(room string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.watchErr != nil {
		return b.watchErr
	}
	b.watches[room]++
	return nil
}

func (b *loopBus) Unwatch(room string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unwatch[room]++
}

func (b *loopBus) counts(room string) (watches, unwatches int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.watches[room], b.unwatch[room]
}

func (b *loopBus) set(fn func(b *loopBus)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fn(b)
}

func (b *loopBus) Forward(in *manager.Inbound) error {
	b.mu.Lock()
	b.forwards++
	block, errCode, fwdErr := b.block, b.joinErr[proto.RoomOf(in.Msg)], b.fwdErr
	b.mu.Unlock()
	if block != nil {
		<-block
	}
	if fwdErr != nil {
		return fwdErr
	}
	var reply proto.Message
	switch m := in.Msg.(type) {
	case *proto.Join:
		if errCode != "" {
			reply = &proto.Error{ID: m.ID, Code: errCode, Room: m.Room}
		} else {
			reply = &proto.Joined{ID: m.ID, Room: m.Room, State: proto.RoomState{Epoch: "e1", Online: 1}}
		}
	case *proto.Resume:
		reply = &proto.Resumed{ID: m.ID, Room: m.Room, Recovered: true, Epoch: m.Epoch, Seq: m.Seq}
	case *proto.Chat, *proto.Like, *proto.Gift:
		reply = &proto.Ack{ID: requestID(m), MsgID: 7}
	default:
		return fmt.Errorf("loopBus: unexpected %T", m)
	}
	b.s.DeliverReply(manager.Reply{Node: in.Node, Session: in.Session, Body: proto.Encode(reply)})
	return nil
}

// testConfig is a config for one test server on a random port.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Loops = 2
	cfg.Secret = testSecret
	cfg.NodeID = "test-node"
	cfg.MaxConnsPerIP = 0
	cfg.AcceptRate = 0
	return cfg
}

// startServer runs a server until the test ends.
func startServer(t testing.TB, mutate func(*Config)) (*Server, *loopBus) {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	bus := newLoopBus()
	s, err := New(cfg, bus, WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	bus.s = s
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(context.Background()) }()
	select {
	case <-s.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	require.NotNil(t, s.Addr(), "server failed to bind")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.Stop(ctx))
		require.NoError(t, <-runErr)
	})
	return s, bus
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: "+msg, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func token(t testing.TB, user string, role proto.Role, rooms ...string) string {
	t.Helper()
	tk, err := auth.Sign(testSecret, user, "Name "+user, role, rooms, time.Hour)
	require.NoError(t, err)
	return tk
}

// client speaks the protocol over TCP or WebSocket.
type client struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
	ws   bool
	fr   *proto.FrameReader
	id   uint32
}

const readTimeout = 5 * time.Second

func dialTCP(t testing.TB, s *Server) *client {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = conn.Write(proto.Preamble[:])
	require.NoError(t, err)
	return &client{t: t, conn: conn, fr: proto.NewFrameReader(conn, proto.MaxServerFrame)}
}

func dialWS(t testing.TB, s *Server) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, "ws://"+s.Addr().String()+"/ws")
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	if br == nil {
		br = bufio.NewReader(conn)
	}
	return &client{t: t, conn: conn, br: br, ws: true}
}

func dial(t testing.TB, s *Server, ws bool) *client {
	if ws {
		return dialWS(t, s)
	}
	return dialTCP(t, s)
}

func (c *client) sendBody(body []byte) error {
	if c.ws {
		return ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewBinaryFrame(body)))
	}
	_, err := c.conn.Write(proto.AppendFrame(nil, body))
	return err
}

func (c *client) send(m proto.Message) {
	c.t.Helper()
	require.NoError(c.t, c.sendBody(proto.Encode(m)))
}

// errClosedByServer is what read returns after a WebSocket close frame.
type errClosedByServer struct{ status ws.StatusCode }

func (e errClosedByServer) Error() string { return fmt.Sprintf("close frame %d", e.status) }

// readBody returns the next frame body from the server.
func (c *client) readBody() ([]byte, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(readTimeout))
	if !c.ws {
		b, err := c.fr.Next()
		return append([]byte(nil), b...), err
	}
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return nil, err
		}
		if h.Masked {
			return nil, errors.New("server frame masked")
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, p); err != nil {
			return nil, err
		}
		switch h.OpCode {
		case ws.OpBinary:
			if !h.Fin {
				return nil, errors.New("server frame fragmented")
			}
			return p, nil
		case ws.OpClose:
			st := ws.StatusCode(0)
			if len(p) >= 2 {
				st = ws.StatusCode(binary.BigEndian.Uint16(p))
			}
			return nil, errClosedByServer{st}
		default:
			return nil, fmt.Errorf("unexpected opcode %v", h.OpCode)
		}
	}
}

func (c *client) read() proto.Message {
	c.t.Helper()
	b, err := c.readBody()
	require.NoError(c.t, err)
	m, err := proto.Decode(b)
	require.NoError(c.t, err)
	return m
}

// expect reads until a message of type T, skipping others (batches, pongs).
func expect[T proto.Message](c *client) T {
	c.t.Helper()
	for {
		m := c.read()
		if v, ok := m.(T); ok {
			return v
		}
	}
}

// expectClosed reads until the server closes the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	for {
		_, err := c.readBody()
		if err != nil {
			var ne net.Error
			require.False(c.t, errors.As(err, &ne) && ne.Timeout(), "server did not close the connection")
			return
		}
	}
}

// expectError reads until an Error frame, checks its code, then expects the
// connection to close when fatal.
func (c *client) expectError(code proto.Code, fatal bool) *proto.Error {
	c.t.Helper()
	e := expect[*proto.Error](c)
	require.Equal(c.t, code, e.Code, "error frame %+v", e)
	if fatal {
		c.expectClosed()
	}
	return e
}

func (c *client) nextID() uint32 { c.id++; return c.id }

func (c *client) hello(tk string) *proto.Welcome {
	c.t.Helper()
	c.send(&proto.Hello{ID: c.nextID(), Version: proto.Version, SDK: "test", SDKVersion: "1", Platform: "linux", Token: tk})
	return expect[*proto.Welcome](c)
}

func (c *client) join(room string) *proto.Joined {
	c.t.Helper()
	c.send(&proto.Join{ID: c.nextID(), Room: room})
	return expect[*proto.Joined](c)
}

// batch builds an Emitted for room holding one reliable (gift) entry with
// seq, or one lossy chat entry when seq is 0.
func batch(room string, tick, seq uint64, online int64) *manager.Emitted {
	b := &proto.Batch{Room: room, Tick: tick, ServerTS: time.Now().UnixMilli(), Epoch: "e1"}
	if seq > 0 {
		b.Reliable = []proto.Entry{{Kind: proto.KindGift, Seq: seq, Gift: "rose", Count: 1}}
	} else {
		b.Lossy = []proto.Entry{{Kind: proto.KindChat, Text: "hi"}}
	}
	if online >= 0 {
		b.HasOnline, b.Online = true, online
	}
	return &manager.Emitted{Room: room, Tick: tick, Body: proto.Encode(b), Reliable: seq > 0,
		FirstSeq: seq, LastSeq: seq, Online: online, At: time.Now().UnixNano()}
}

// transports runs fn for each transport as a subtest.
func transports(t *testing.T, fn func(t *testing.T, ws bool)) {
	for _, tr := range []struct {
		name string
		ws   bool
	}{{"tcp", false}, {"ws", true}} {
		t.Run(tr.name, func(t *testing.T) { fn(t, tr.ws) })
	}
}
