package redisstore

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The benchmarks run against the local Redis (127.0.0.1:6379): they measure
// one Lua round trip per append, which is what a gift costs the owner.
//
//	go test -run '^$' -bench Append -benchtime 5000x -benchmem ./fanout/redisstore

// reportLatency adds p50 and p99 (µs) of the samples to the benchmark.
func reportLatency(b *testing.B, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	at := func(q float64) float64 {
		return float64(samples[int(q*float64(len(samples)-1))].Microseconds())
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}

func BenchmarkAppend(b *testing.B) {
	s := newTestStore(b, testConfig(b))
	ctx := ctxT(b)
	e := gift(1)
	var samples []time.Duration
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		if _, err := s.Append(ctx, "bench", fmt.Sprint("k", i), e); err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(float64(len(samples))/b.Elapsed().Seconds(), "appends/s")
	reportLatency(b, samples)
}

// BenchmarkAppendParallel appends from GOMAXPROCS×8 goroutines into 16 rooms,
// as an owner node holding many rooms does.
func BenchmarkAppendParallel(b *testing.B) {
	s := newTestStore(b, testConfig(b))
	ctx := ctxT(b)
	e := gift(1)
	var (
		n       atomic.Int64
		mu      sync.Mutex
		samples []time.Duration
	)
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var local []time.Duration
		for pb.Next() {
			i := n.Add(1)
			start := time.Now()
			if _, err := s.Append(ctx, fmt.Sprint("room", i%16), fmt.Sprint("k", i), e); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(start))
		}
		mu.Lock()
		samples = append(samples, local...)
		mu.Unlock()
	})
	b.StopTimer()
	b.ReportMetric(float64(len(samples))/b.Elapsed().Seconds(), "appends/s")
	reportLatency(b, samples)
}

// BenchmarkSince replays 100 entries, as one resume does.
func BenchmarkSince(b *testing.B) {
	s := newTestStore(b, testConfig(b))
	ctx := ctxT(b)
	for i := range 200 {
		if _, err := s.Append(ctx, "bench", "", gift(i)); err != nil {
			b.Fatal(err)
		}
	}
	h, err := s.Head(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r, err := s.Since(ctx, "bench", h.Epoch, 100, 100)
		if err != nil || !r.Complete || len(r.Entries) != 100 {
			b.Fatalf("since: %d entries, complete %v, %v", len(r.Entries), r.Complete, err)
		}
	}
}
