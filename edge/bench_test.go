package edge

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/panjf2000/gnet/v2"
	"github.com/stretchr/testify/require"

	"github.com/danmaku/danmaku/room/proto"
)

// fakeConn is a gnet.Conn that accepts every write: it isolates the loop's
// per-member work (cap checks, choosing the bytes, one Write) from the
// kernel's socket cost, which the research measured at ~10 µs per write.
type fakeConn struct {
	gnet.Conn // nil: only the methods below are called
	backlog   int
	written   int
}

func (f *fakeConn) OutboundBuffered() int { return f.backlog }

func (f *fakeConn) Write(b []byte) (int, error) {
	f.written += len(b)
	return len(b), nil
}

// fanoutFixture builds a loop with one room of n members (half WebSocket)
// on fake connections, outside any engine.
func fanoutFixture(tb testing.TB, n int) (*loop, *loopRoom, []*fakeConn) {
	s, err := New(testConfig(), newLoopBus())
	require.NoError(tb, err)
	l := s.loops[0]
	lr := &loopRoom{info: &roomInfo{name: "bench"}, members: make([]*conn, 0, n)}
	fakes := make([]*fakeConn, n)
	for i := range n {
		fakes[i] = &fakeConn{}
		c := &conn{gc: fakes[i], phase: phaseReady, ws: i%2 == 1}
		c.rooms = []roomSlot{{lr: lr, idx: int32(i)}}
		lr.members = append(lr.members, c)
	}
	return l, lr, fakes
}

func queue(lr *loopRoom, k int) {
	lr.queued = lr.queued[:0]
	for i := range k {
		lr.queued = append(lr.queued, newFrames(batch("bench", uint64(i+1), uint64(i+1), 1000)))
	}
}

// TestWriteRoomDoesNotAllocate: the fan-out path allocates nothing per
// member, for one batch and for a coalesced backlog.
func TestWriteRoomDoesNotAllocate(t *testing.T) {
	for _, k := range []int{1, 10} {
		l, lr, fakes := fanoutFixture(t, 1000)
		queue(lr, k)
		l.writeRoom(lr) // grow the coalescing scratch once
		allocs := testing.AllocsPerRun(20, func() { l.writeRoom(lr) })
		require.Zero(t, allocs, "%d queued batches", k)
		want := 0
		for _, f := range lr.queued {
			want += len(f.tcp)
		}
		require.Equal(t, want*22, fakes[0].written, "every member got every batch, coalesced")
	}
}

// TestWriteRoomCaps checks the per-member decisions on fake connections.
func TestWriteRoomCaps(t *testing.T) {
	l, lr, fakes := fanoutFixture(t, 3)
	cfg := &l.srv.cfg
	fakes[0].backlog = cfg.SoftCap + 1 // soft-capped
	lr.queued = []*frames{newFrames(batch("bench", 1, 0, -1)), newFrames(batch("bench", 2, 5, -1)), newFrames(batch("bench", 3, 0, -1))}
	l.writeRoom(lr)
	require.Equal(t, len(lr.queued[1].tcp), fakes[0].written, "only the reliable batch past the soft cap")
	require.Equal(t, uint32(2), lr.members[0].rooms[0].missed)
	require.True(t, lr.members[0].missedAny)
	require.Equal(t, len(lr.queued[0].ws)+len(lr.queued[1].ws)+len(lr.queued[2].ws), fakes[1].written)
	require.EqualValues(t, 2, l.ctr.skipped.Load())

	fakes[0].backlog, fakes[0].written = 0, 0
	lr.queued = []*frames{newFrames(batch("bench", 4, 0, -1))}
	l.writeRoom(lr)
	body := proto.Encode(&proto.Missed{Room: "bench", Batches: 2})
	require.Equal(t, len(proto.AppendFrame(nil, body))+len(lr.queued[0].tcp), fakes[0].written,
		"a missed frame first once below the soft cap")
	require.False(t, lr.members[0].missedAny)
}

// BenchmarkFanout is the in-loop write path for one room: per op, one task's
// writes to every member. ns/member is the edge's own cost per delivery.
func BenchmarkFanout(b *testing.B) {
	for _, tc := range []struct{ members, queued int }{{1000, 1}, {10000, 1}, {1000, 10}} {
		b.Run(fmt.Sprintf("members=%d/queued=%d", tc.members, tc.queued), func(b *testing.B) {
			l, lr, _ := fanoutFixture(b, tc.members)
			queue(lr, tc.queued)
			l.writeRoom(lr)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				l.writeRoom(lr)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(tc.members), "ns/member")
		})
	}
}

// BenchmarkDeliverBatch is the bus side: frame a 1 KB batch once and queue
// it for a loop.
func BenchmarkDeliverBatch(b *testing.B) {
	e := batch("bench", 1, 1, -1)
	e.Body = append(e.Body, make([]byte, 1000)...)
	b.ReportAllocs()
	for b.Loop() {
		_ = newFrames(e)
	}
}

// BenchmarkFanoutLoopback is the whole path over real loopback sockets: per
// op, one batch through DeliverBatch to every member, done when every member's
// reader has it. ns/delivery includes the kernel's write and the readers
// (which share the machine's cores with the loops).
func BenchmarkFanoutLoopback(b *testing.B) {
	const members = 200
	s, _ := startServer(b, nil)
	var got atomic.Int64
	for i := range members {
		c := dial(b, s, i%2 == 1)
		c.hello(token(b, "u", proto.RoleViewer))
		c.join("bench")
		go func() {
			for {
				if _, err := c.readBody(); err != nil {
					return
				}
				got.Add(1)
			}
		}()
	}
	e := batch("bench", 1, 1, -1)
	b.ReportAllocs()
	b.ResetTimer()
	want := int64(0)
	for b.Loop() {
		want += members
		s.DeliverBatch(e)
		for got.Load() < want {
			runtime.Gosched()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*members), "ns/delivery")
}
