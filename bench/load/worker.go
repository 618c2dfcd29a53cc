package load

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/danmaku/danmaku/bench/scenario"
	"github.com/danmaku/danmaku/bench/stats"
	"github.com/danmaku/danmaku/room/proto"
)

// Worker timing.
const (
	// StatsEvery is how often a worker reports progress.
	StatsEvery = time.Second
	// sweepEvery is how often heartbeats and deadlines are checked: pings
	// go out at half the heartbeat interval, so a second of slack is fine.
	sweepEvery = time.Second
	// finishGrace is how long a worker outlives the planned end of its run
	// (stop + drain) without a Finish before it gives up on its coordinator.
	finishGrace = time.Minute
	// fdHeadroom is what a worker keeps of its open-files limit for itself:
	// pipes, the epoll fd, sockets being closed, a log file.
	fdHeadroom = 200
	// tokenSlack extends the viewers' tokens past the run's planned end.
	tokenSlack = 10 * time.Minute
)

// ErrAborted is returned by Run when the coordinator went away (stdin closed
// or the context ended) before sending Finish.
var ErrAborted = errors.New("worker aborted before finish")

// worker runs its share of the viewers.
type worker struct {
	plan              *Plan
	sc                *scenario.Scenario
	log               *slog.Logger
	start             time.Time
	startMs           int64
	trafficAt, stopAt time.Time

	eps     []endpoint
	rooms   []*room // local rooms, in layout order
	viewers []*viewer
	senders []*viewer

	pollers                     *pollers        // the loops that read the connections
	runCtx                      context.Context // ends at the finish or abort
	dialTimeout                 time.Duration
	reconnectBase, reconnectCap time.Duration
	tokenTTL                    time.Duration
	dialSem                     chan struct{}

	counters                    counterSet
	lossyRec, relRec            *stats.Recorder
	connectH, joinH, reconnectH *stats.Recorder
	lossyTotal, relTotal        *stats.Hist
	decoders                    sync.Pool
	stopping                    atomic.Bool
	wg                          sync.WaitGroup // viewer goroutines
	loops                       sync.WaitGroup // ramp, sweeper, steps, sender loop

	baseRSS, peakRSS, rssAtPeak, peakConns int64
}

func newWorker(plan *Plan, log *slog.Logger) (*worker, error) {
	if plan.Scenario == nil || plan.Workers < 1 || plan.Worker < 0 || plan.Worker >= plan.Workers {
		return nil, fmt.Errorf("plan: worker %d of %d, scenario present %v", plan.Worker, plan.Workers, plan.Scenario != nil)
	}
	sc := plan.Scenario
	sc.Secret = plan.Secret
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	lay := sc.Layout(plan.Prefix)
	w := &worker{
		plan: plan, sc: sc, log: log,
		start:         time.Unix(0, plan.Start),
		dialTimeout:   sc.Client.DialTimeout.D(),
		reconnectBase: sc.Client.ReconnectBase.D(),
		reconnectCap:  sc.Client.ReconnectCap.D(),
		tokenTTL:      sc.Duration.D() + sc.Drain.D() + tokenSlack,
		dialSem:       make(chan struct{}, sc.Client.DialsInFlight),
		lossyRec:      stats.NewLatencyRecorder(), relRec: stats.NewLatencyRecorder(),
		connectH: stats.NewLatencyRecorder(), joinH: stats.NewLatencyRecorder(), reconnectH: stats.NewLatencyRecorder(),
		lossyTotal: stats.NewLatency(), relTotal: stats.NewLatency(),
		decoders: sync.Pool{New: func() any { return new(proto.Decoder) }},
	}
	w.startMs = w.start.UnixMilli()
	w.trafficAt = w.start.Add(sc.TrafficStart.D())
	w.stopAt = w.start.Add(sc.Duration.D())
	for _, t := range sc.Targets {
		ep, err := newEndpoint(t)
		if err != nil {
			return nil, err
		}
		w.eps = append(w.eps, ep)
	}
	spread := sc.Client.SourceAddrs == nil || *sc.Client.SourceAddrs
	byLayout := make([]*room, len(lay.Rooms))
	for i := plan.Worker; i < lay.Viewers; i += plan.Workers {
		ri, pos := lay.RoomOf(i)
		lr := &lay.Rooms[ri]
		r := byLayout[ri]
		if r == nil {
			r = &room{id: lr.ID, index: ri}
			byLayout[ri] = r
			w.rooms = append(w.rooms, r)
		}
		ep := &w.eps[i%len(w.eps)]
		v := &viewer{w: w, idx: i, room: r, ep: ep, role: proto.RoleViewer,
			user: fmt.Sprintf("bench-%s-%d", plan.RunID, i), src: SourceAddr(ep.ip, i, spread)}
		chat, like, gift := pos < lr.ChatSenders, pos < lr.LikeSenders, pos < lr.GiftSenders
		if chat {
			v.role = lr.Chat.Role
		}
		if chat || like || gift {
			v.send = &senderState{room: lr, chat: chat, like: like, gifts: gift, pending: map[uint32]request{}}
			w.senders = append(w.senders, v)
		}
		r.viewers = append(r.viewers, v)
		w.viewers = append(w.viewers, v)
	}
	if limit := MaxConnsPerWorker(sc.Client.ConnsPerWorker); len(w.viewers) > limit {
		return nil, fmt.Errorf("worker %d would hold %d connections, over its limit of %d (open files): use more workers",
			plan.Worker, len(w.viewers), limit)
	}
	return w, nil
}

func openFilesLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > math.MaxInt32 {
		return 0
	}
	return int(rl.Cur)
}

func (w *worker) decode(body []byte) (proto.Message, error) {
	d := w.decoders.Get().(*proto.Decoder)
	defer w.decoders.Put(d)
	return d.Decode(body)
}

// Run runs one worker's share of plan: it waits for the plan's start, ramps
// its viewers up, sends, reports Stats every second through emit, and on
// Finish closes everything, checks its viewers and emits its Result. cmds
// closing (the coordinator went away) or ctx ending aborts with ErrAborted.
func Run(ctx context.Context, plan *Plan, cmds <-chan Command, emit func(*Message) error, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	w, err := newWorker(plan, log)
	if err != nil {
		return err
	}
	w.baseRSS = rssBytes()
	// Poll loops: about one per CPU over all the run's workers.
	if w.pollers, err = newPollers(runtime.NumCPU() / plan.Workers); err != nil {
		return err
	}
	defer w.pollers.stop()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.runCtx = runCtx
	ticker := time.NewTicker(StatsEvery)
	defer ticker.Stop()
	watchdog := time.NewTimer(time.Until(w.stopAt.Add(w.sc.Drain.D() + finishGrace)))
	defer watchdog.Stop()
	w.loops.Add(4)
	go w.ramp(runCtx)
	go w.sweeper(runCtx)
	go w.steps(runCtx)
	go w.sendLoop(runCtx, w.senders)
	log.Info("worker started", "worker", plan.Worker, "viewers", len(w.viewers), "senders", len(w.senders))
	for {
		select {
		case <-ticker.C:
			if err := emit(&Message{Stats: w.progress(time.Now())}); err != nil {
				w.shutdown(cancel)
				return fmt.Errorf("report stats: %w", err)
			}
		case cmd, ok := <-cmds:
			if !ok {
				w.shutdown(cancel)
				return ErrAborted
			}
			if cmd.Finish != nil {
				joinedAtEnd := w.joinedNow()
				w.shutdown(cancel)
				return emit(&Message{Result: w.result(cmd.Finish, joinedAtEnd)})
			}
		case <-watchdog.C:
			w.shutdown(cancel)
			return fmt.Errorf("no finish from the coordinator %s after the planned end: %w", finishGrace, ErrAborted)
		case <-ctx.Done():
			w.shutdown(cancel)
			return ErrAborted
		}
	}
}

// shutdown stops the loops, closes every connection and waits for every
// viewer goroutine.
func (w *worker) shutdown(cancel context.CancelFunc) {
	w.stopping.Store(true)
	cancel()
	w.loops.Wait() // the ramp starts no viewer after this
	for _, v := range w.viewers {
		v.cut("finish")
	}
	w.wg.Wait()
}

func (w *worker) joinedNow() []bool {
	j := make([]bool, len(w.viewers))
	for i, v := range w.viewers {
		j[i] = v.joined.Load()
	}
	return j
}

// ramp starts each viewer at its moment: viewer i of the run at
// start + i / joins_per_second, so the run's ramp is smooth over workers.
func (w *worker) ramp(ctx context.Context) {
	defer w.loops.Done()
	if !sleepCtx(ctx, time.Until(w.start)) {
		return
	}
	jps := w.sc.Ramp.JoinsPerSecond
	for _, v := range w.viewers {
		due := w.start.Add(time.Duration(float64(v.idx) / jps * float64(time.Second)))
		if d := time.Until(due); d > time.Millisecond && !sleepCtx(ctx, d) {
			return
		}
		if ctx.Err() != nil {
			return
		}
		w.counters.inc(Viewers)
		v.need()
		w.wg.Add(1) // Done when the viewer is over (see viewer.run)
		go v.run(ctx)
	}
}

// sweeper sends heartbeats and enforces the deadlines the protocol sets:
// a ping at half the heartbeat interval, a dead connection after two
// intervals without a frame, a join or resume unanswered past dial_timeout.
// One goroutine per worker instead of a timer per connection.
func (w *worker) sweeper(ctx context.Context) {
	defer w.loops.Done()
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	timeout := w.dialTimeout.Milliseconds()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			ms := now.UnixMilli()
			for _, v := range w.viewers {
				hb := v.hbMs.Load()
				switch {
				case hb == 0: // not welcomed yet: the handshake has its own deadline
				case v.phaseAt.Load() != 0 && ms-v.phaseAt.Load() > timeout:
					v.cut("join_timeout")
				case ms-v.lastRead.Load() > 2*hb:
					v.cut("heartbeat")
				case ms-v.lastWrite.Load() >= hb/2:
					v.ping()
				}
			}
		}
	}
}

// steps runs the scenario's drop steps (scale steps act in the send loop).
func (w *worker) steps(ctx context.Context) {
	defer w.loops.Done()
	steps := make([]int, 0, len(w.sc.Steps))
	for i, st := range w.sc.Steps {
		if st.Drop > 0 {
			steps = append(steps, i)
		}
	}
	sort.SliceStable(steps, func(a, b int) bool { return w.sc.Steps[steps[a]].At < w.sc.Steps[steps[b]].At })
	for _, i := range steps {
		st := w.sc.Steps[i]
		if !sleepCtx(ctx, time.Until(w.start.Add(st.At.D()))) {
			return
		}
		reconnect := st.Reconnect == nil || *st.Reconnect
		n := 0
		for _, v := range w.viewers {
			if v.joined.Load() && pick(w.plan.RunID, v.idx, i) < st.Drop && v.drop(reconnect) {
				n++
			}
		}
		w.counters.add(Drops, int64(n))
		w.log.Info("drop step", "worker", w.plan.Worker, "step", i, "dropped", n, "reconnect", reconnect)
	}
}

// pick is a deterministic uniform number in [0, 1) for viewer idx at step:
// which viewers a drop cuts does not depend on timing.
func pick(runID string, idx, step int) float64 {
	x := uint64(idx)*0x9e3779b97f4a7c15 ^ uint64(step)<<40
	for i := 0; i < len(runID); i++ {
		x = x*31 + uint64(runID[i])
	}
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// progress is the worker's Stats now.
func (w *worker) progress(now time.Time) *Stats {
	lossy, rel := stats.NewLatency(), stats.NewLatency()
	w.lossyRec.Take(lossy)
	w.relRec.Take(rel)
	w.lossyTotal.Merge(lossy)
	w.relTotal.Merge(rel)
	ls, _ := lossy.Encode()
	rs, _ := rel.Encode()
	if rss := rssBytes(); rss > w.peakRSS {
		w.peakRSS = rss
	}
	if c := w.counters.get(Connected); c > w.peakConns {
		w.peakConns, w.rssAtPeak = c, rssBytes()
	}
	st := &Stats{Worker: w.plan.Worker, At: now.UnixMilli(), Counters: w.counters.snapshot(), Lossy: ls, Reliable: rs}
	for _, r := range w.rooms {
		p := RoomProgress{Room: r.id, MaxSeen: r.maxSeen.Load(), MaxAcked: r.maxAcked.Load(),
			MinLast: math.MaxUint64, ChatsAcked: r.chatsAcked.Load()}
		for _, v := range r.viewers {
			if v.joined.Load() {
				p.Joined++
				p.MinLast = min(p.MinLast, v.last.Load())
			}
		}
		st.Rooms = append(st.Rooms, p)
	}
	return st
}

// result checks every viewer against the heads and gathers the worker's
// figures. Every viewer goroutine has ended, so their state is stable.
func (w *worker) result(f *Finish, joinedAtEnd []bool) *Result {
	final := w.progress(time.Now()) // flushes the interval histograms into the totals
	res := &Result{Worker: w.plan.Worker, Counters: final.Counters}
	lossy := stats.NewLossy()
	for i, v := range w.viewers {
		switch {
		case !v.hasBase:
			res.Counters["viewers_never_joined"]++
			continue
		case !joinedAtEnd[i]:
			res.Counters["viewers_not_joined_at_end"]++
			continue
		case v.epochBroken:
			continue // counted in epoch_changes, which fails the check
		}
		before := res.Exactly.ViewersMissing
		res.Exactly.Add(&v.seqs, f.Heads[v.room.id], v.wireDups, v.overlaps)
		if v.lostOnResume > 0 {
			res.Exactly.Missing += v.lostOnResume
			if res.Exactly.ViewersMissing == before {
				res.Exactly.ViewersMissing++
			}
		}
		if v.steady {
			lossy.Add(f.ChatsSent[v.room.id], v.chatsIn, v.droppedIn)
		}
	}
	res.LossyTally = *lossy
	res.LossyRatios, _ = lossy.Ratios.Encode()
	for _, v := range w.senders {
		for _, g := range v.send.sent {
			res.Gifts = append(res.Gifts, g.GiftRecord)
		}
	}
	for _, r := range w.rooms {
		res.Lane = append(res.Lane, r.lane.list()...)
	}
	enc := func(r *stats.Recorder) string {
		h := stats.NewLatency()
		r.Take(h)
		s, _ := h.Encode()
		return s
	}
	res.Connect, res.Join, res.Reconnect = enc(w.connectH), enc(w.joinH), enc(w.reconnectH)
	res.Lossy, _ = w.lossyTotal.Encode()
	res.Reliable, _ = w.relTotal.Encode()
	res.CPUSeconds = cpuSeconds()
	res.PeakRSS = w.peakRSS
	res.PeakConns = w.peakConns
	if w.peakConns > 0 && w.rssAtPeak > w.baseRSS {
		res.RSSPerConn = (w.rssAtPeak - w.baseRSS) / w.peakConns
	}
	return res
}
