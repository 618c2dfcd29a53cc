package edge

import (
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// dialTCPSmallWindow dials with a 4 KiB receive buffer, so a client that does
// not read backs up into the server's outbound buffer quickly.
func dialTCPSmallWindow(t *testing.T, s *Server) *client {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", s.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = conn.Write(proto.Preamble[:])
	require.NoError(t, err)
	return &client{t: t, conn: conn, fr: proto.NewFrameReader(conn, proto.MaxServerFrame)}
}

// bigBatch is a batch with a body of about size bytes: reliable with seq,
// or lossy when seq is 0.
func bigBatch(room string, tick, seq uint64, size int) *manager.Emitted {
	e := batch(room, tick, seq, -1)
	b, err := proto.Decode(e.Body)
	if err != nil {
		panic(err)
	}
	pb := b.(*proto.Batch)
	pad := proto.Entry{Kind: proto.KindChat, Text: strings.Repeat("x", size)}
	pb.Lossy = append(pb.Lossy, pad)
	e.Body = proto.Encode(pb)
	return e
}

// reader drains a client in a goroutine and records the ticks of the batches
// it gets (and missed frames), until the connection ends.
type reader struct {
	mu      sync.Mutex
	ticks   []uint64
	seqs    []uint64
	missed  uint32
	done    chan struct{}
	batches int
}

func startReader(c *client) *reader {
	r := &reader{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			b, err := c.readBody()
			if err != nil {
				return
			}
			m, err := proto.Decode(b)
			if err != nil {
				return
			}
			r.mu.Lock()
			switch m := m.(type) {
			case *proto.Batch:
				r.batches++
				r.ticks = append(r.ticks, m.Tick)
				for _, e := range m.Reliable {
					r.seqs = append(r.seqs, e.Seq)
				}
			case *proto.Missed:
				r.missed += m.Batches
			}
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *reader) snapshot() (batches int, seqs []uint64, missed uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.batches, append([]uint64(nil), r.seqs...), r.missed
}

func requireInOrder(t *testing.T, seqs []uint64, n int) {
	t.Helper()
	require.Len(t, seqs, n)
	for i, s := range seqs {
		require.Equal(t, uint64(i+1), s, "reliable entries in seq order")
	}
}

// fastReaders joins a TCP and a WebSocket member to room that read all they get.
func fastReaders(t *testing.T, s *Server, room string) []*reader {
	var readers []*reader
	for _, useWS := range []bool{false, true} {
		c := dial(t, s, useWS)
		c.hello(token(t, "fast", proto.RoleViewer))
		c.join(room)
		readers = append(readers, startReader(c))
	}
	return readers
}

// leastRead is the fewest batches any of readers got (at most n).
func leastRead(readers []*reader, n int) uint64 {
	least := n
	for _, r := range readers {
		b, _, _ := r.snapshot()
		least = min(least, b)
	}
	return uint64(least)
}

// TestSlowConsumer: a member that never reads is disconnected at the hard cap
// and counted; the others receive every batch, in order.
func TestSlowConsumer(t *testing.T) {
	s, _ := startServer(t, func(c *Config) { c.SoftCap, c.HardCap = 32<<10, 256<<10 })
	const room, n = "big", 3000
	readers := fastReaders(t, s, room)
	slow := dialTCPSmallWindow(t, s)
	slow.hello(token(t, "slow", proto.RoleViewer))
	slow.join(room)

	// Deliver at the pace the fast members read (as a room owner emitting
	// per tick would), never more than 32 batches (64 KiB) ahead of them.
	behind := func() uint64 { return leastRead(readers, n) }
	for i := uint64(1); i <= n; i++ {
		eventually(t, 20*time.Second, func() bool { return i-behind() <= 32 }, "fast readers keep up")
		s.DeliverBatch(bigBatch(room, i, i, 2000))
	}
	eventually(t, 20*time.Second, func() bool { return s.Stats().Closes["slow_consumer"] == 1 }, "slow consumer closed %+v", s.Stats().Closes)
	for _, r := range readers {
		eventually(t, 20*time.Second, func() bool { b, _, _ := r.snapshot(); return b >= n }, "fast readers got everything")
		_, seqs, _ := r.snapshot()
		requireInOrder(t, seqs, n)
	}
	st := s.Stats()
	require.EqualValues(t, 2, st.Members)
	t.Logf("%d batches to 3 members: %d socket writes, %d closes for slow_consumer", n, st.Writes, st.Closes["slow_consumer"])
}

// TestSoftCapSkipsLossy: past the soft cap a member misses lossy batches (and
// is told how many once it catches up) but still gets every reliable one.
func TestSoftCapSkipsLossy(t *testing.T) {
	s, _ := startServer(t, func(c *Config) { c.SoftCap, c.HardCap = 16<<10, 64<<20 })
	const room = "soft"
	c := dialTCPSmallWindow(t, s)
	c.hello(token(t, "slow", proto.RoleViewer))
	c.join(room)

	lossy, tick := 0, uint64(0)
	for s.Stats().LossySkipped == 0 {
		require.Less(t, lossy, 20000, "never reached the soft cap")
		tick++
		lossy++
		s.DeliverBatch(bigBatch(room, tick, 0, 2000))
		if lossy%50 == 0 {
			// Pace on the loop (not the clock): it takes what is queued before
			// more is sent, so a busy CI machine cannot overflow its inbox
			// (loop_backlog drops would be neither delivered nor missed).
			eventually(t, 10*time.Second, func() bool { return s.Stats().LoopBatches >= tick }, "the loop takes its batches")
		}
	}
	for seq := uint64(1); seq <= 3; seq++ { // reliable batches go through past the soft cap
		tick++
		s.DeliverBatch(bigBatch(room, tick, seq, 2000))
	}
	r := startReader(c) // the client catches up now
	eventually(t, 20*time.Second, func() bool {
		_, seqs, missed := r.snapshot()
		return len(seqs) == 3 && missed > 0 && uint64(missed) == s.Stats().LossySkipped
	}, "reliable batches and a missed frame")
	batches, seqs, missed := r.snapshot()
	requireInOrder(t, seqs, 3)
	require.Zero(t, s.Stats().Drops["loop_backlog"], "paced: no batch dropped before the loop")
	require.Equal(t, lossy+3, batches+int(missed), "every lossy batch either arrived or was counted as missed")
	t.Logf("%d lossy batches sent: %d delivered, %d skipped and reported", lossy, batches-3, missed)
}

// TestHungryFlush: batches that pile up while a loop is busy are written as
// one coalesced write per member, all of them, in order.
func TestHungryFlush(t *testing.T) {
	s, _ := startServer(t, nil)
	const room, members, n = "hot", 20, 1000
	var readers []*reader
	for i := range members {
		c := dial(t, s, i%2 == 1)
		c.hello(token(t, "u", proto.RoleViewer))
		c.join(room)
		readers = append(readers, startReader(c))
	}
	// Keep every loop busy (as if writing a previous batch) while the batches
	// arrive.
	release, entered := make(chan struct{}), make(chan struct{}, len(s.loops))
	busy := s.onLoopsAsync(func(*loop) { entered <- struct{}{}; <-release })
	for range busy {
		<-entered
	}
	before := s.Stats().Writes
	for i := uint64(1); i <= n; i++ {
		s.DeliverBatch(batch(room, i, i, -1))
	}
	close(release)
	for _, r := range readers {
		eventually(t, 20*time.Second, func() bool { b, _, _ := r.snapshot(); return b == n }, "all batches")
		_, seqs, _ := r.snapshot()
		requireInOrder(t, seqs, n)
	}
	writes := s.Stats().Writes - before
	t.Logf("%d batches × %d members: %d socket writes", n, members, writes)
	require.EqualValues(t, members, writes, "one coalesced write per member")
}

// onLoopsAsync queues fn on every loop that has connections, without
// waiting; it returns how many loops got it.
func (s *Server) onLoopsAsync(fn func(*loop)) int {
	n := 0
	for _, l := range s.loops {
		if l.pushCtrl(fn) {
			n++
		}
	}
	return n
}

// TestFanoutUnderLoad delivers batches as fast as the test can while the
// loops write: every member gets every batch in order, with fewer writes
// than members × batches whenever the loops fell behind.
func TestFanoutUnderLoad(t *testing.T) {
	s, _ := startServer(t, nil)
	const room, members, n = "load", 20, 1000
	var readers []*reader
	for i := range members {
		c := dial(t, s, i%2 == 0)
		c.hello(token(t, "u", proto.RoleViewer))
		c.join(room)
		readers = append(readers, startReader(c))
	}
	for i := uint64(1); i <= n; i++ {
		s.DeliverBatch(batch(room, i, i, -1))
	}
	for _, r := range readers {
		eventually(t, 20*time.Second, func() bool { b, _, _ := r.snapshot(); return b == n }, "all batches")
		_, seqs, _ := r.snapshot()
		requireInOrder(t, seqs, n)
	}
	st := s.Stats()
	t.Logf("%d batches × %d members: %d writes (%.1f%% of one per batch per member)",
		n, members, st.Writes, 100*float64(st.Writes)/float64(n*members))
	require.LessOrEqual(t, st.Writes, uint64(n*members))
}

func TestDeliverBatchEdgeCases(t *testing.T) {
	s, _ := startServer(t, nil)
	s.DeliverBatch(nil)
	s.DeliverBatch(batch("nobody-here", 1, 1, 5))
	big := batch("r", 1, 1, -1)
	big.Body = make([]byte, proto.MaxServerFrame+1)
	s.DeliverBatch(big)
	s.DeliverReply(manager.Reply{Node: "elsewhere", Session: 1, Body: []byte{0x80}})
	s.DeliverReply(manager.Reply{Node: "test-node", Session: 1<<8 | 1, Body: proto.Encode(&proto.Ack{ID: 1})})
	st := s.Stats()
	require.EqualValues(t, 1, st.Drops["no_members"])
	require.EqualValues(t, 1, st.Drops["batch_too_large"])
	require.EqualValues(t, 1, st.Drops["wrong_node"])
	require.EqualValues(t, 1, st.Drops["session_gone"], "no connection ever opened on loop 1")
}

// TestMaxOutboundFairShare: with a node budget (MaxOutbound) far below the
// per-connection hard cap times the slow members, the slow members are
// closed at their fair share of the budget instead of each growing to the
// hard cap; the fast members get every batch, in order.
func TestMaxOutboundFairShare(t *testing.T) {
	const slowN = 4
	s, _ := startServer(t, func(c *Config) {
		c.SoftCap, c.HardCap = 32<<10, 64<<20 // alone, the hard cap would never be reached here
		c.MaxOutbound = 512 << 10             // 4 slow members × 64 MiB would be 256 MiB
	})
	const room, n = "budget", 4000
	readers := fastReaders(t, s, room)
	for range slowN {
		slow := dialTCPSmallWindow(t, s)
		slow.hello(token(t, "slow", proto.RoleViewer))
		slow.join(room)
	}
	behind := func() uint64 { return leastRead(readers, n) }
	pressured := false
	for i := uint64(1); i <= n && s.Stats().Closes["slow_consumer"] < slowN; i++ {
		eventually(t, 20*time.Second, func() bool { return i-behind() <= 32 }, "fast readers keep up")
		s.DeliverBatch(bigBatch(room, i, i, 2000))
		pressured = pressured || s.Stats().OutboundPressure
	}
	eventually(t, 20*time.Second, func() bool { return s.Stats().Closes["slow_consumer"] == slowN },
		"slow consumers closed at their fair share %+v", s.Stats().Closes)
	require.True(t, pressured, "the node reported outbound pressure")
	require.EqualValues(t, 2, s.Stats().Members)
	t.Logf("%d slow members closed under a 512 KiB node budget (hard cap 64 MiB)", slowN)
}
