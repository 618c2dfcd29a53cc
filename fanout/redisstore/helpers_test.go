package redisstore

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// testRedisURL is the shared Redis of the machine, or $DANMAKU_TEST_REDIS_URL
// (e.g. to benchmark a server with appendfsync always). Tests never flush it:
// they work under a random prefix and delete what they wrote.
var testRedisURL = cmp.Or(os.Getenv("DANMAKU_TEST_REDIS_URL"), "redis://127.0.0.1:6379/0")

// quiet drops go-redis's own log lines (one per failed dial in the outage
// tests); the store's errors and metrics say the same.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	goleak.VerifyTestMain(m,
		// go-redis probes a refusing server from a goroutine that sleeps 1 s
		// between tries and exits at its next wake-up after Close.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"),
	)
}

// testConfig is DefaultConfig on the shared Redis under a fresh prefix.
func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.URL = testRedisURL
	cfg.Prefix = fmt.Sprintf("dmktest%08x", rand.Uint32())
	t.Logf("key prefix %s", cfg.Prefix)
	return cfg
}

// newTestStore opens a store with cfg and deletes the prefix's keys when the
// test ends.
func newTestStore(t testing.TB, cfg Config, opts ...Option) *Store {
	t.Helper()
	opts = append([]Option{WithRegisterer(prometheus.NewRegistry()), WithLogger(testLogger(t))}, opts...)
	s, err := New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Ping(context.Background()); err != nil {
		s.Close()
		t.Fatalf("redis at %s is required: %v", cfg.URL, err)
	}
	t.Cleanup(func() {
		deletePrefix(t, s.Client(), cfg.Prefix)
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// deletePrefix removes every key under prefix with SCAN + DEL.
func deletePrefix(t testing.TB, c redis.UniversalClient, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("scan %s: %v", prefix, err)
		return
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := c.Del(ctx, keys[:n]...).Err(); err != nil {
			t.Errorf("del %s: %v", prefix, err)
			return
		}
		keys = keys[n:]
	}
}

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond) // poll interval, not a wait for the condition
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// counterValue reads a counter (prometheus/testutil would pull in more modules).
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// testLogger logs through t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}
