package bench

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// plainEvery is how often the plain (non-terminal) progress prints a line.
const plainEvery = 5 * time.Second

// progress shows a run as it goes.
type progress interface {
	update(p point)
	finish()
}

// newProgress picks the display: bars on a terminal, lines otherwise,
// nothing without a writer. longest is the run's longest length (duration
// plus drain).
func newProgress(w io.Writer, planned int64, duration, longest time.Duration) progress {
	if w == nil {
		return nopProgress{}
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return newBars(w, planned, duration, longest)
	}
	return &lines{w: w, planned: planned, duration: duration}
}

type nopProgress struct{}

func (nopProgress) update(point) {}
func (nopProgress) finish()      {}

// bars is a progress bar of the run's time (it cannot end early: a
// finished bar stops rendering), described by the joined viewers, with two
// detail rows: traffic and this second's p99s.
type bars struct {
	bar      *progressbar.ProgressBar
	planned  int64
	duration time.Duration
	max      int64
}

func newBars(w io.Writer, planned int64, duration, longest time.Duration) *bars {
	max := int64(longest.Seconds()) + 1
	b := progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("starting"),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetMaxDetailRow(2),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionEnableColorCodes(true),
	)
	return &bars{bar: b, planned: planned, duration: duration, max: max}
}

func (b *bars) update(p point) {
	phase := "running"
	if p.T > b.duration.Seconds() {
		phase = "draining"
	}
	b.bar.Describe(fmt.Sprintf("%s %3.0fs/%s · joined %d/%d", phase, p.T, b.duration, p.Joined, b.planned))
	_ = b.bar.Set64(min(b.max-1, int64(p.T)))
	_ = b.bar.AddDetail(trafficLine(p))
	_ = b.bar.AddDetail(latencyLine(p))
}

func (b *bars) finish() {
	_ = b.bar.Finish()
	_ = b.bar.Exit()
}

// lines prints one line every plainEvery, for logs and CI.
type lines struct {
	w        io.Writer
	planned  int64
	duration time.Duration
	last     float64
}

func (l *lines) update(p point) {
	if p.T-l.last < plainEvery.Seconds() && p.T > 0.5 {
		return
	}
	l.last = p.T
	fmt.Fprintf(l.w, "[%3.0fs/%s] joined %d/%d · %s · %s\n", p.T, l.duration, p.Joined, l.planned, trafficLine(p), latencyLine(p))
}

func (l *lines) finish() {}

func trafficLine(p point) string {
	return fmt.Sprintf("deliveries %s/s chat, %s/s reliable · chats sent %s/s · gifts %d/%d acked · drops %d",
		si(p.LossyPS), si(p.ReliablePS), si(p.ChatsPS), p.GiftsAcked, p.GiftsSent, p.Drops)
}

func latencyLine(p point) string {
	return fmt.Sprintf("p99 this second: chat %s, reliable %s · connected %d", msOrDash(p.LossyP99), msOrDash(p.ReliableP99), p.Connected)
}

// msOrDash is a latency, or "–" for a second without samples.
func msOrDash(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmtMs(v)
}

// si formats a rate with a k/M suffix.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
