package stats

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestHistMergeAcrossWorkers: three "workers" record disjoint values and send
// encoded snapshots; the merge equals one histogram that saw everything.
func TestHistMergeAcrossWorkers(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	all := NewLatency()
	merged := NewLatency()
	for w := 0; w < 3; w++ {
		h := NewLatency()
		for i := 0; i < 5000; i++ {
			v := int64(rng.ExpFloat64() * float64(20*(w+1)) * 1000) // µs, a different spread per worker
			h.Record(v)
			all.Record(v)
		}
		snap, err := h.Encode()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(snap)
		if err != nil {
			t.Fatal(err)
		}
		merged.Merge(back)
	}
	if merged.Count() != 15000 || merged.Count() != all.Count() {
		t.Fatalf("count %d, want 15000", merged.Count())
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		if a, b := merged.Quantile(q), all.Quantile(q); a != b {
			t.Errorf("q%g: merged %d, direct %d", q, a, b)
		}
	}
	if merged.Max() != all.Max() {
		t.Errorf("max %d vs %d", merged.Max(), all.Max())
	}
}

func TestHistSummaryAndClamp(t *testing.T) {
	h := NewLatency()
	if s := h.Summary(); s.Count != 0 || s.P99 != 0 || s.Max != 0 {
		t.Fatalf("empty summary %+v", s)
	}
	for i := 1; i <= 100; i++ {
		h.RecordDuration(time.Duration(i) * time.Millisecond)
	}
	h.Record(-5)                    // clamps to 0
	h.RecordDuration(2 * time.Hour) // clamps to the top
	s := h.Summary()
	if s.Count != 102 {
		t.Fatalf("count %d", s.Count)
	}
	if math.Abs(s.P50-50) > 1 || math.Abs(s.P90-90) > 1.5 {
		t.Errorf("p50 %g p90 %g", s.P50, s.P90)
	}
	if s.Max < 3_500_000 {
		t.Errorf("max %g ms: 2 h should clamp to ~1 h", s.Max)
	}
	if _, err := Decode("not a histogram"); err == nil {
		t.Error("decode of garbage succeeded")
	}
	r := NewRatio()
	r.RecordRatio(0)
	r.RecordRatio(0.25)
	r.RecordRatio(1)
	if r.Max() < 990_000 || r.Quantile(0) != 0 {
		t.Errorf("ratio hist max %d min %d", r.Max(), r.Quantile(0))
	}
}

func TestRecorderTake(t *testing.T) {
	r := NewLatencyRecorder()
	for k := 0; k < 40; k++ {
		r.Record(k, []int64{1000, 2000})
	}
	r.Record(3, nil)
	dst := NewLatency()
	r.Take(dst)
	if dst.Count() != 80 {
		t.Fatalf("took %d", dst.Count())
	}
	again := NewLatency()
	r.Take(again)
	if again.Count() != 0 {
		t.Fatalf("second take got %d: Take must empty the shards", again.Count())
	}
}

// TestSeqSet feeds sequences with duplicates and gaps and checks what the
// checker reports.
func TestSeqSet(t *testing.T) {
	cases := []struct {
		name    string
		base    uint64
		feed    []uint64
		head    uint64
		dups    int
		missing uint64
		last    uint64
	}{
		{"in order", 10, []uint64{11, 12, 13, 14}, 14, 0, 0, 14},
		{"empty window", 5, nil, 5, 0, 0, 5},
		{"nothing received", 5, nil, 9, 0, 4, 5},
		{"before window ignored", 10, []uint64{3, 9, 10, 11}, 11, 0, 0, 11},
		{"duplicates", 0, []uint64{1, 2, 2, 3, 1, 3}, 3, 3, 0, 3},
		{"gap", 0, []uint64{1, 2, 4, 5}, 5, 0, 1, 2},
		{"gap filled late", 0, []uint64{1, 3, 4, 2}, 4, 0, 0, 4},
		{"out of order with dup", 100, []uint64{103, 101, 103, 102}, 104, 1, 1, 103},
		{"tail missing", 0, []uint64{1, 2}, 6, 0, 4, 2},
		{"head below last", 0, []uint64{1, 2, 3}, 2, 0, 0, 3},
		{"across words", 0, seq(1, 200), 200, 0, 0, 200},
		{"across words with holes", 0, append(seq(1, 63), seq(66, 130)...), 130, 0, 2, 63},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewSeqSet(c.base)
			dups := 0
			for _, q := range c.feed {
				if s.Add(q) {
					dups++
				}
			}
			if dups != c.dups {
				t.Errorf("dups %d, want %d", dups, c.dups)
			}
			if m := s.Missing(c.head); m != c.missing {
				t.Errorf("missing %d, want %d", m, c.missing)
			}
			if s.Last() != c.last {
				t.Errorf("last %d, want %d", s.Last(), c.last)
			}
		})
	}
}

func TestSeqSetBeyondAndReset(t *testing.T) {
	s := NewSeqSet(0)
	if s.Add(MaxWindow+5) || s.Beyond() != 1 {
		t.Fatal("a seq past the window must be counted, not tracked")
	}
	if len(s.bits) != 0 {
		t.Fatal("a bogus seq allocated a bitmap")
	}
	s.Add(1)
	s.Reset(50)
	if s.Last() != 50 || s.Has(51) || !s.Has(50) || s.Beyond() != 0 {
		t.Fatal("reset did not clear")
	}
}

// TestSeqSetRandom cross-checks against a map with a logged seed.
func TestSeqSetRandom(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	for round := 0; round < 50; round++ {
		base := uint64(rng.IntN(1000))
		head := base + uint64(rng.IntN(500))
		s := NewSeqSet(base)
		seen := map[uint64]bool{}
		n := rng.IntN(800)
		for i := 0; i < n && head > base; i++ {
			q := base + 1 + uint64(rng.IntN(int(head-base)))
			if s.Add(q) != seen[q] {
				t.Fatalf("round %d: Add(%d) dup=%v, seen before=%v", round, q, !seen[q], seen[q])
			}
			seen[q] = true
		}
		var want uint64
		for q := base + 1; q <= head; q++ {
			if !seen[q] {
				want++
			}
		}
		if got := s.Missing(head); got != want {
			t.Fatalf("round %d: missing %d, want %d", round, got, want)
		}
		last := base
		for seen[last+1] {
			last++
		}
		if s.Last() != last {
			t.Fatalf("round %d: last %d, want %d", round, s.Last(), last)
		}
	}
}

func seq(from, to uint64) []uint64 {
	var s []uint64
	for q := from; q <= to; q++ {
		s = append(s, q)
	}
	return s
}

func TestTally(t *testing.T) {
	var a, b Tally
	s1 := NewSeqSet(10)
	for _, q := range []uint64{11, 12, 14} {
		s1.Add(q)
	}
	a.Add(s1, 14, 2, 1)
	s2 := NewSeqSet(12)
	s2.Add(13)
	s2.Add(14)
	b.Add(s2, 14, 0, 0)
	a.Merge(b)
	want := Tally{Viewers: 2, Expected: 6, Missing: 1, Duplicates: 2, ResumeOverlaps: 1, ViewersMissing: 1}
	if a != want {
		t.Fatalf("tally %+v, want %+v", a, want)
	}
}

func TestBeyondBudget(t *testing.T) {
	for _, c := range []struct {
		sent, recv, drop uint64
		want             float64
	}{
		{0, 0, 0, 0},
		{100, 100, 0, 0},
		{100, 20, 80, 0},      // all losses explained by the budget
		{100, 20, 70, 0.1},    // 10 lost beyond the budget
		{100, 0, 0, 1},        // nothing arrived
		{100, 120, 0, 0},      // received more than acked (unacked chats were broadcast)
		{100, 50, 90, 0},      // dr over-explains (it counts enter notices too)
		{1000, 989, 0, 0.011}, // just over a 1 % target
	} {
		if got := BeyondBudget(c.sent, c.recv, c.drop); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("BeyondBudget(%d,%d,%d) = %g, want %g", c.sent, c.recv, c.drop, got, c.want)
		}
	}
	l, m := NewLossy(), NewLossy()
	l.Add(100, 90, 10)
	l.Add(100, 80, 10)
	m.Add(100, 100, 0)
	l.Merge(m)
	if l.SteadyViewers != 3 || l.Sent != 300 || l.Received != 270 || l.Dropped != 20 {
		t.Fatalf("lossy %+v", l)
	}
	if got := l.Ratios.Max(); got < 99_000 || got > 101_000 {
		t.Fatalf("max ratio %d ppm, want ~100000", got)
	}
}

func BenchmarkSeqSetAdd(b *testing.B) {
	s := NewSeqSet(0)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if i%4096 == 0 {
			s.Reset(uint64(i))
		}
		s.Add(uint64(i) + 1)
	}
}

func BenchmarkRecorder(b *testing.B) {
	r := NewLatencyRecorder()
	vals := []int64{1200, 3400, 800, 15000, 2200, 900, 40000, 1000}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		k := rand.IntN(1000)
		for pb.Next() {
			r.Record(k, vals)
		}
	})
}
