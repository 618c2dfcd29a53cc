package client

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// step is one input of a tracker table case.
type step struct {
	op    string // join, batch, resumed
	epoch string
	seq   uint64   // join seq; resumed: last seq included / state seq
	seqs  []uint64 // batch or resumed entries
	rec   bool     // resumed: recovered
}

func ents(epoch string, seqs ...uint64) []proto.Entry {
	es := make([]proto.Entry, len(seqs))
	for i, s := range seqs {
		es[i] = proto.Entry{Kind: proto.KindGift, Seq: s, Data: epoch}
	}
	return es
}

func seqsOf(es []proto.Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

// run feeds steps to t and returns the delivered seqs, in order.
func (tr *tracker) run(steps []step) []uint64 {
	var got []uint64
	for _, s := range steps {
		switch s.op {
		case "join":
			for _, b := range tr.join(s.epoch, s.seq) {
				got = append(got, seqsOf(b.Reliable)...)
			}
		case "batch":
			b := &proto.Batch{Room: "r", Epoch: s.epoch, Reliable: ents(s.epoch, s.seqs...)}
			if out := tr.batch(b); out != nil {
				got = append(got, seqsOf(out.Reliable)...)
			}
		case "resumed":
			m := &proto.Resumed{Room: "r", Recovered: s.rec, Epoch: s.epoch, Seq: s.seq, Entries: ents(s.epoch, s.seqs...)}
			if !s.rec {
				m.State = &proto.RoomState{Epoch: s.epoch, Seq: s.seq}
			}
			replay, _ := tr.resumed(m)
			got = append(got, seqsOf(replay)...)
		default:
			panic("unknown op " + s.op)
		}
	}
	return got
}

func join(e string, seq uint64) step      { return step{op: "join", epoch: e, seq: seq} }
func batch(e string, seqs ...uint64) step { return step{op: "batch", epoch: e, seqs: seqs} }
func recovered(e string, seqs ...uint64) step {
	return step{op: "resumed", epoch: e, rec: true, seqs: seqs}
}
func rebasedTo(e string, seq uint64) step { return step{op: "resumed", epoch: e, seq: seq} }
func drops(kv ...any) map[counter]int     { return pairs(kv) }
func pairs(kv []any) map[counter]int {
	m := map[counter]int{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(counter)] = kv[i+1].(int)
	}
	return m
}
func seqRange(from, to uint64) (out []uint64) {
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func TestTracker(t *testing.T) {
	cases := []struct {
		name    string
		maxHeld int
		maxPre  int
		steps   []step
		want    []uint64
		epoch   string
		last    uint64
		gap     bool
		counts  map[counter]int
	}{
		{name: "in order", steps: []step{join("a", 0), batch("a", 1, 2), batch("a", 3)},
			want: []uint64{1, 2, 3}, epoch: "a", last: 3},
		{name: "duplicates dropped", steps: []step{join("a", 0), batch("a", 1, 2), batch("a", 2, 3), batch("a", 1)},
			want: []uint64{1, 2, 3}, epoch: "a", last: 3, counts: drops(cDuplicate, 2)},
		{name: "batches before joined", steps: []step{batch("a", 2, 3), batch("a", 4, 5), join("a", 3), batch("a", 5, 6)},
			want: []uint64{4, 5, 6}, epoch: "a", last: 6, counts: drops(cBeforeBaseline, 2, cDuplicate, 1)},
		{name: "gap held until resumed", steps: []step{join("a", 0), batch("a", 1), batch("a", 3, 4)},
			want: []uint64{1}, epoch: "a", last: 1, gap: true, counts: drops(cGaps, 1)},
		{name: "gap filled by resume", steps: []step{join("a", 0), batch("a", 1), batch("a", 3, 4), recovered("a", 2, 3)},
			want: []uint64{1, 2, 3, 4}, epoch: "a", last: 4, counts: drops(cGaps, 1, cDuplicate, 1)},
		{name: "gap filled by a late batch", steps: []step{join("a", 0), batch("a", 2), batch("a", 1)},
			want: []uint64{1, 2}, epoch: "a", last: 2},
		{name: "out of order in a batch", steps: []step{join("a", 0), batch("a", 3, 1, 2)},
			want: []uint64{1, 2, 3}, epoch: "a", last: 3},
		{name: "partial replay leaves the gap", steps: []step{join("a", 0), batch("a", 5), recovered("a", 1, 2)},
			want: []uint64{1, 2}, epoch: "a", last: 2, gap: true},
		{name: "lossy-only batch passes", steps: []step{join("a", 7), batch("")},
			epoch: "a", last: 7},
		{name: "new epoch is a gap, rebase delivers it",
			steps: []step{join("a", 5), batch("b", 1, 2), rebasedTo("b", 0), batch("a", 6), batch("b", 2, 3)},
			want:  []uint64{1, 2, 3}, epoch: "b", last: 3,
			counts: drops(cStaleEpoch, 1, cDuplicate, 1, cGaps, 1)},
		{name: "rebase forward in the same epoch", steps: []step{join("a", 0), batch("a", 5, 6), rebasedTo("a", 4)},
			want: []uint64{5, 6}, epoch: "a", last: 6},
		{name: "rebase never moves back", steps: []step{join("a", 10), rebasedTo("a", 3), batch("a", 4, 11)},
			want: []uint64{11}, epoch: "a", last: 11, counts: drops(cBeforeBaseline, 1)},
		{name: "rebase drops held entries it passed",
			steps: []step{join("a", 0), batch("a", 3, 9), rebasedTo("a", 5), batch("a", 6, 7, 8)},
			want:  []uint64{6, 7, 8, 9}, epoch: "a", last: 9, counts: drops(cBeforeBaseline, 1)},
		{name: "held overflow relies on the resume", maxHeld: 2,
			steps: []step{join("a", 0), batch("a", 3, 4, 5), recovered("a", 1, 2, 3, 4, 5)},
			want:  []uint64{1, 2, 3, 4, 5}, epoch: "a", last: 5,
			counts: drops(cHeldOverflow, 2)},
		{name: "pre-join overflow drops the oldest batch", maxPre: 1,
			steps: []step{batch("a", 1), batch("a", 2), join("a", 0), recovered("a", 1, 2)},
			want:  []uint64{1, 2}, epoch: "a", last: 2,
			counts: drops(cPreJoinOverflow, 1, cDuplicate, 1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := map[counter]int{}
			tr := newTracker(cmp.Or(tc.maxHeld, 100), cmp.Or(tc.maxPre, 8), func(c counter, n int) { got[c] += n })
			if d := tr.run(tc.steps); !slices.Equal(d, tc.want) {
				t.Fatalf("delivered %v, want %v", d, tc.want)
			}
			if e, s := tr.position(); e != tc.epoch || s != tc.last {
				t.Fatalf("position (%q, %d), want (%q, %d)", e, s, tc.epoch, tc.last)
			}
			if tr.gap() != tc.gap {
				t.Fatalf("gap %v, want %v", tr.gap(), tc.gap)
			}
			for c, n := range tc.counts {
				if got[c] != n {
					t.Errorf("counter %d = %d, want %d (all: %v)", c, got[c], n, got)
				}
			}
		})
	}
}

// model is a room's true reliable lane, the server side of the fuzz: epochs
// e0, e1… each with entries 1..head, and truthful answers to resumes.
type model struct {
	epoch int
	head  uint64
}

func (m *model) name(i int) string { return fmt.Sprintf("e%d", i) }

func (m *model) resume(epoch string, after uint64, limit int) *proto.Resumed {
	cur := m.name(m.epoch)
	if epoch != cur || after > m.head {
		return &proto.Resumed{Epoch: cur, Seq: m.head, State: &proto.RoomState{Epoch: cur, Seq: m.head}}
	}
	to := min(m.head, after+uint64(limit))
	return &proto.Resumed{Recovered: true, Epoch: cur, Seq: to, Entries: ents(cur, seqRange(after+1, to)...)}
}

// checker asserts the exactly-once property on a tracker's output.
type checker struct {
	t     testing.TB
	epoch string
	pos   uint64
	seen  map[string]bool
}

func (c *checker) base(epoch string, seq uint64) {
	if epoch == c.epoch && seq < c.pos {
		seq = c.pos // the tracker never moves back within an epoch
	}
	c.epoch, c.pos = epoch, seq
}

func (c *checker) deliver(es []proto.Entry) {
	for _, e := range es {
		key := fmt.Sprintf("%s/%d", e.Data, e.Seq)
		switch {
		case e.Data != c.epoch:
			c.t.Fatalf("delivered %s while in epoch %s", key, c.epoch)
		case e.Seq != c.pos+1:
			c.t.Fatalf("delivered %s after seq %d: not contiguous", key, c.pos)
		case c.seen[key]:
			c.t.Fatalf("delivered %s twice", key)
		}
		c.seen[key] = true
		c.pos = e.Seq
	}
}

// drive interprets ops as a hostile network around a truthful server and
// checks every delivery; at the end, truthful resumes must catch up fully.
func drive(t testing.TB, ops []byte) {
	m := &model{head: 3}
	tr := newTracker(8, 4, nil)
	chk := &checker{t: t, seen: map[string]bool{}}
	resume := func(limit int) {
		e, s := tr.position()
		replay, st := tr.resumed(m.resume(e, s, limit))
		if st != nil {
			chk.base(st.Epoch, st.Seq)
		}
		chk.deliver(replay)
	}
	for i := 0; i+1 < len(ops); i += 2 {
		op, arg := ops[i]%6, uint64(ops[i+1])
		switch op {
		case 0: // the server appends entries
			m.head += 1 + arg%4
		case 1: // a batch: a window of the lane, maybe reversed
			if m.head == 0 {
				continue
			}
			lo := 1 + arg%m.head
			seqs := seqRange(lo, min(m.head, lo+arg%5))
			if arg&1 == 1 {
				slices.Reverse(seqs)
			}
			cur := m.name(m.epoch)
			if out := tr.batch(&proto.Batch{Epoch: cur, Reliable: ents(cur, seqs...)}); out != nil {
				chk.deliver(out.Reliable)
			}
		case 2: // a late batch of an older epoch
			if m.epoch > 0 {
				old := m.name(int(arg) % m.epoch)
				if out := tr.batch(&proto.Batch{Epoch: old, Reliable: ents(old, 1+arg%3)}); out != nil {
					chk.deliver(out.Reliable)
				}
			}
		case 3: // joined, at some seq the server had reached
			if !tr.based {
				s := arg % (m.head + 1)
				chk.base(m.name(m.epoch), s)
				for _, b := range tr.join(m.name(m.epoch), s) {
					chk.deliver(b.Reliable)
				}
			}
		case 4: // the answer to a resume, possibly limited
			if tr.based {
				resume(1 + int(arg%6))
			}
		case 5: // the store lost its ledger: a new epoch
			m.epoch++
			m.head = arg % 4
		}
	}
	if !tr.based {
		return
	}
	for range 5 {
		resume(1 << 20)
	}
	if e, s := tr.position(); e != m.name(m.epoch) || s != m.head || tr.gap() {
		t.Fatalf("after resumes at (%s, %d) gap=%v; server at (%s, %d)", e, s, tr.gap(), m.name(m.epoch), m.head)
	}
}

func FuzzTracker(f *testing.F) {
	f.Add([]byte{3, 0, 0, 3, 1, 1, 1, 4, 4, 2})
	f.Add([]byte{1, 9, 0, 5, 1, 3, 3, 2, 1, 7, 5, 1, 1, 2, 2, 0, 4, 1})
	f.Add([]byte{0, 3, 0, 3, 3, 1, 1, 200, 5, 2, 0, 4, 1, 1, 4, 0, 2, 1})
	f.Fuzz(func(t *testing.T, ops []byte) { drive(t, ops) })
}

// TestTrackerRandom runs the fuzz driver on seeded random inputs, so plain
// `go test` covers more than the seed corpus.
func TestTrackerRandom(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for range 2000 {
		ops := make([]byte, rng.IntN(200))
		for i := range ops {
			ops[i] = byte(rng.Uint32())
		}
		drive(t, ops)
	}
}

func TestBackoff(t *testing.T) {
	base, ceil := 200*time.Millisecond, 10*time.Second
	for n := range 70 {
		limit := ceil
		if n < 6 {
			limit = base << n
		}
		for range 200 {
			if d := backoff(base, ceil, n); d < 0 || d >= limit {
				t.Fatalf("attempt %d: %v outside [0, %v)", n, d, limit)
			}
		}
	}
}

// BenchmarkTrackerBatch is the per-batch cost of exactly-once filtering, in
// order (the common case): one reliable entry per batch.
func BenchmarkTrackerBatch(b *testing.B) {
	tr := newTracker(10000, 64, nil)
	tr.join("e1", 0)
	es := make([]proto.Entry, 1)
	b.ReportAllocs()
	for i := range b.N {
		es[0] = proto.Entry{Kind: proto.KindGift, Seq: uint64(i + 1)}
		tr.batch(&proto.Batch{Epoch: "e1", Reliable: es})
	}
}
