package bench

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/danmaku/danmaku/bench/load"
	"github.com/danmaku/danmaku/bench/scenario"
	"github.com/danmaku/danmaku/bench/stats"
)

// maxExamples bounds the example lines of a failed ledger check.
const maxExamples = 10

// merged is every worker's Result combined.
type merged struct {
	counters                       load.Counters
	connect, join, reconnect       *stats.Hist
	lossy, reliable, lossyRatios   *stats.Hist
	exactly                        stats.Tally
	lossyTally                     *stats.Lossy
	gifts                          []load.GiftRecord
	lane                           []load.LaneEntry
	cpu                            float64
	peakRSS, rssPerConn, peakConns int64
	workerConns                    []int64
	badHists                       int
}

func merge(results []*load.Result) *merged {
	m := &merged{counters: load.Counters{}, connect: stats.NewLatency(), join: stats.NewLatency(),
		reconnect: stats.NewLatency(), lossy: stats.NewLatency(), reliable: stats.NewLatency(),
		lossyRatios: stats.NewRatio(), lossyTally: stats.NewLossy()}
	var rssWeighted int64
	for _, r := range results {
		m.counters.Add(r.Counters)
		for _, h := range []struct {
			enc string
			dst *stats.Hist
		}{{r.Connect, m.connect}, {r.Join, m.join}, {r.Reconnect, m.reconnect},
			{r.Lossy, m.lossy}, {r.Reliable, m.reliable}, {r.LossyRatios, m.lossyRatios}} {
			d, err := stats.Decode(h.enc)
			if err != nil {
				m.badHists++
				continue
			}
			h.dst.Merge(d)
		}
		m.exactly.Merge(r.Exactly)
		lt := r.LossyTally
		lt.Ratios = stats.NewRatio() // the distribution is merged above
		m.lossyTally.Merge(&lt)
		m.gifts = append(m.gifts, r.Gifts...)
		m.lane = append(m.lane, r.Lane...)
		m.cpu += r.CPUSeconds
		m.peakRSS += r.PeakRSS
		m.peakConns += r.PeakConns
		rssWeighted += r.RSSPerConn * r.PeakConns
		m.workerConns = append(m.workerConns, r.PeakConns)
	}
	if m.peakConns > 0 {
		m.rssPerConn = rssWeighted / m.peakConns
	}
	return m
}

// ledgerCheck compares every acked gift with the reliable entries the
// viewers saw: the entry at the gift's seq must be that gift (same user and
// client ts), no purchase may sit under two seqs, and no two viewers may
// have seen different entries at one seq.
func ledgerCheck(gifts []load.GiftRecord, lane []load.LaneEntry, rel *Reliable) {
	type at struct {
		room string
		seq  uint64
	}
	type purchase struct {
		room, user string
		ct         int64
	}
	seen := map[at]load.LaneEntry{}
	bySeqs := map[purchase][]uint64{}
	example := func(format string, args ...any) {
		if len(rel.Examples) < maxExamples {
			rel.Examples = append(rel.Examples, fmt.Sprintf(format, args...))
		}
	}
	ours := map[string]bool{}
	for _, g := range gifts {
		ours[g.User] = true
	}
	for _, e := range lane {
		k := at{e.Room, e.Seq}
		if prev, ok := seen[k]; ok {
			if prev != e {
				rel.LaneConflict++
				example("room %s seq %d: one viewer saw %s by %s, another %s by %s", e.Room, e.Seq, prev.Kind, prev.User, e.Kind, e.User)
			}
			continue
		}
		seen[k] = e
		if e.Kind == "gift" && ours[e.User] {
			p := purchase{e.Room, e.User, e.ClientTS}
			bySeqs[p] = append(bySeqs[p], e.Seq)
		}
	}
	for p, seqs := range bySeqs {
		if len(seqs) > 1 {
			rel.Doubled += int64(len(seqs) - 1)
			sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
			example("room %s: the gift of %s at ct %d was broadcast under seqs %v", p.room, p.user, p.ct, seqs)
		}
	}
	for _, g := range gifts {
		if g.Conflict {
			rel.SeqConflicts++
			example("gift %s was acked with two different seqs", g.Key)
		}
		if !g.Acked {
			continue
		}
		rel.GiftsChecked++
		e, ok := seen[at{g.Room, g.Seq}]
		switch {
		case !ok:
			rel.Unseen++
			example("gift %s acked as seq %d of %s: no viewer received that seq", g.Key, g.Seq, g.Room)
		case e.Kind != "gift" || e.User != g.User || e.ClientTS != g.ClientTS:
			rel.AckMismatch++
			example("gift %s acked as seq %d of %s, but that seq holds %s by %s (ct %d)", g.Key, g.Seq, g.Room, e.Kind, e.User, e.ClientTS)
		}
	}
}

// exactlyOnceOK is the exactly-once target: nothing missing, nothing
// delivered twice outside a resume overlap, the ledger consistent.
func exactlyOnceOK(r *Reliable) bool {
	return r.Missing == 0 && r.Duplicates == 0 && r.Doubled == 0 && r.AckMismatch == 0 &&
		r.SeqConflicts == 0 && r.LaneConflict == 0 && r.Unseen == 0 && r.EpochChanges == 0
}

// evaluate judges the report against the scenario's SLOs.
func evaluate(sc *scenario.Scenario, r *Report) []Check {
	slo := sc.SLO
	var out []Check
	add := func(c Check) { out = append(out, c) }
	pct := func(x float64) string { return fmt.Sprintf("%.3f%%", 100*x) }
	msS := func(d scenario.Duration) string { return d.D().String() }

	add(Check{Name: "connect_success", Target: "≥ " + pct(slo.ConnectSuccess), Actual: pct(r.Connect.SuccessRatio),
		Limit: slo.ConnectSuccess, Value: r.Connect.SuccessRatio, Pass: r.Connect.Needed > 0 && r.Connect.SuccessRatio >= slo.ConnectSuccess,
		Detail: fmt.Sprintf("%d of %d connects (first joins and reconnects) completed", r.Connect.Done, r.Connect.Needed)})

	chat, gifts := trafficPlanned(sc)
	for _, lat := range []struct {
		class   string
		target  scenario.Duration
		planned bool
	}{{"lossy", slo.LatencyP99.Lossy, chat}, {"reliable", slo.LatencyP99.Reliable, gifts}} {
		l := r.Latency[lat.class]
		c := Check{Name: "latency_p99." + lat.class, Target: "≤ " + msS(lat.target), Limit: lat.target.D().Seconds() * 1000, Value: l.P99}
		switch {
		case l.Count > 0:
			c.Actual, c.Pass = fmtMs(l.P99), l.P99 <= c.Limit
			c.Detail = fmt.Sprintf("%d deliveries, p50 %s, max %s", l.Count, fmtMs(l.P50), fmtMs(l.Max))
		case lat.planned:
			c.Actual, c.Detail = "no data", "the scenario sends "+map[string]string{"lossy": "chat", "reliable": "gifts"}[lat.class]+" but no viewer received any"
		default:
			c.Actual, c.Pass, c.Detail = "n/a", true, "no such traffic in the scenario"
		}
		add(c)
	}
	for _, t := range []struct {
		name   string
		target scenario.Duration
		l      stats.Latency
	}{{"connect_p99", slo.ConnectP99, r.Connect.ConnectTime}, {"join_p99", slo.JoinP99, r.Connect.JoinTime}} {
		if t.target > 0 {
			add(Check{Name: t.name, Target: "≤ " + msS(t.target), Actual: fmtMs(t.l.P99), Limit: t.target.D().Seconds() * 1000,
				Value: t.l.P99, Pass: t.l.Count > 0 && t.l.P99 <= t.target.D().Seconds()*1000})
		}
	}
	if slo.ReconnectP99 > 0 {
		rc := r.Reconnect.Time
		c := Check{Name: "reconnect_p99", Target: "≤ " + msS(slo.ReconnectP99), Limit: slo.ReconnectP99.D().Seconds() * 1000, Value: rc.P99}
		if rc.Count > 0 {
			c.Actual, c.Pass = fmtMs(rc.P99), rc.P99 <= c.Limit
			c.Detail = fmt.Sprintf("%d reconnects after %d drops, %d server reconnects, %d disconnects", rc.Count, r.Reconnect.Drops, r.Reconnect.ServerReconnects, r.Reconnect.Disconnects)
		} else {
			c.Actual, c.Pass, c.Detail = "n/a", true, "no reconnects happened"
		}
		add(c)
	}
	lc := Check{Name: "max_lossy_drop", Target: "p99 ≤ " + pct(slo.MaxLossyDrop), Limit: slo.MaxLossyDrop, Value: r.Lossy.BeyondP99}
	switch {
	case r.Lossy.SteadyViewers > 0:
		lc.Actual, lc.Pass = pct(r.Lossy.BeyondP99), r.Lossy.BeyondP99 <= slo.MaxLossyDrop
		lc.Detail = fmt.Sprintf("over %d steady viewers (max %s); %d chats sent to their rooms, %d received, %d dropped by the room budget",
			r.Lossy.SteadyViewers, pct(r.Lossy.BeyondMax), r.Lossy.Sent, r.Lossy.Received, r.Lossy.Dropped)
	case chat:
		lc.Actual, lc.Detail = "no data", "no viewer stayed connected from before the first chat to the end"
	default:
		lc.Actual, lc.Pass, lc.Detail = "n/a", true, "no chat in the scenario"
	}
	add(lc)
	if tr := r.Traffic; tr.GiftsStarted > 0 || gifts {
		ratio := 0.0
		if tr.GiftsStarted > 0 {
			ratio = float64(tr.GiftsAcked) / float64(tr.GiftsStarted)
		}
		add(Check{Name: "gifts_acked", Target: "≥ " + pct(slo.GiftsAcked), Actual: pct(ratio), Limit: slo.GiftsAcked, Value: ratio,
			Pass: tr.GiftsStarted > 0 && ratio >= slo.GiftsAcked,
			Detail: fmt.Sprintf("%d of %d gifts acked (%d attempts, %d duplicate acks, %d refused, %d still pending)",
				tr.GiftsAcked, tr.GiftsStarted, tr.GiftAttempts, tr.GiftDupAcks, tr.GiftsRejected, tr.GiftsPending)})
	}
	rel := &r.Reliable
	add(Check{Name: "exactly_once", Target: "100% of reliable entries, once, at every viewer",
		Actual: fmt.Sprintf("%d missing, %d duplicated, %d doubled", rel.Missing, rel.Duplicates, rel.Doubled),
		Limit:  1, Value: deliveredRatio(rel), Pass: exactlyOnceOK(rel), Detail: reliableDetail(rel)})
	return out
}

func deliveredRatio(r *Reliable) float64 {
	if r.Expected == 0 {
		return 1
	}
	return float64(r.Expected-r.Missing) / float64(r.Expected)
}

func reliableDetail(r *Reliable) string {
	parts := []string{fmt.Sprintf("%d viewers checked over %d rooms, %d entries expected", r.Viewers, r.Rooms, r.Expected)}
	for _, f := range []struct {
		n    int64
		text string
	}{{r.ViewersMissing, "viewers missed entries"}, {r.AckMismatch, "acked seqs held another entry"},
		{r.SeqConflicts, "keys acked with two seqs"}, {r.LaneConflict, "seqs seen with different entries"},
		{r.Unseen, "acked gifts no viewer saw"}, {r.EpochChanges, "epoch changes"}, {r.Unrecovered, "resumes not recovered"}} {
		if f.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", f.n, f.text))
		}
	}
	if r.ResumeOverlaps > 0 {
		parts = append(parts, fmt.Sprintf("%d resume overlaps (permitted)", r.ResumeOverlaps))
	}
	return strings.Join(parts, "; ")
}

// trafficPlanned says whether any room sends chat and gifts.
func trafficPlanned(sc *scenario.Scenario) (chat, gifts bool) {
	for _, r := range sc.Layout("x").Rooms {
		chat = chat || r.ChatSenders > 0
		gifts = gifts || r.GiftSenders > 0
	}
	return chat, gifts
}

func fmtMs(v float64) string {
	return (time.Duration(v * float64(time.Millisecond))).Round(100 * time.Microsecond).String()
}
