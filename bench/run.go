package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/danmaku/danmaku/bench/load"
	"github.com/danmaku/danmaku/bench/scenario"
	"github.com/danmaku/danmaku/bench/stats"
)

// Coordinator timing.
const (
	// startDelay gives worker processes time to start and read their plan
	// before the first dial; startPerWorker adds to it per worker.
	startDelay     = 500 * time.Millisecond
	startPerWorker = 100 * time.Millisecond
	// resultTimeout is how long workers get to report after the finish:
	// closing ~19,000 sockets and checking every viewer takes seconds.
	resultTimeout = time.Minute
)

// Options tune RunScenario beyond the scenario.
type Options struct {
	// Logger gets the coordinator's log (workers' logs at debug level);
	// nil means slog.Default().
	Logger *slog.Logger
	// Progress receives live progress: bars when it is a terminal, a plain
	// line every few seconds otherwise; nil shows nothing.
	Progress io.Writer
	// Executable and WorkerArgs start a worker process. Defaults: this
	// process's own executable and ["bench-worker"], the danmaku binary's
	// hidden subcommand. A test binary passes nil args and runs WorkerMain
	// from its TestMain when the environment has WorkerEnv.
	Executable string
	WorkerArgs []string
	// RunID names the run (user ids, gift keys, default room prefix);
	// "" draws a random one.
	RunID string
}

// ErrInterrupted is returned with a partial report when ctx ended (Ctrl-C)
// before the run did.
var ErrInterrupted = errors.New("the run was interrupted")

// RunScenario runs a validated scenario against its targets: it checks the
// targets, starts the worker processes, follows their progress, ends the
// drain, and judges what they measured against the scenario's SLOs.
//
// An error means the run could not be made (exit code 2): invalid scenario,
// no target reachable, a worker failed. Otherwise Report.Passed says whether
// every target was met. On ctx's end it stops the workers and returns what
// was measured so far with ErrInterrupted.
func RunScenario(ctx context.Context, sc *scenario.Scenario, opts Options) (*Report, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	runID := opts.RunID
	if runID == "" {
		runID = newRunID()
	}
	prefix := sc.RoomPrefixFor(runID)
	lay := sc.Layout(prefix)
	perWorker := load.MaxConnsPerWorker(sc.Client.ConnsPerWorker)
	n := scenario.Workers(lay.Viewers, perWorker, sc.Client.Workers)
	if need := scenario.Workers(lay.Viewers, perWorker, 0); n < need {
		return nil, fmt.Errorf("%d workers cannot hold %d viewers at %d connections each (open-files limit): use %d or more",
			n, lay.Viewers, perWorker, need)
	}

	var warnings []string
	reachable := 0
	for _, err := range preflight(ctx, sc, "bench-"+runID+"-probe") {
		if err == nil {
			reachable++
			continue
		}
		warnings = append(warnings, err.Error()) // it names the target
	}
	if reachable == 0 {
		return nil, fmt.Errorf("no target reachable: %s", strings.Join(warnings, "; "))
	}
	for _, w := range warnings {
		log.Warn("target not reachable before the run", "detail", w)
	}

	scr := newScraper(sc.Metrics)
	scr.scrape(ctx)

	c := &coordinator{sc: sc, opts: &opts, log: log, runID: runID, prefix: prefix, workers: n,
		planned: int64(lay.Viewers), scr: scr, warnings: warnings}
	return c.run(ctx)
}

func newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// coordinator runs the worker processes of one run.
type coordinator struct {
	sc       *scenario.Scenario
	opts     *Options
	log      *slog.Logger
	runID    string
	prefix   string
	workers  int
	planned  int64
	scr      *scraper
	warnings []string

	procs   []*workerProc
	start   time.Time
	tracker *tracker
	results []*load.Result
	heads   map[string]uint64
}

func (c *coordinator) run(ctx context.Context) (*Report, error) {
	events := make(chan event, 16*c.workers)
	c.start = time.Now().Add(startDelay + time.Duration(c.workers)*startPerWorker)
	defer c.stopAll()
	for i := 0; i < c.workers; i++ {
		p, err := spawn(i, c.opts, events, c.log)
		if err != nil {
			return nil, err
		}
		c.procs = append(c.procs, p)
		plan := &load.Plan{Worker: i, Workers: c.workers, RunID: c.runID, Prefix: c.prefix,
			Scenario: c.sc, Secret: c.sc.Secret, Start: c.start.UnixNano()}
		if err := p.send(plan); err != nil {
			return nil, err
		}
	}
	c.log.Info("bench started", "scenario", c.sc.Name, "run", c.runID, "workers", c.workers, "viewers", c.planned)
	c.tracker = newTracker(c.workers, c.start)
	c.results = make([]*load.Result, c.workers)
	prog := newProgress(c.opts.Progress, c.planned, c.sc.Duration.D(), c.sc.Duration.D()+c.sc.Drain.D())
	defer prog.finish()

	stopAt := c.start.Add(c.sc.Duration.D())
	drainEnd := stopAt.Add(c.sc.Drain.D())
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	scrapeTick := time.NewTicker(scrapeEvery)
	defer scrapeTick.Stop()
	var scraping atomic.Bool
	var finishAt time.Time
	got, exited := 0, 0
	for got < c.workers || exited < c.workers {
		select {
		case ev := <-events:
			switch {
			case ev.msg != nil && ev.msg.Stats != nil:
				c.tracker.add(ev.msg.Stats)
			case ev.msg != nil && ev.msg.Result != nil:
				if c.results[ev.worker] == nil {
					got++
				}
				c.results[ev.worker] = ev.msg.Result
			case ev.done:
				exited++
				if c.results[ev.worker] == nil {
					if ctx.Err() != nil {
						return c.interrupted()
					}
					err := ev.err
					if err == nil {
						err = fmt.Errorf("worker %d exited without a result%s", ev.worker, c.procs[ev.worker].tail.String())
					}
					return nil, fmt.Errorf("a worker failed: %w", err)
				}
			}
		case now := <-tick.C:
			prog.update(c.tracker.point(now))
			switch {
			case finishAt.IsZero() && now.After(stopAt) && (now.After(drainEnd) || c.tracker.settled(stopAt)):
				finishAt = now
				if err := c.finish(now.After(drainEnd)); err != nil {
					return nil, err
				}
			case !finishAt.IsZero() && now.Sub(finishAt) > resultTimeout:
				return nil, fmt.Errorf("workers did not report within %s of the finish (%d of %d did)", resultTimeout, got, c.workers)
			}
		case <-scrapeTick.C:
			if scraping.CompareAndSwap(false, true) {
				go func() { c.scr.scrape(ctx); scraping.Store(false) }()
			}
		case <-ctx.Done():
			return c.interrupted()
		}
	}
	finished := time.Now()
	for scraping.Load() { // let a periodic scrape end before the last one
		time.Sleep(10 * time.Millisecond)
	}
	c.scr.scrape(context.WithoutCancel(ctx))
	return c.report(finished), nil
}

// finish ends the drain: every worker gets the heads and the chats sent.
func (c *coordinator) finish(timedOut bool) error {
	heads, chats := c.tracker.heads()
	c.heads = heads
	if timedOut {
		c.warnings = append(c.warnings, fmt.Sprintf("the drain ran its full %s: something was still in flight", c.sc.Drain))
	}
	c.log.Debug("finishing", "drain_timed_out", timedOut, "rooms", len(heads))
	for _, p := range c.procs {
		if err := p.send(&load.Command{Finish: &load.Finish{Heads: heads, ChatsSent: chats}}); err != nil {
			return err
		}
	}
	return nil
}

// stopAll closes every worker's stdin and waits for the processes (killing
// those that linger).
func (c *coordinator) stopAll() {
	done := make(chan struct{}, len(c.procs))
	for _, p := range c.procs {
		go func() { p.stop(); done <- struct{}{} }()
	}
	for range c.procs {
		<-done
	}
}

// interrupted returns what was measured before the interruption.
func (c *coordinator) interrupted() (*Report, error) {
	c.stopAll()
	r := c.base(time.Now())
	r.Interrupted = true
	counters := c.tracker.counters()
	r.Counters = counters
	fillCounters(r, counters)
	r.Latency["lossy"], r.Latency["reliable"] = c.tracker.lossyAll.Summary(), c.tracker.relAll.Summary()
	return r, ErrInterrupted
}

// base is the part of a report every run has.
func (c *coordinator) base(finished time.Time) *Report {
	return &Report{
		Scenario: c.sc.Name, Description: c.sc.Description, RunID: c.runID, Targets: c.sc.Targets,
		Started: c.start, Finished: finished, Elapsed: finished.Sub(c.start).Seconds(), Workers: c.workers,
		Warnings: c.warnings, Series: c.tracker.series, Servers: c.scr.report(),
		Viewers: Viewers{Planned: c.planned, PeakConnected: c.tracker.peakConn}, Latency: map[string]stats.Latency{},
	}
}

// report assembles the final report from the workers' results.
func (c *coordinator) report(finished time.Time) *Report {
	m := merge(c.results)
	r := c.base(finished)
	r.Counters = m.counters
	fillCounters(r, m.counters)
	r.Connect.ConnectTime, r.Connect.JoinTime = m.connect.Summary(), m.join.Summary()
	r.Reconnect.Time = m.reconnect.Summary()
	r.Latency["lossy"], r.Latency["reliable"] = m.lossy.Summary(), m.reliable.Summary()
	r.Reliable.Tally = m.exactly
	r.Reliable.Duplicates = max(r.Reliable.Duplicates, uint64(m.counters["wire_duplicates"])) // also viewers not joined at the end
	r.Reliable.Heads, r.Reliable.Rooms = c.heads, len(c.heads)
	ledgerCheck(m.gifts, m.lane, &r.Reliable)
	lt := m.lossyTally
	ratio := func(ppm int64) float64 { return float64(ppm) / stats.MaxPPM }
	r.Lossy = Lossy{SteadyViewers: lt.SteadyViewers, Sent: lt.Sent, Received: lt.Received, Dropped: lt.Dropped,
		BeyondP50: ratio(m.lossyRatios.Quantile(0.5)), BeyondP99: ratio(m.lossyRatios.Quantile(0.99)), BeyondMax: ratio(m.lossyRatios.Max())}
	// CPU: the workers' and the coordinator's own.
	r.Client = Client{Workers: c.workers, CPUSeconds: m.cpu + load.CPUSeconds(), PeakRSS: m.peakRSS, RSSPerConn: m.rssPerConn, WorkerConns: m.workerConns}
	if r.Elapsed > 0 {
		r.Client.CPUCores = m.cpu / r.Elapsed
	}
	if m.badHists > 0 || c.tracker.badHists > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d histogram snapshots could not be decoded", m.badHists+c.tracker.badHists))
	}
	r.Checks = evaluate(c.sc, r)
	r.Passed = true
	for _, ch := range r.Checks {
		r.Passed = r.Passed && ch.Pass
	}
	return r
}

// fillCounters copies the summed counters into the report's sections.
func fillCounters(r *Report, c load.Counters) {
	prefixed := func(p string) map[string]int64 {
		var m map[string]int64
		for k, v := range c {
			if strings.HasPrefix(k, p) && v > 0 {
				if m == nil {
					m = map[string]int64{}
				}
				m[strings.TrimPrefix(k, p)] = v
			}
		}
		return m
	}
	r.Viewers.Started, r.Viewers.FirstJoins = c["viewers"], c["first_joins"]
	r.Viewers.NeverJoined, r.Viewers.NotJoinedAtEnd, r.Viewers.Left = c["viewers_never_joined"], c["viewers_not_joined_at_end"], c["viewers_left"]
	r.Connect.Needed, r.Connect.Done = c["connects_needed"], c["connects_done"]
	if r.Connect.Needed > 0 {
		r.Connect.SuccessRatio = float64(r.Connect.Done) / float64(r.Connect.Needed)
	}
	r.Connect.Dials, r.Connect.DialFailures, r.Connect.Failures = c["dials"], c["dial_failures"], prefixed("fail.")
	r.Reconnect.Drops, r.Reconnect.ServerReconnects, r.Reconnect.Disconnects = c["drops"], c["server_reconnects"], c["disconnects"]
	r.Reconnect.Reasons = prefixed("disconnect.")
	r.Traffic = Traffic{
		ChatsSent: c["chats_sent"], ChatsAcked: c["chats_acked"], ChatsSampledOut: c["chats_sampled_out"],
		ChatsRejected: c["chats_rejected"], ChatsUnacked: c["chats_unacked"], ChatsSkipped: c["chats_skipped"],
		LikesSent: c["likes_sent"], LikesAcked: c["likes_acked"],
		GiftsStarted: c["gifts_started"], GiftAttempts: c["gift_attempts"], GiftsAcked: c["gifts_acked"],
		GiftDupAcks: c["gift_dup_acks"], GiftsRejected: c["gifts_rejected"], GiftsPending: c["gifts_pending"],
		ServerErrors: prefixed("error."),
	}
	for _, kind := range []string{"chat.", "like.", "gift."} {
		for k, v := range prefixed(kind) {
			if r.Traffic.Rejections == nil {
				r.Traffic.Rejections = map[string]int64{}
			}
			r.Traffic.Rejections[kind+k] = v
		}
	}
	r.Deliveries = Deliveries{Batches: c["batches"], BytesIn: c["bytes_in"], LossyEntries: c["lossy_entries"],
		ReliableEntries: c["reliable_entries"], ReplayEntries: c["replay_entries"], LikesIn: c["likes_in"],
		MissedBatches: c["missed_batches"], BadFrames: c["bad_frames"]}
	r.Reliable.GapResumes, r.Reliable.Unrecovered, r.Reliable.EpochChanges = c["gap_resumes"], c["unrecovered"], c["epoch_changes"]
	r.Reliable.Duplicates = uint64(c["wire_duplicates"])
}
