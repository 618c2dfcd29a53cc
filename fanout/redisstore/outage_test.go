package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"

	"github.com/prometheus/client_golang/prometheus"
)

// failFastLimit is how long a call to a dead Redis may take in these tests:
// OpTimeout (500 ms) plus scheduling slack on a loaded 2-core machine. It is
// an upper bound against multi-second hangs, not a timing assertion.
const failFastLimit = 1500 * time.Millisecond

// allOps calls every Store method once and returns their errors by name.
func allOps(s *Store) map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"append":        func(ctx context.Context) error { return second(s.Append(ctx, "r1", "k", gift(1))) },
		"head":          func(ctx context.Context) error { return second(s.Head(ctx, "r1")) },
		"since":         func(ctx context.Context) error { return second(s.Since(ctx, "r1", "e", 0, 10)) },
		"backlog":       func(ctx context.Context) error { return second(s.Backlog(ctx, "r1")) },
		"save_backlog":  func(ctx context.Context) error { return s.SaveBacklog(ctx, "r1", nil) },
		"sanctions":     func(ctx context.Context) error { return second(s.Sanctions(ctx, "r1")) },
		"set_sanction":  func(ctx context.Context) error { return s.SetSanction(ctx, manager.Sanction{Room: "r1", User: "u"}) },
		"lift_sanction": func(ctx context.Context) error { return s.LiftSanction(ctx, "r1", "u", true) },
		"policy":        func(ctx context.Context) error { return second(s.Policy(ctx, "r1")) },
		"set_policy":    func(ctx context.Context) error { return s.SetPolicy(ctx, "r1", manager.Policy{Budget: 1}) },
		"ping":          s.Ping,
	}
}

// TestRedisDown: a refused port and a server that accepts but never answers.
// Every call fails within OpTimeout with an error that is unavailable.
func TestRedisDown(t *testing.T) {
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	held.Add(1)
	go func() { // accept and hold connections, never reply
		defer held.Done()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { hung.Close(); held.Wait() })

	for name, url := range map[string]string{
		"refused": "redis://127.0.0.1:1/0",
		"hung":    "redis://" + hung.Addr().String() + "/0",
	} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.URL = url
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			var wg sync.WaitGroup
			for op, call := range allOps(s) {
				wg.Add(1)
				go func() { // in parallel: each call alone must fail fast
					defer wg.Done()
					for range 2 { // the second call meets go-redis's state after the first failure
						start := time.Now()
						err := call(context.Background())
						if took := time.Since(start); took > failFastLimit {
							t.Errorf("%s took %v", op, took)
						}
						if !errors.Is(err, proto.CodeUnavailable) {
							t.Errorf("%s: err %v, want unavailable", op, err)
						}
					}
				}()
			}
			wg.Wait()
			t.Logf("sample error: %v", second(s.Append(context.Background(), "r1", "k", gift(1))))
		})
	}
}

// redisServer is a redis-server process of the test's own.
type redisServer struct {
	t    *testing.T
	port int
	dir  string
	args []string
	cmd  *exec.Cmd
}

// startRedis runs redis-server on a free port with extra args, or skips the
// test when redis-server is not installed.
func startRedis(t *testing.T, args ...string) *redisServer {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := &redisServer{t: t, port: port, dir: t.TempDir(), args: args}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *redisServer) start() {
	args := append([]string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--daemonize", "no", "--save", "", "--loglevel", "warning"}, r.args...)
	r.cmd = exec.Command("redis-server", args...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port), MaxRetries: -1})
	defer c.Close()
	eventually(r.t, 10*time.Second, "redis-server answers", func() bool {
		return c.Ping(context.Background()).Err() == nil
	})
}

// kill ends the server abruptly (SIGKILL: no shutdown save, like a crash).
func (r *redisServer) kill() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

// TestRedisRestart kills redis-server mid-run and starts it again while four
// senders append gifts, each retrying a failed key (same key) as the SDK does.
// With appendfsync always: calls fail fast during the outage and succeed
// after it, every key has one seq, seqs are 1..N without a gap or a repeat,
// and the epoch survives the restart.
func TestRedisRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	srv := startRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	cfg := DefaultConfig()
	cfg.URL = srv.url()
	cfg.Prefix = "restart"
	s := newTestStore(t, cfg)
	epoch := mustHead(t, s, "r1").Epoch

	const senders, each = 4, 60
	var (
		acked, failed atomic.Int64
		mu            sync.Mutex
		seqOf         = map[string]uint64{}
		wg            sync.WaitGroup
	)
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				key := fmt.Sprintf("g%d-%d", g, i)
				deadline := time.Now().Add(30 * time.Second)
				for {
					start := time.Now()
					a, err := s.Append(context.Background(), "r1", key, gift(i))
					if err == nil {
						mu.Lock()
						seqOf[key] = a.Entry.Seq
						mu.Unlock()
						acked.Add(1)
						break
					}
					failed.Add(1)
					if took := time.Since(start); took > failFastLimit || !errors.Is(err, proto.CodeUnavailable) {
						t.Errorf("key %s: failed after %v with %v; want unavailable, fast", key, took, err)
						return
					}
					if time.Now().After(deadline) {
						t.Errorf("key %s: still failing after 30 s: %v", key, err)
						return
					}
					time.Sleep(20 * time.Millisecond) // the SDK's retry backoff
				}
			}
		}()
	}
	eventually(t, 20*time.Second, "40 gifts acked before the crash", func() bool { return acked.Load() >= 40 })
	srv.kill()
	eventually(t, 10*time.Second, "sends fail during the outage", func() bool { return failed.Load() >= 8 })
	ackedDown := acked.Load()
	srv.start()
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d gifts acked before the restart, %d failed attempts during the outage", ackedDown, failed.Load())

	seqs := map[uint64]string{}
	for key, seq := range seqOf {
		if other, ok := seqs[seq]; ok {
			t.Fatalf("seq %d went to %s and %s", seq, other, key)
		}
		seqs[seq] = key
	}
	n := uint64(senders * each)
	for seq := uint64(1); seq <= n; seq++ {
		if _, ok := seqs[seq]; !ok {
			t.Fatalf("gap: seq %d of %d", seq, n)
		}
	}
	h := mustHead(t, s, "r1")
	r := mustSince(t, s, "r1", h.Epoch, 0, 0)
	if h != (manager.Head{Epoch: epoch, Seq: n}) || len(r.Entries) != int(n) || !r.Complete {
		t.Fatalf("after the restart: head %+v, %d entries; want epoch %s, seq %d", h, len(r.Entries), epoch, n)
	}
}

// TestRedisRestartWithoutPersistence: a Redis that restarts empty gives the
// room a new epoch, so a client resuming in the old one starts over.
func TestRedisRestartWithoutPersistence(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	srv := startRedis(t, "--appendonly", "no")
	cfg := DefaultConfig()
	cfg.URL = srv.url()
	cfg.Prefix = "restart"
	s := newTestStore(t, cfg)
	for i := range 5 {
		mustAppend(t, s, "r1", fmt.Sprint("k", i), gift(i))
	}
	old := mustHead(t, s, "r1")
	srv.kill()
	if _, err := s.Head(context.Background(), "r1"); !errors.Is(err, proto.CodeUnavailable) {
		t.Fatalf("head while down: %v", err)
	}
	srv.start()
	var h manager.Head
	eventually(t, 10*time.Second, "redis is back", func() bool {
		var err error
		h, err = s.Head(context.Background(), "r1")
		return err == nil
	})
	if h.Epoch == old.Epoch || h.Seq != 0 {
		t.Fatalf("head after an empty restart %+v, old %+v", h, old)
	}
	if r := mustSince(t, s, "r1", old.Epoch, 3, 0); r.Complete {
		t.Fatalf("resume in the lost epoch is complete: %+v", r)
	}
}

// TestPoolMetricsCountReconnects: a Redis restart shows as new pool dials
// in danmaku_redisstore_pool_dials_total.
func TestPoolMetricsCountReconnects(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	srv := startRedis(t)
	cfg := DefaultConfig()
	cfg.URL = srv.url()
	cfg.Prefix = "pool"
	reg := prometheus.NewRegistry()
	s := newTestStore(t, cfg, WithRegisterer(reg))
	dials := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "danmaku_redisstore_pool_dials_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatal("no danmaku_redisstore_pool_dials_total")
		return 0
	}
	mustHead(t, s, "p1")
	before := dials()
	if before < 1 {
		t.Fatalf("dials before the restart: %v", before)
	}
	srv.kill()
	srv.start()
	eventually(t, 10*time.Second, "the store to work again", func() bool {
		_, err := s.Head(context.Background(), "p1")
		return err == nil
	})
	if after := dials(); after <= before {
		t.Fatalf("dials %v after the restart, %v before", after, before)
	}
}
