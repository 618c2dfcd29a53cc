package bench

import (
	"math"
	"time"

	"github.com/danmaku/danmaku/bench/load"
	"github.com/danmaku/danmaku/bench/stats"
)

// settleAfterStop is how long after senders stop a worker's stats must be
// before they can say the run settled: the last acks are still on the way.
const settleAfterStop = 300 * time.Millisecond

// tracker merges the workers' streamed Stats: the latest counters of each,
// the latency recorded since the previous point, and the per-second series.
type tracker struct {
	start      time.Time
	latest     []*load.Stats
	lossyIv    *stats.Hist // since the previous point
	relIv      *stats.Hist
	lossyAll   *stats.Hist // since the start, for an interrupted run's report
	relAll     *stats.Hist
	prev       load.Counters
	prevT      time.Time
	series     Series
	peakConn   int64
	badHists   int
	lastLossy  float64 // p99 of the latest point with samples, ms
	lastRel    float64
	lastPoint  point
	haveLatest int
}

func newTracker(workers int, start time.Time) *tracker {
	return &tracker{start: start, latest: make([]*load.Stats, workers),
		lossyIv: stats.NewLatency(), relIv: stats.NewLatency(), lossyAll: stats.NewLatency(), relAll: stats.NewLatency(),
		prev: load.Counters{}, prevT: start}
}

// add takes one worker's Stats.
func (t *tracker) add(s *load.Stats) {
	if s.Worker < 0 || s.Worker >= len(t.latest) {
		return
	}
	if t.latest[s.Worker] == nil {
		t.haveLatest++
	}
	t.latest[s.Worker] = s
	for _, p := range []struct {
		enc string
		dst *stats.Hist
	}{{s.Lossy, t.lossyIv}, {s.Reliable, t.relIv}} {
		h, err := stats.Decode(p.enc)
		if err != nil {
			t.badHists++
			continue
		}
		p.dst.Merge(h)
	}
}

// counters sums the workers' latest counters.
func (t *tracker) counters() load.Counters {
	sum := load.Counters{}
	for _, s := range t.latest {
		if s != nil {
			sum.Add(s.Counters)
		}
	}
	return sum
}

// point is one second of the run, for the series and the progress display.
type point struct {
	T                     float64
	Connected, Joined     int64
	FirstJoins, Planned   int64
	LossyP50, LossyP99    float64
	ReliableP99           float64
	LossyPS, ReliablePS   float64
	BatchesPS, ChatsPS    float64
	GiftsAcked, GiftsSent int64
	Drops, Reconnects     int64
}

// point closes the current second: it appends to the series and returns it.
func (t *tracker) point(now time.Time) point {
	c := t.counters()
	dt := now.Sub(t.prevT).Seconds()
	if dt <= 0 {
		dt = 1
	}
	rate := func(k string) float64 { return float64(c[k]-t.prev[k]) / dt }
	p := point{
		T: now.Sub(t.start).Seconds(), Connected: c["connected"], Joined: c["joined"], FirstJoins: c["first_joins"],
		LossyP50: ms(t.lossyIv.Quantile(0.5)), LossyP99: ms(t.lossyIv.Quantile(0.99)), ReliableP99: ms(t.relIv.Quantile(0.99)),
		LossyPS: rate("lossy_entries"), ReliablePS: rate("reliable_entries") + rate("replay_entries"),
		BatchesPS: rate("batches"), ChatsPS: rate("chats_sent"),
		GiftsAcked: c["gifts_acked"], GiftsSent: c["gifts_started"], Drops: c["drops"], Reconnects: c["connects_done"] - c["first_joins"],
	}
	if t.lossyIv.Count() > 0 {
		t.lastLossy = p.LossyP99
	}
	if t.relIv.Count() > 0 {
		t.lastRel = p.ReliableP99
	}
	t.peakConn = max(t.peakConn, p.Connected)
	s := &t.series
	s.T = append(s.T, math.Round(p.T*10)/10)
	s.Connected = append(s.Connected, p.Connected)
	s.Joined = append(s.Joined, p.Joined)
	s.LossyP50 = append(s.LossyP50, p.LossyP50)
	s.LossyP99 = append(s.LossyP99, p.LossyP99)
	s.ReliableP99 = append(s.ReliableP99, p.ReliableP99)
	s.LossyPerSec = append(s.LossyPerSec, p.LossyPS)
	s.ReliablePerSec = append(s.ReliablePerSec, p.ReliablePS)
	s.BatchesPerSec = append(s.BatchesPerSec, p.BatchesPS)
	s.ChatsPerSec = append(s.ChatsPerSec, p.ChatsPS)
	t.lossyAll.Merge(t.lossyIv)
	t.relAll.Merge(t.relIv)
	t.lossyIv.Reset()
	t.relIv.Reset()
	t.prev, t.prevT = c, now
	t.lastPoint = p
	return p
}

func ms(us int64) float64 { return float64(us) / 1000 }

// heads returns, per room, the last reliable seq any worker saw or was
// acked with, and the chats acked per room (the lossy accounting's "sent").
func (t *tracker) heads() (heads, chats map[string]uint64) {
	heads, chats = map[string]uint64{}, map[string]uint64{}
	for _, s := range t.latest {
		if s == nil {
			continue
		}
		for _, r := range s.Rooms {
			heads[r.Room] = max(heads[r.Room], r.MaxSeen, r.MaxAcked)
			chats[r.Room] += r.ChatsAcked
		}
	}
	return heads, chats
}

// settled reports whether, by every worker's stats taken after the stop,
// nothing is in flight: no gift awaits an ack, no chat awaits its ack, and
// every joined viewer holds every reliable entry up to its room's head.
func (t *tracker) settled(stop time.Time) bool {
	if t.haveLatest < len(t.latest) {
		return false
	}
	heads, _ := t.heads()
	after := stop.Add(settleAfterStop).UnixMilli()
	for _, s := range t.latest {
		c := s.Counters
		if s.At < after || c["gifts_pending"] > 0 ||
			c["chats_sent"] > c["chats_acked"]+c["chats_rejected"]+c["chats_unacked"] {
			return false
		}
		for _, r := range s.Rooms {
			if r.Joined > 0 && r.MinLast < heads[r.Room] {
				return false
			}
		}
	}
	return true
}
