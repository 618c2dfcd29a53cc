package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/danmaku/danmaku/bench/internal/fakeedge"
	"github.com/danmaku/danmaku/bench/scenario"
)

// TestMain doubles as the worker: RunScenario starts this test binary as its
// worker processes, with WorkerEnv set.
func TestMain(m *testing.M) {
	if os.Getenv(WorkerEnv) == "1" {
		os.Exit(WorkerMain(nil))
	}
	goleak.VerifyTestMain(m)
}

const testSecret = "bench-test-secret"

func startEdge(t *testing.T, f fakeedge.Faults) *fakeedge.Server {
	t.Helper()
	s, err := fakeedge.Start(fakeedge.Config{Secret: []byte(testSecret), Faults: f, Heartbeat: 3000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// smallScenario is a few seconds of everything: two transports, two
// workers, chat over the budget of one room, likes, gifts, a reconnect storm.
func smallScenario(edge *fakeedge.Server) string {
	return fmt.Sprintf(`
name: small
targets: [ws://%[1]s/ws, tcp://%[1]s]
secret: %[2]s
metrics: [%[3]s]
duration: 3500ms
traffic_start: 700ms
drain: 6s
ramp: {joins_per_second: 200}
rooms:
  - {id: busy, viewers: 24, chat: {senders: 0.5, rate: 20, role: vip}}
  - {id: calm, count: 2, viewers: 8}
chat: {senders: 0.25, rate: 2}
likes: {senders: 0.1, rate: 2}
gifts: {rate: 4, senders: 2, retry: 400ms}
steps:
  - {at: 1800ms, drop: 0.3}
client: {workers: 2}
slo:
  reconnect_p99: 5s
`, edge.Addr(), testSecret, edge.MetricsURL())
}

func parse(t *testing.T, yaml string) *scenario.Scenario {
	t.Helper()
	sc, err := scenario.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func testOptions() Options {
	exe, _ := os.Executable()
	return Options{Executable: exe, WorkerArgs: []string{}}
}

func TestRunScenarioPasses(t *testing.T) {
	edge := startEdge(t, fakeedge.Faults{SwallowGiftAck: 4})
	sc := parse(t, smallScenario(edge))
	rep, err := RunScenario(context.Background(), sc, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	var sum bytes.Buffer
	rep.WriteSummary(&sum)
	t.Log(sum.String())
	if !rep.Passed {
		t.Fatalf("the run failed against a correct server")
	}
	if rep.Workers != 2 || len(rep.Client.WorkerConns) != 2 {
		t.Errorf("workers %d", rep.Workers)
	}
	if rep.Viewers.FirstJoins != 40 || rep.Reconnect.Drops == 0 || rep.Reconnect.Time.Count != rep.Reconnect.Drops {
		t.Errorf("viewers %+v reconnect %+v", rep.Viewers, rep.Reconnect)
	}
	if rep.Traffic.ChatsSampledOut == 0 || rep.Lossy.Dropped == 0 {
		t.Errorf("the busy room sends 240 chats/s over a budget of 200: expected sampling, got %+v %+v", rep.Traffic, rep.Lossy)
	}
	if rep.Lossy.SteadyViewers == 0 || rep.Lossy.BeyondMax > 0.01 {
		t.Errorf("lossy %+v", rep.Lossy)
	}
	if rep.Traffic.GiftDupAcks == 0 || rep.Reliable.GiftsChecked != rep.Traffic.GiftsAcked || rep.Reliable.GiftsChecked == 0 {
		t.Errorf("gifts %+v ledger %+v", rep.Traffic, rep.Reliable)
	}
	if rep.Latency["lossy"].Count == 0 || rep.Latency["reliable"].Count == 0 {
		t.Errorf("no latency samples: %+v", rep.Latency)
	}
	if len(rep.Servers) != 1 || !rep.Servers[0].Reachable || rep.Servers[0].Drops == nil {
		t.Errorf("metrics not scraped: %+v", rep.Servers)
	}
	if len(rep.Series.T) < 3 || len(rep.Series.Joined) != len(rep.Series.T) {
		t.Errorf("series of %d points", len(rep.Series.T))
	}
}

// TestMainExitCodes runs the CLI end to end: the exit code is the contract.
func TestMainExitCodes(t *testing.T) {
	good := startEdge(t, fakeedge.Faults{})
	starving := startEdge(t, fakeedge.Faults{Starve: func(u string) bool { return strings.HasSuffix(u, "-5") }})
	doubling := startEdge(t, fakeedge.Faults{SwallowGiftAck: 2, ForgetKeys: true})
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tiny := func(edge *fakeedge.Server) string {
		return write(fmt.Sprintf("tiny-%p.yaml", edge), fmt.Sprintf(`
targets: [ws://%s/ws]
duration: 2s
traffic_start: 500ms
drain: 3s
rooms: [{id: r, viewers: 10}]
gifts: {rate: 5, retry: 300ms}
`, edge.Addr()))
	}
	jsonPath, htmlPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.html")
	cases := []struct {
		name string
		args []string
		want int
		out  string // in stdout+stderr
	}{
		{"pass", []string{"--scenario", tiny(good), "--secret", testSecret, "--quiet", "--json", jsonPath, "--html", htmlPath}, ExitPass, "PASS"},
		{"missed gift", []string{"--scenario", tiny(starving), "--secret", testSecret, "--quiet"}, ExitMissed, "exactly_once"},
		{"doubled gift", []string{"--scenario", tiny(doubling), "--secret", testSecret, "--quiet"}, ExitMissed, "doubled"},
		{"wrong secret", []string{"--scenario", tiny(good), "--secret", "nope", "--quiet"}, ExitCannotRun, "check --secret"},
		{"unreachable", []string{"--scenario", tiny(good), "--secret", testSecret, "--target", "tcp://127.0.0.1:1", "--quiet"}, ExitCannotRun, "no target reachable"},
		{"bad scenario", []string{"--scenario", write("bad.yaml", "rooms: [{id: r, viewerz: 3}]\n")}, ExitCannotRun, `unknown key "viewerz"`},
		{"no scenario", nil, ExitCannotRun, "usage"},
		{"missing file", []string{"--scenario", filepath.Join(dir, "nope.yaml")}, ExitCannotRun, "no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			got := mainWith(c.args, &out, &errOut)
			all := out.String() + errOut.String()
			if got != c.want || !strings.Contains(all, c.out) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s", got, c.want, c.out, all)
			}
		})
	}
	var rep Report
	b, err := os.ReadFile(jsonPath)
	if err != nil || json.Unmarshal(b, &rep) != nil || !rep.Passed || len(rep.Checks) == 0 {
		t.Fatalf("json report: %v %+v", err, rep.Checks)
	}
	h, err := os.ReadFile(htmlPath)
	if err != nil || !bytes.Contains(h, []byte("echarts")) || !bytes.Contains(h, []byte("exactly_once")) {
		t.Fatalf("html report: %v (%d bytes)", err, len(h))
	}
}

func TestInterrupted(t *testing.T) {
	edge := startEdge(t, fakeedge.Faults{})
	sc := parse(t, fmt.Sprintf(`
targets: [tcp://%s]
secret: %s
duration: 30s
rooms: [{id: r, viewers: 10}]
`, edge.Addr(), testSecret))
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := RunScenario(ctx, sc, testOptions())
	if !errors.Is(err, ErrInterrupted) || rep == nil || !rep.Interrupted || rep.Passed {
		t.Fatalf("err %v report %+v", err, rep)
	}
	if rep.Viewers.FirstJoins == 0 {
		t.Errorf("the partial report lost what was measured: %+v", rep.Viewers)
	}
	if time.Since(start) > 15*time.Second {
		t.Errorf("stopping took %s", time.Since(start))
	}
}
