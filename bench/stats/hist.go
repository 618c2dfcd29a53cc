package stats

import (
	"fmt"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram ranges.
const (
	// MaxLatencyMicros is the top of a latency histogram: one hour, in µs.
	// Anything slower is recorded as one hour (and is a failed target anyway).
	MaxLatencyMicros = int64(time.Hour / time.Microsecond)
	// MaxPPM is the top of a ratio histogram, in parts per million.
	MaxPPM = 1_000_000
	// sigDigits: two significant digits (1 % resolution) keep a histogram
	// at ~30 KB and its snapshot at a few hundred bytes, and a 1 % error is
	// well below what repeated runs on a shared machine vary by.
	sigDigits = 2
)

// Hist is an HDR histogram of non-negative integers (µs for latencies, ppm
// for ratios). It is not safe for concurrent use; see Recorder.
type Hist struct {
	h *hdr.Histogram
}

// NewLatency returns a histogram of durations in µs, 1 µs to 1 h.
func NewLatency() *Hist { return &Hist{hdr.New(1, MaxLatencyMicros, sigDigits)} }

// NewRatio returns a histogram of ratios in ppm, 0 to 1.
func NewRatio() *Hist { return &Hist{hdr.New(1, MaxPPM, sigDigits)} }

// Record adds one value, clamped into the histogram's range.
func (h *Hist) Record(v int64) {
	if v < 0 {
		v = 0
	}
	if top := h.h.HighestTrackableValue(); v > top {
		v = top
	}
	_ = h.h.RecordValue(v) // cannot fail once clamped
}

// RecordDuration adds a duration to a latency histogram.
func (h *Hist) RecordDuration(d time.Duration) { h.Record(int64(d / time.Microsecond)) }

// RecordRatio adds a ratio in [0, 1] to a ratio histogram.
func (h *Hist) RecordRatio(r float64) { h.Record(int64(r*MaxPPM + 0.5)) }

// Merge adds o's values to h. Both must have the same range.
func (h *Hist) Merge(o *Hist) {
	if o != nil {
		h.h.Merge(o.h)
	}
}

// Count is the number of values recorded.
func (h *Hist) Count() int64 { return h.h.TotalCount() }

// Quantile returns the value at quantile q in [0, 1] (0 when empty).
func (h *Hist) Quantile(q float64) int64 {
	if h.h.TotalCount() == 0 {
		return 0
	}
	return h.h.ValueAtQuantile(q * 100)
}

// Max is the largest value recorded (to the histogram's resolution).
func (h *Hist) Max() int64 {
	if h.h.TotalCount() == 0 {
		return 0
	}
	return h.h.Max()
}

// Mean is the mean of the values recorded.
func (h *Hist) Mean() float64 { return h.h.Mean() }

// Reset empties h.
func (h *Hist) Reset() { h.h.Reset() }

// Encode returns a compact text snapshot (HdrHistogram V2 compressed,
// base64), which Decode turns back into an equal histogram. Workers send
// these to the coordinator.
func (h *Hist) Encode() (string, error) {
	b, err := h.h.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		return "", fmt.Errorf("encode histogram: %w", err)
	}
	return string(b), nil
}

// Decode parses a snapshot made by Encode.
func Decode(s string) (*Hist, error) {
	h, err := hdr.Decode([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("decode histogram: %w", err)
	}
	return &Hist{h}, nil
}

// Latency summarises a latency histogram in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// Summary returns h's summary, values in ms.
func (h *Hist) Summary() Latency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		Count: h.Count(), Mean: h.Mean() / 1000,
		P50: ms(h.Quantile(0.50)), P90: ms(h.Quantile(0.90)), P99: ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)), Max: ms(h.Max()),
	}
}

// recorderShards spreads a worker's ~19,000 reader goroutines over several
// locks; each batch takes one lock once for all its entries.
const recorderShards = 16

// Recorder is a histogram many goroutines record into: one lock per shard,
// chosen by the caller's key (a viewer index).
type Recorder struct {
	shards [recorderShards]struct {
		mu sync.Mutex
		h  *Hist
		_  [48]byte // keep shards on separate cache lines
	}
}

// NewLatencyRecorder returns a Recorder of latency histograms.
func NewLatencyRecorder() *Recorder {
	r := &Recorder{}
	for i := range r.shards {
		r.shards[i].h = NewLatency()
	}
	return r
}

// Record adds values under one lock of the shard chosen by key: a reader
// goroutine collects a batch's latencies and records them at once.
func (r *Recorder) Record(key int, values []int64) {
	if len(values) == 0 {
		return
	}
	s := &r.shards[uint(key)%recorderShards]
	s.mu.Lock()
	for _, v := range values {
		s.h.Record(v)
	}
	s.mu.Unlock()
}

// Take merges every shard into dst and empties the shards: what was
// recorded since the previous Take.
func (r *Recorder) Take(dst *Hist) {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		dst.Merge(s.h)
		s.h.Reset()
		s.mu.Unlock()
	}
}
