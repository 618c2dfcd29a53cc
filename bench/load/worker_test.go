package load

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/danmaku/danmaku/bench/internal/fakeedge"
	"github.com/danmaku/danmaku/bench/scenario"
	"github.com/danmaku/danmaku/bench/stats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "worker-test-secret"

func startEdge(t *testing.T, f fakeedge.Faults) *fakeedge.Server {
	t.Helper()
	s, err := fakeedge.Start(fakeedge.Config{Secret: []byte(secret), Faults: f, Heartbeat: 2000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func testScenario(t *testing.T, yaml string) *scenario.Scenario {
	t.Helper()
	sc, err := scenario.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	sc.Secret = secret
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	return sc
}

// runOne runs a single in-process worker to its Result, acting as a minimal
// coordinator: it waits for the planned end, then for the viewers to catch
// up with the heads (bounded), then finishes.
func runOne(t *testing.T, sc *scenario.Scenario) (*Result, []*Stats) {
	t.Helper()
	plan := &Plan{Worker: 0, Workers: 1, RunID: "t1", Prefix: "t1-", Scenario: sc, Secret: secret,
		Start: time.Now().Add(100 * time.Millisecond).UnixNano()}
	cmds := make(chan Command, 1)
	var mu sync.Mutex
	var all []*Stats
	var res *Result
	emit := func(m *Message) error {
		mu.Lock()
		defer mu.Unlock()
		if m.Stats != nil {
			all = append(all, m.Stats)
		}
		if m.Result != nil {
			res = m.Result
		}
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), plan, cmds, emit, nil) }()
	end := time.Unix(0, plan.Start).Add(sc.Duration.D())
	deadline := end.Add(sc.Drain.D())
	for {
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		var last *Stats
		if len(all) > 0 {
			last = all[len(all)-1]
		}
		mu.Unlock()
		if time.Now().Before(end) || last == nil || last.At < end.Add(200*time.Millisecond).UnixMilli() {
			continue
		}
		if settled(last) || time.Now().After(deadline) {
			break
		}
	}
	mu.Lock()
	last := all[len(all)-1]
	mu.Unlock()
	f := &Finish{Heads: map[string]uint64{}, ChatsSent: map[string]uint64{}}
	for _, r := range last.Rooms {
		f.Heads[r.Room] = max(r.MaxSeen, r.MaxAcked)
		f.ChatsSent[r.Room] = r.ChatsAcked
	}
	cmds <- Command{Finish: f}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return res, all
}

func settled(s *Stats) bool {
	c := s.Counters
	if c["gifts_pending"] > 0 || c["chats_sent"] > c["chats_acked"]+c["chats_rejected"]+c["chats_unacked"] {
		return false
	}
	for _, r := range s.Rooms {
		if r.Joined > 0 && r.MinLast < max(r.MaxSeen, r.MaxAcked) {
			return false
		}
	}
	return true
}

func TestWorkerAgainstFakeEdge(t *testing.T) {
	for _, transport := range []string{"ws", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			edge := startEdge(t, fakeedge.Faults{SwallowGiftAck: 3})
			target := "ws://" + edge.Addr() + "/ws"
			if transport == "tcp" {
				target = "tcp://" + edge.Addr()
			}
			sc := testScenario(t, fmt.Sprintf(`
targets: [%s]
duration: 3s
traffic_start: 800ms
drain: 5s
ramp: {joins_per_second: 200}
rooms:
  - {id: a, viewers: 30}
  - {id: b, count: 2, viewers: 10}
chat: {senders: 0.2, rate: 4}
likes: {senders: 0.1, rate: 2, count: 3}
gifts: {rate: 5, senders: 2, retry: 300ms}
steps:
  - {at: 1500ms, drop: 0.3}
`, target))
			res, all := runOne(t, sc)
			c := res.Counters
			t.Logf("counters: %v", c)
			t.Logf("exactly: %+v lossy: %+v", res.Exactly, res.LossyTally)
			if c["first_joins"] != 50 || c["connects_done"] != c["connects_needed"] {
				t.Errorf("joins %d, connects %d/%d", c["first_joins"], c["connects_done"], c["connects_needed"])
			}
			if c["drops"] == 0 || c["drops"] > 30 {
				t.Errorf("drops %d, want about 30%% of 50", c["drops"])
			}
			if res.Exactly.Viewers != 50 || res.Exactly.Missing != 0 || res.Exactly.Duplicates != 0 {
				t.Errorf("exactly-once %+v", res.Exactly)
			}
			if c["gifts_acked"] != c["gifts_started"] || c["gifts_started"] == 0 || c["gift_dup_acks"] == 0 {
				t.Errorf("gifts started %d acked %d dup acks %d", c["gifts_started"], c["gifts_acked"], c["gift_dup_acks"])
			}
			if int64(len(res.Gifts)) != c["gifts_started"] {
				t.Errorf("%d gift records for %d gifts", len(res.Gifts), c["gifts_started"])
			}
			if c["chats_acked"] == 0 || c["lossy_entries"] == 0 || c["likes_in"] == 0 {
				t.Errorf("no traffic: %v", c)
			}
			if res.LossyTally.SteadyViewers == 0 {
				t.Errorf("no steady viewers")
			}
			ratios, err := stats.Decode(res.LossyRatios)
			if err != nil || ratios.Max() > 0 {
				t.Errorf("lossy beyond budget max %d ppm (%v): the fake loses nothing", ratios.Max(), err)
			}
			rec, _ := stats.Decode(res.Reconnect)
			if rec.Count() != c["drops"] {
				t.Errorf("%d reconnect times for %d drops", rec.Count(), c["drops"])
			}
			if len(all) < 3 {
				t.Errorf("only %d stats messages", len(all))
			}
			if edge.Gifts() != c["gifts_acked"] {
				t.Errorf("server admitted %d gifts, bench acked %d", edge.Gifts(), c["gifts_acked"])
			}
		})
	}
}

func TestWorkerSeesStarvedViewers(t *testing.T) {
	edge := startEdge(t, fakeedge.Faults{Starve: func(user string) bool { return user == "bench-t1-3" }})
	sc := testScenario(t, fmt.Sprintf(`
targets: [ws://%s/ws]
duration: 2s
traffic_start: 500ms
drain: 2s
rooms: [{id: a, viewers: 8}]
gifts: {rate: 10}
`, edge.Addr()))
	res, _ := runOne(t, sc)
	if res.Exactly.ViewersMissing != 1 || res.Exactly.Missing == 0 || int64(res.Exactly.Missing) != res.Counters["gifts_acked"] {
		t.Fatalf("a starved viewer must miss every gift: %+v, gifts %d", res.Exactly, res.Counters["gifts_acked"])
	}
}

func TestSourceAddr(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	seen := map[netip.Addr]bool{}
	for i := 0; i < 1000; i++ {
		a := SourceAddr(lo, i, true)
		b := a.As4()
		if b[0] != 127 || b[3] < 2 || b[3] > 254 {
			t.Fatalf("viewer %d gets %s", i, a)
		}
		seen[a] = true
	}
	if len(seen) != SourceAddrs {
		t.Fatalf("%d distinct source addresses, want %d", len(seen), SourceAddrs)
	}
	if SourceAddr(lo, 5, false).IsValid() || SourceAddr(netip.MustParseAddr("10.0.0.1"), 5, true).IsValid() ||
		SourceAddr(netip.MustParseAddr("::1"), 5, true).IsValid() || SourceAddr(netip.Addr{}, 5, true).IsValid() {
		t.Fatal("only IPv4 loopback targets get a source address")
	}
}

func TestPickIsUniform(t *testing.T) {
	n := 0
	for i := 0; i < 10000; i++ {
		if pick("run", i, 0) < 0.3 {
			n++
		}
	}
	if n < 2700 || n > 3300 {
		t.Fatalf("%d of 10000 picked at 0.3", n)
	}
	if pick("run", 7, 1) != pick("run", 7, 1) {
		t.Fatal("pick is not deterministic")
	}
}
