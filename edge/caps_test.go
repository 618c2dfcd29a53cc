package edge

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/danmaku/danmaku/room/proto"
)

// TestConnectionCap: with MaxConns=50 the 51st..60th connections are closed
// and counted, the first 50 keep working, and the engine keeps accepting once
// there is room again.
func TestConnectionCap(t *testing.T) {
	s, _ := startServer(t, func(c *Config) { c.MaxConns = 50 })
	var ok []*client
	for i := range 50 {
		c := dial(t, s, i%2 == 1)
		c.hello(token(t, "u", proto.RoleViewer))
		ok = append(ok, c)
	}
	for range 10 {
		conn := rawConn(t, s)
		_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
		_, err := conn.Read(make([]byte, 1))
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "refused connection left open")
		require.Error(t, err)
	}
	eventually(t, 5*time.Second, func() bool { return s.Stats().Rejects["server_full"] == 10 }, "10 refusals counted")
	for i, c := range ok {
		c.send(&proto.Ping{ID: uint32(i + 1)})
		require.Equal(t, uint32(i+1), expect[*proto.Pong](c).ID)
	}
	ok[0].conn.Close()
	eventually(t, 5*time.Second, func() bool { return s.Stats().Conns == 49 }, "slot freed")
	c := dialTCP(t, s)
	c.hello(token(t, "late", proto.RoleViewer))
	require.EqualValues(t, 50, s.Stats().Conns)
}

func TestPerIPAndAcceptRate(t *testing.T) {
	t.Run("per ip", func(t *testing.T) {
		s, _ := startServer(t, func(c *Config) { c.MaxConnsPerIP = 3 })
		for range 3 {
			dialTCP(t, s).hello(token(t, "u", proto.RoleViewer))
		}
		conn := rawConn(t, s)
		_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
		_, err := conn.Read(make([]byte, 1))
		require.Error(t, err)
		eventually(t, 5*time.Second, func() bool { return s.Stats().Rejects["per_ip"] == 1 }, "per_ip counted")
		// Another source address is not affected.
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
		other, err := d.Dial("tcp", s.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { other.Close() })
		_, err = other.Write(proto.Preamble[:])
		require.NoError(t, err)
		c := &client{t: t, conn: other, fr: proto.NewFrameReader(other, proto.MaxServerFrame)}
		c.hello(token(t, "v", proto.RoleViewer))
	})
	t.Run("accept rate", func(t *testing.T) {
		s, _ := startServer(t, func(c *Config) { c.AcceptRate = 5 })
		for range 12 {
			rawConn(t, s)
		}
		eventually(t, 5*time.Second, func() bool { return s.Stats().Rejects["accept_rate"] > 0 }, "accept_rate counted")
		t.Logf("accept_rate rejects: %d of 12", s.Stats().Rejects["accept_rate"])
	})
}

// TestSlowloris: connections that stop halfway through the handshake, or
// never say hello, are closed at HandshakeTimeout; a good one is not.
func TestSlowloris(t *testing.T) {
	s, _ := startServer(t, func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	good := dialWS(t, s)
	good.hello(token(t, "good", proto.RoleViewer))

	silent := rawConn(t, s)
	halfHTTP := rawConn(t, s)
	_, err := halfHTTP.Write([]byte("GET /ws HTTP/1.1\r\nHost: edge\r\nUpgr"))
	require.NoError(t, err)
	halfPreamble := rawConn(t, s)
	_, err = halfPreamble.Write([]byte("DM"))
	require.NoError(t, err)
	noHelloTCP := dialTCP(t, s)
	noHelloWS := rawWS(t, s)

	for _, conn := range []net.Conn{silent, halfHTTP, halfPreamble} {
		_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
		_, err := conn.Read(make([]byte, 1))
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "not closed")
	}
	noHelloTCP.expectError(proto.CodeTimeout, true)
	noHelloWS.expectError(proto.CodeTimeout, true)
	require.EqualValues(t, 5, s.Stats().Closes["handshake_timeout"])
	good.send(&proto.Ping{ID: 5})
	expect[*proto.Pong](good)
}

func TestHeartbeat(t *testing.T) {
	s, _ := startServer(t, func(c *Config) { c.Heartbeat = 200 * time.Millisecond })
	silent := dialTCP(t, s)
	w := silent.hello(token(t, "silent", proto.RoleViewer))
	require.Equal(t, 200, w.Heartbeat)
	alive := dialWS(t, s)
	alive.hello(token(t, "alive", proto.RoleViewer))

	done := make(chan struct{})
	go func() {
		defer close(done)
		silent.expectError(proto.CodeTimeout, true)
	}()
	for i := 1; ; i++ {
		alive.send(&proto.Ping{ID: uint32(i)})
		require.Equal(t, uint32(i), expect[*proto.Pong](alive).ID)
		select {
		case <-done:
			require.EqualValues(t, 1, s.Stats().Closes["heartbeat_timeout"])
			return
		case <-time.After(50 * time.Millisecond): // the client's ping pace, not a wait for a condition
		}
	}
}

func TestConnRateLimit(t *testing.T) {
	s, _ := startServer(t, func(c *Config) { c.ConnRate, c.ConnBurst, c.ConnAbuse = 5, 5, 2 })
	c := dialTCP(t, s)
	c.hello(token(t, "flood", proto.RoleViewer))
	var burst []byte
	for i := range 40 {
		burst = proto.AppendFrame(burst, proto.Encode(&proto.Like{ID: uint32(100 + i), Room: "r", Count: 1}))
	}
	_, err := c.conn.Write(burst)
	require.NoError(t, err)
	limited := 0
	for {
		m := c.read()
		if a, ok := m.(*proto.Ack); ok && a.Code == proto.CodeRateLimited {
			require.Positive(t, a.RetryAfter)
			limited++
		}
		if e, ok := m.(*proto.Error); ok {
			require.Equal(t, proto.CodeRateLimited, e.Code)
			break
		}
	}
	c.expectClosed()
	require.GreaterOrEqual(t, limited, 5)
	eventually(t, 5*time.Second, func() bool { return s.Stats().Closes["rate_limited"] == 1 }, "one close for rate %+v", s.Stats().Closes)

	// WebSocket pings draw from the same budget: a ping flood is not a
	// free way to make the loop write.
	w := rawWS(t, s)
	w.hello(token(t, "pinger", proto.RoleViewer))
	var pings bytes.Buffer
	for range 40 {
		require.NoError(t, ws.WriteFrame(&pings, ws.MaskFrame(ws.NewPingFrame([]byte("p")))))
	}
	_, err = w.conn.Write(pings.Bytes())
	require.NoError(t, err)
	pongs := 0
	for {
		_ = w.conn.SetReadDeadline(time.Now().Add(readTimeout))
		h, err := ws.ReadHeader(w.br)
		require.NoError(t, err)
		p := make([]byte, h.Length)
		_, err = io.ReadFull(w.br, p)
		require.NoError(t, err)
		if h.OpCode == ws.OpPong {
			pongs++
			continue
		}
		m, err := proto.Decode(p)
		require.NoError(t, err)
		require.Equal(t, proto.CodeRateLimited, m.(*proto.Error).Code)
		break
	}
	w.expectClosed()
	require.LessOrEqual(t, pongs, 6, "pongs only within the budget")
	// The close is counted as the loop closes; the client may see it first.
	eventually(t, 5*time.Second, func() bool { return s.Stats().Closes["rate_limited"] == 2 }, "two closes for rate %+v", s.Stats().Closes)
}

func TestForwardQueueFull(t *testing.T) {
	s, bus := startServer(t, func(c *Config) { c.ForwardQueue, c.ForwardWorkers = 1, 1 })
	c := dialTCP(t, s)
	c.hello(token(t, "u", proto.RoleViewer))
	c.join("r")
	release := make(chan struct{})
	bus.set(func(b *loopBus) { b.block = release })
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	c.send(&proto.Chat{ID: 10, Room: "r", Text: "one"})
	eventually(t, 5*time.Second, func() bool {
		bus.mu.Lock()
		defer bus.mu.Unlock()
		return bus.forwards == 2
	}, "the worker took the first chat")
	c.send(&proto.Chat{ID: 11, Room: "r", Text: "two"})   // waits in the queue
	c.send(&proto.Chat{ID: 12, Room: "r", Text: "three"}) // queue full
	a := expect[*proto.Ack](c)
	require.Equal(t, uint32(12), a.ID)
	require.Equal(t, proto.CodeUnavailable, a.Code)
	require.EqualValues(t, 1, s.Stats().Drops["forward_queue_full"])
	close(release)
	got := map[uint32]proto.Code{}
	for len(got) < 2 {
		a := expect[*proto.Ack](c)
		got[a.ID] = a.Code
	}
	require.Equal(t, map[uint32]proto.Code{10: "", 11: ""}, got)
}

func TestBusFailures(t *testing.T) {
	s, bus := startServer(t, nil)
	c := dialWS(t, s)
	c.hello(token(t, "u", proto.RoleViewer))
	c.join("r")
	bus.set(func(b *loopBus) { b.fwdErr = errors.New("owner unreachable") })
	c.send(&proto.Gift{ID: 20, Room: "r", Gift: "rose", Count: 1, Key: "k"})
	a := expect[*proto.Ack](c)
	require.Equal(t, proto.CodeUnavailable, a.Code)
	require.Equal(t, uint32(20), a.ID)

	bus.set(func(b *loopBus) { b.fwdErr, b.watchErr = nil, errors.New("nats down") })
	c.send(&proto.Join{ID: 21, Room: "r2"})
	require.Equal(t, "r2", c.expectError(proto.CodeUnavailable, false).Room)
	eventually(t, 5*time.Second, func() bool { return s.Stats().Members == 1 }, "failed join undone")
	st := s.Stats()
	require.EqualValues(t, 1, st.Drops["forward_failed"])
	require.EqualValues(t, 1, st.Drops["watch_failed"])
}
