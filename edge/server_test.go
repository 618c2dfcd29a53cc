package edge

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/danmaku/danmaku/room/proto"
)

func TestMain(m *testing.M) {
	if helperClientMain() {
		return
	}
	goleak.VerifyTestMain(m,
		// gnet's package-level goroutine pool (ants) lives for the process.
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
	)
}

// TestRoundTrip: hello → welcome, join → joined, chat → ack, batches reach
// two members on each transport, pong carries the online count.
func TestRoundTrip(t *testing.T) {
	s, bus := startServer(t, nil)
	var members []*client
	for _, useWS := range []bool{false, true, false, true} {
		c := dial(t, s, useWS)
		w := c.hello(token(t, "u1", proto.RoleViewer))
		require.Equal(t, "u1", w.User)
		require.Equal(t, proto.RoleViewer, w.Role)
		require.Equal(t, "test-node", w.Node)
		require.True(t, strings.HasPrefix(w.Session, "test-node-"), w.Session)
		require.Equal(t, 25000, w.Heartbeat)
		require.Equal(t, proto.MaxClientFrame, w.Limits.MaxFrame)
		j := c.join("r1")
		require.Equal(t, "r1", j.Room)
		members = append(members, c)
	}
	w, _ := bus.counts("r1")
	require.Equal(t, 1, w, "one watch per node, not per member")

	for _, c := range members {
		id := c.nextID()
		c.send(&proto.Chat{ID: id, Room: "r1", Text: "hello"})
		ack := expect[*proto.Ack](c)
		require.Equal(t, id, ack.ID)
		require.Equal(t, proto.CodeOK, ack.Code)
		require.Equal(t, uint64(7), ack.MsgID)
	}

	for i := uint64(1); i <= 3; i++ {
		s.DeliverBatch(batch("r1", i, i, 42))
	}
	for _, c := range members {
		for i := uint64(1); i <= 3; i++ {
			b := expect[*proto.Batch](c)
			require.Equal(t, i, b.Tick)
			require.Equal(t, i, b.Reliable[0].Seq)
		}
		id := c.nextID()
		c.send(&proto.Ping{ID: id})
		p := expect[*proto.Pong](c)
		require.Equal(t, id, p.ID)
		require.Equal(t, []proto.RoomCount{{Room: "r1", Online: 42}}, p.Online)
	}
	s.SetOnline("r1", 99)
	members[0].send(&proto.Ping{ID: 100})
	require.Equal(t, int64(99), expect[*proto.Pong](members[0]).Online[0].Online)

	n := 0
	s.LocalCounts(func(room string, c int) {
		require.Equal(t, "r1", room)
		n = c
	})
	require.Equal(t, 4, n)
	st := s.Stats()
	require.EqualValues(t, 2, st.ConnsTCP)
	require.EqualValues(t, 2, st.ConnsWS)
	require.EqualValues(t, 4, st.Members)
	require.EqualValues(t, 3, st.BatchesDelivered)
}

func TestLeaveUnwatchesAndResume(t *testing.T) {
	s, bus := startServer(t, nil)
	transports(t, func(t *testing.T, useWS bool) {
		c := dial(t, s, useWS)
		c.hello(token(t, "u1", proto.RoleViewer))
		room := "room-" + map[bool]string{false: "tcp", true: "ws"}[useWS]
		c.send(&proto.Resume{ID: 5, Room: room, Epoch: "e1", Seq: 10})
		r := expect[*proto.Resumed](c)
		require.True(t, r.Recovered)
		require.Equal(t, uint32(5), r.ID)

		c.send(&proto.Leave{ID: 6, Room: room})
		ack := expect[*proto.Ack](c)
		require.Equal(t, uint32(6), ack.ID)
		require.Equal(t, proto.CodeOK, ack.Code)
		eventually(t, 5*time.Second, func() bool { _, u := bus.counts(room); return u == 1 }, "unwatch after the last leave")

		c.send(&proto.Leave{ID: 7, Room: room})
		require.Equal(t, proto.CodeNotJoined, expect[*proto.Ack](c).Code)
		c.send(&proto.Chat{ID: 8, Room: room, Text: "x"})
		require.Equal(t, proto.CodeNotJoined, expect[*proto.Ack](c).Code)

		// Joining again watches again.
		c.join(room)
		eventually(t, 5*time.Second, func() bool { w, _ := bus.counts(room); return w == 2 }, "watch again")
	})
}

func TestJoinErrorRemovesMembership(t *testing.T) {
	s, bus := startServer(t, nil)
	bus.set(func(b *loopBus) { b.joinErr["closed"] = proto.CodeRoomClosed })
	c := dialTCP(t, s)
	c.hello(token(t, "u1", proto.RoleViewer))
	c.send(&proto.Join{ID: 3, Room: "closed"})
	e := c.expectError(proto.CodeRoomClosed, false)
	require.Equal(t, uint32(3), e.ID)
	eventually(t, 5*time.Second, func() bool { return s.Stats().Members == 0 }, "membership removed")
	eventually(t, 5*time.Second, func() bool { _, u := bus.counts("closed"); return u == 1 }, "unwatched")
	c.send(&proto.Chat{ID: 4, Room: "closed", Text: "x"})
	require.Equal(t, proto.CodeNotJoined, expect[*proto.Ack](c).Code)
}

func TestAuthAndRoomChecks(t *testing.T) {
	s, _ := startServer(t, func(c *Config) { c.MaxRoomsPerConn = 2 })
	transports(t, func(t *testing.T, useWS bool) {
		c := dial(t, s, useWS)
		c.hello(token(t, "u2", proto.RoleVIP, "a", "b", "c"))
		c.send(&proto.Join{ID: 1, Room: "other"})
		require.Equal(t, "other", c.expectError(proto.CodeForbidden, false).Room)
		c.send(&proto.Join{ID: 2, Room: "bad room!"})
		c.expectError(proto.CodeBadRequest, false)
		c.join("a")
		c.join("b")
		c.send(&proto.Join{ID: 9, Room: "c"})
		c.expectError(proto.CodeBadRequest, false) // MaxRoomsPerConn
		c.send(&proto.Like{ID: 10, Room: "a", Count: 0})
		require.Equal(t, proto.CodeBadRequest, expect[*proto.Ack](c).Code)
		c.send(&proto.Gift{ID: 11, Room: "a", Gift: "rose", Count: 1, Key: "k1"})
		require.Equal(t, proto.CodeOK, expect[*proto.Ack](c).Code)
	})
}

func TestGuests(t *testing.T) {
	t.Run("read-only", func(t *testing.T) {
		s, _ := startServer(t, func(c *Config) { c.Guests = true })
		transports(t, func(t *testing.T, useWS bool) {
			c := dial(t, s, useWS)
			w := c.hello("")
			require.Equal(t, proto.RoleGuest, w.Role)
			require.True(t, strings.HasPrefix(w.User, "guest-"), w.User)
			c.join("r1")
			c.send(&proto.Chat{ID: 50, Room: "r1", Text: "hi"})
			ack := expect[*proto.Ack](c)
			require.Equal(t, proto.CodeForbidden, ack.Code)
			s.DeliverBatch(batch("r1", 1, 1, -1))
			require.Equal(t, uint64(1), expect[*proto.Batch](c).Tick)
		})
	})
	t.Run("disabled", func(t *testing.T) {
		s, _ := startServer(t, nil)
		c := dialTCP(t, s)
		c.send(&proto.Hello{ID: 1, Version: proto.Version})
		c.expectError(proto.CodeUnauthorized, true)
	})
}

func TestKickAndNotice(t *testing.T) {
	s, _ := startServer(t, nil)
	a, b, other := dialTCP(t, s), dialWS(t, s), dialTCP(t, s)
	a.hello(token(t, "bad", proto.RoleViewer))
	b.hello(token(t, "bad", proto.RoleViewer))
	other.hello(token(t, "good", proto.RoleViewer))
	a.join("r1")
	other.join("r1")

	s.Notice(&proto.Notice{Text: "maintenance at 5", Level: "info"})
	for _, c := range []*client{a, b, other} {
		require.Equal(t, "maintenance at 5", expect[*proto.Notice](c).Text)
	}

	require.Equal(t, 1, s.Kick("bad", "r1", ""), "only the connection in r1")
	require.Equal(t, "r1", a.expectError(proto.CodeKicked, true).Room)
	require.Equal(t, 1, s.Kick("bad", "", proto.CodeBanned))
	b.expectError(proto.CodeBanned, true)
	other.send(&proto.Ping{ID: 1})
	expect[*proto.Pong](other)
	require.Equal(t, 0, s.Kick("nobody", "", ""))
	require.EqualValues(t, 2, s.Stats().Closes["kicked"])
}

func TestDrain(t *testing.T) {
	cfg := testConfig()
	cfg.DrainTimeout = 2 * time.Second
	cfg.DrainJitter = 500 * time.Millisecond
	bus := newLoopBus()
	s, err := New(cfg, bus, WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	bus.s = s
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(context.Background()) }()
	<-s.Ready()

	var polite []*client
	for _, useWS := range []bool{false, true, false} {
		c := dial(t, s, useWS)
		c.hello(token(t, "u", proto.RoleViewer))
		polite = append(polite, c)
	}
	stubborn := dialWS(t, s)
	stubborn.hello(token(t, "s", proto.RoleViewer))
	pending := dialTCP(t, s) // no hello yet: closed at once
	eventually(t, 5*time.Second, func() bool { return s.Stats().Conns == 5 }, "all five admitted before the drain")

	drained := make(chan error, 1)
	go func() { drained <- s.Drain(context.Background()) }()
	for _, c := range polite {
		r := expect[*proto.Reconnect](c)
		require.Equal(t, proto.CodeShutdown, r.Reason)
		require.GreaterOrEqual(t, r.RetryAfter, 0)
		require.Less(t, r.RetryAfter, 500)
		c.conn.Close()
	}
	require.Equal(t, proto.CodeShutdown, expect[*proto.Reconnect](stubborn).Reason)
	pending.expectClosed()
	require.True(t, s.Draining())

	require.NoError(t, <-drained)
	require.NoError(t, <-runErr)
	stubborn.expectClosed()
	st := s.Stats()
	require.EqualValues(t, 2, st.Closes["drain"], "the stubborn one at the deadline and the pending one: %v", st.Closes)
	require.EqualValues(t, 0, st.Conns)
}

func TestStopViaContext(t *testing.T) {
	cfg := testConfig()
	bus := newLoopBus()
	s, err := New(cfg, bus, WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	bus.s = s
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()
	<-s.Ready()
	c := dialTCP(t, s)
	c.hello(token(t, "u", proto.RoleViewer))
	cancel()
	require.NoError(t, <-runErr)
	c.expectClosed()
	require.EqualValues(t, 1, s.Stats().Closes["stopped"])
}

func TestConfigValidate(t *testing.T) {
	good := testConfig()
	require.NoError(t, good.Validate())
	cases := map[string]func(*Config){
		"Addr":           func(c *Config) { c.Addr = "nope" },
		"Loops":          func(c *Config) { c.Loops = 1000 },
		"HardCap":        func(c *Config) { c.HardCap = c.SoftCap },
		"Secret":         func(c *Config) { c.Secret = nil },
		"NodeID":         func(c *Config) { c.NodeID = "a.b" },
		"MaxClientFrame": func(c *Config) { c.MaxClientFrame = 1 },
		"ForwardWorkers": func(c *Config) { c.ForwardWorkers = 0 },
		"ConnRate":       func(c *Config) { c.ConnRate = 0 },
	}
	for field, mutate := range cases {
		cfg := testConfig()
		mutate(&cfg)
		err := cfg.Validate()
		require.Error(t, err, field)
		require.Contains(t, err.Error(), field)
	}
	cfg := testConfig()
	cfg.MaxConns = 1 << 30
	_, err := New(cfg, newLoopBus())
	require.ErrorContains(t, err, "MaxConns")
	cfg.MaxConns = 0
	s, err := New(cfg, newLoopBus())
	require.NoError(t, err)
	require.Greater(t, s.MaxConns(), 0)
}

func TestMetricsRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(testConfig(), newLoopBus(), WithRegisterer(reg))
	require.NoError(t, err)
	s.DeliverBatch(batch("r", 1, 1, -1)) // counted as no_members
	families, err := reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, want := range []string{"danmaku_edge_accepts_total", "danmaku_edge_connections", "danmaku_edge_drops_total",
		"danmaku_edge_fanout_batches_delivered_total", "danmaku_edge_rooms", "danmaku_edge_outbound_buffered_bytes"} {
		require.True(t, names[want], want)
	}
	_, err = New(testConfig(), newLoopBus(), WithRegisterer(reg))
	require.Error(t, err, "a second server on the same registry is refused, not a panic")
}
