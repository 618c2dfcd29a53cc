package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/danmaku/danmaku/bench/stats"
)

// WriteSummary writes the end-of-run table: the verdict, every check, and
// the main figures.
func (r *Report) WriteSummary(w io.Writer) {
	verdict := "PASS"
	switch {
	case r.Interrupted:
		verdict = "INTERRUPTED (no verdict)"
	case !r.Passed:
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "\ndanmaku bench: %s (run %s) — %s\n", r.Scenario, r.RunID, verdict)
	fmt.Fprintf(w, "targets: %s · workers: %d · elapsed: %.1fs\n\n", strings.Join(r.Targets, ", "), r.Workers, r.Elapsed)
	if len(r.Checks) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CHECK\tTARGET\tACTUAL\tRESULT")
		for _, c := range r.Checks {
			res := "ok"
			if !c.Pass {
				res = "MISSED"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.Target, c.Actual, res)
		}
		tw.Flush()
		for _, c := range r.Checks {
			if !c.Pass && c.Detail != "" {
				fmt.Fprintf(w, "  %s: %s\n", c.Name, c.Detail)
			}
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	v := r.Viewers
	row("viewers", "%d planned, %d joined, peak %d connected, %d never joined, %d not joined at the end",
		v.Planned, v.FirstJoins, v.PeakConnected, v.NeverJoined, v.NotJoinedAtEnd)
	c := r.Connect
	row("connect", "%d/%d done; dial→welcome %s; join→joined %s%s", c.Done, c.Needed,
		quant(c.ConnectTime), quant(c.JoinTime), reasons(" · failures", c.Failures))
	for _, class := range []string{"lossy", "reliable"} {
		if l, ok := r.Latency[class]; ok {
			row("latency "+class, "%s (%d deliveries)", quant(l), l.Count)
		}
	}
	rc := r.Reconnect
	row("reconnect", "%d drops, %d server reconnects, %d disconnects; break→resumed %s%s",
		rc.Drops, rc.ServerReconnects, rc.Disconnects, quant(rc.Time), reasons(" ·", rc.Reasons))
	t := r.Traffic
	row("traffic", "chats %d sent, %d acked (%d sampled out, %d rejected, %d unacked); likes %d; gifts %d/%d acked (%d attempts, %d dup acks, %d refused)%s",
		t.ChatsSent, t.ChatsAcked, t.ChatsSampledOut, t.ChatsRejected, t.ChatsUnacked, t.LikesSent,
		t.GiftsAcked, t.GiftsStarted, t.GiftAttempts, t.GiftDupAcks, t.GiftsRejected, reasons(" ·", t.Rejections))
	d := r.Deliveries
	row("delivered", "%d batches (%s), %d chat and %d reliable entries (+%d replayed), %d likes, %d missed batches, %d bad frames",
		d.Batches, bytesSI(float64(d.BytesIn)), d.LossyEntries, d.ReliableEntries, d.ReplayEntries, d.LikesIn, d.MissedBatches, d.BadFrames)
	rel := r.Reliable
	row("exactly once", "%d viewers, %d entries expected: %d missing, %d duplicated, %d resume overlaps; ledger: %d gifts checked, %d doubled, %d mismatched; %d gap resumes, %d unrecovered",
		rel.Viewers, rel.Expected, rel.Missing, rel.Duplicates, rel.ResumeOverlaps, rel.GiftsChecked, rel.Doubled, rel.AckMismatch, rel.GapResumes, rel.Unrecovered)
	l := r.Lossy
	row("lossy", "%d steady viewers: %d sent, %d received, %d dropped by budget; beyond budget p50 %.3f%% p99 %.3f%% max %.3f%%",
		l.SteadyViewers, l.Sent, l.Received, l.Dropped, 100*l.BeyondP50, 100*l.BeyondP99, 100*l.BeyondMax)
	cl := r.Client
	row("bench", "%d workers, CPU %.1f s (%.2f cores), RSS %s, %s per connection",
		cl.Workers, cl.CPUSeconds, cl.CPUCores, bytesSI(float64(cl.PeakRSS)), bytesSI(float64(cl.RSSPerConn)))
	for _, s := range r.Servers {
		if !s.Reachable {
			row("server", "%s: not scraped (%s)", s.URL, s.Error)
			continue
		}
		row("server", "%s: CPU %.2f cores, RSS %s (peak %s)%s", s.URL, s.CPUCores, bytesSI(s.RSS), bytesSI(s.PeakRSS), reasons(" · drops", s.Drops))
	}
	tw.Flush()
	for _, wr := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", wr)
	}
	for _, e := range rel.Examples {
		fmt.Fprintf(w, "ledger: %s\n", e)
	}
}

func quant(l stats.Latency) string {
	if l.Count == 0 {
		return "n/a"
	}
	return fmt.Sprintf("p50 %s p99 %s max %s", fmtMs(l.P50), fmtMs(l.P99), fmtMs(l.Max))
}

// reasons formats m as "prefix k1 v1, k2 v2" in key order ("" when empty).
func reasons[V int64 | float64](prefix string, m map[string]V) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %v", k, m[k])
	}
	return prefix + " " + strings.Join(parts, ", ")
}

func bytesSI(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}
