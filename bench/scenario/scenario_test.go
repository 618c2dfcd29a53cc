package scenario

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `
name: t
targets: [ws://127.0.0.1:7000/ws]
secret: s3cret
duration: 30s
rooms:
  - id: hot
    viewers: 100
  - id: small
    count: 3
    viewers: 10
    chat: {senders: 0.5, rate: 0.2}
chat:
  senders: 0.1
gifts:
  rate: 2
`

func TestParseDefaults(t *testing.T) {
	s, err := Parse("t.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"joins/s", s.Ramp.JoinsPerSecond, float64(DefaultJoinsPerSecond)},
		{"drain", s.Drain.D(), DefaultDrain},
		{"chat rate", s.Chat.Rate, DefaultChatRate},
		{"chat role", string(s.Chat.Role), "viewer"},
		{"gift senders", s.Gifts.Senders, 1},
		{"gift id", s.Gifts.Gift, DefaultGift},
		{"gift retry", s.Gifts.Retry.D(), DefaultGiftRetry},
		{"group chat text", s.Rooms[1].Chat.Text, DefaultChatText},
		{"group count", s.Rooms[0].Count, 1},
		{"lossy p99", s.SLO.LatencyP99.Lossy.D(), DefaultLatencyP99},
		{"connect success", s.SLO.ConnectSuccess, DefaultConnectSuccess},
		{"gifts acked", s.SLO.GiftsAcked, 1.0},
		{"conns/worker", s.Client.ConnsPerWorker, DefaultConnsPerWorker},
		// 130 viewers at 1000/s ramp in 130 ms; traffic 2 s after that.
		{"traffic start", s.TrafficStart.D(), 130*time.Millisecond + trafficSettle},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	base := "targets: [ws://127.0.0.1:7000/ws]\nsecret: x\nduration: 30s\nrooms:\n  - id: r\n    viewers: 10\n"
	cases := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"empty", "", []string{"empty"}},
		{"not yaml", "targets: [ws://x", []string{"line"}},
		{"unknown top key", base + "chatt:\n  senders: 1\n", []string{"line 7", `unknown key "chatt"`, "top level", "chat"}},
		{"unknown nested key", base + "chat:\n  sender: 0.1\n", []string{"line 8", `unknown key "sender"`, "in chat", "senders"}},
		{"unknown group key", strings.Replace(base, "viewers: 10", "viewers: 10\n    viewer: 3", 1), []string{"line 7", `"viewer"`, "rooms entry"}},
		{"bare duration", strings.Replace(base, "30s", "30", 1), []string{"line 3", "with a unit"}},
		{"string for int", strings.Replace(base, "viewers: 10", "viewers: lots", 1), []string{"line 6", "lots"}},
		{"no viewers", strings.Replace(base, "viewers: 10", "viewers: 0", 1), []string{"line 6", "rooms[0].viewers", "at least 1"}},
		{"bad room id", strings.Replace(base, "id: r", "id: a.b", 1), []string{"line 5", "rooms[0].id"}},
		{"duplicate room id", base + "  - id: r\n    viewers: 1\n", []string{"rooms[1].id", "earlier group"}},
		{"no targets", strings.Replace(base, "targets: [ws://127.0.0.1:7000/ws]\n", "", 1), []string{"targets", "--target"}},
		{"bad scheme", strings.Replace(base, "ws://", "http://", 1), []string{"line 1", "targets[0]", "ws:// or tcp://"}},
		{"wss", strings.Replace(base, "ws://", "wss://", 1), []string{"targets[0]", "wss"}},
		{"no port", strings.Replace(base, "127.0.0.1:7000/ws", "127.0.0.1/ws", 1), []string{"host:port"}},
		{"no secret", strings.Replace(base, "secret: x\n", "", 1), []string{"secret", "DANMAKU_SECRET"}},
		{"no duration", strings.Replace(base, "duration: 30s\n", "", 1), []string{"duration", "required"}},
		{"ramp longer than run", base + "ramp: {joins_per_second: 0.1}\n", []string{"traffic_start", "raise duration"}},
		{"chat fraction", base + "chat: {senders: 2}\n", []string{"line 7", "chat.senders", "[0, 1]"}},
		{"chat role", base + "chat: {senders: 0.1, role: guest}\n", []string{"chat.role"}},
		{"chat text", base + "chat: {senders: 0.1, text: \"a\\nb\"}\n", []string{"chat.text"}},
		{"like count", base + "likes: {senders: 0.1, count: 5000}\n", []string{"likes.count", "1000"}},
		{"gift count", base + "gifts: {rate: 1, count: 0}\n", nil}, // 0 means the default: valid
		{"gift senders", base + "gifts: {rate: 1, senders: -1}\n", []string{"gifts.senders"}},
		{"step both", base + "steps:\n  - at: 5s\n    drop: 0.3\n    scale: {chat: 2}\n", []string{"line 8", "steps[0]", "not both"}},
		{"step neither", base + "steps:\n  - at: 5s\n", []string{"steps[0]", "needs drop"}},
		{"step late", base + "steps:\n  - at: 40s\n    drop: 0.3\n", []string{"line 8", "steps[0].at", "not before the end"}},
		{"step drop range", base + "steps:\n  - at: 5s\n    drop: 1.5\n", []string{"steps[0].drop"}},
		{"exactly once relaxed", base + "slo:\n  exactly_once: false\n", []string{"line 8", "slo.exactly_once", "cannot be relaxed"}},
		{"connect ratio", base + "slo:\n  connect_success: 1.5\n", []string{"slo.connect_success"}},
		{"latency key", base + "slo:\n  latency_p99: {chat: 1s}\n", []string{`unknown key "chat"`, "slo.latency_p99", "lossy, reliable"}},
		{"too few workers", base + "client: {workers: 1, conns_per_worker: 5}\n", []string{"client.workers", "at least 2"}},
		{"metrics url", base + "metrics: [localhost:8080]\n", []string{"metrics[0]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse("bad.yaml", []byte(c.yaml))
			if err == nil {
				err = s.Validate()
			}
			if c.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "bad.yaml") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestOverride(t *testing.T) {
	s, err := Parse("t.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	s.Override(Overrides{Targets: []string{"tcp://10.0.0.1:7000", "ws://10.0.0.2:7000/ws"}, Secret: "other", Duration: time.Minute, Workers: 3})
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(s.Targets) != 2 || s.Targets[0] != "tcp://10.0.0.1:7000" || s.Secret != "other" || s.Duration.D() != time.Minute || s.Client.Workers != 3 {
		t.Fatalf("overrides not applied: %+v", s)
	}
	s.Override(Overrides{}) // zero overrides change nothing
	if s.Secret != "other" || len(s.Targets) != 2 {
		t.Fatal("zero override changed the scenario")
	}
	s.Override(Overrides{Duration: time.Second})
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "traffic_start") {
		t.Fatalf("a --duration shorter than the ramp must fail validation, got %v", err)
	}
}

func TestLayout(t *testing.T) {
	s, err := Parse("t.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	l := s.Layout(s.RoomPrefixFor("abc123"))
	if l.Viewers != 130 || len(l.Rooms) != 4 {
		t.Fatalf("viewers %d rooms %d", l.Viewers, len(l.Rooms))
	}
	want := []struct {
		id                string
		first, chat, gift int
	}{
		{"babc123-hot", 0, 10, 1},
		{"babc123-small-0", 100, 5, 1},
		{"babc123-small-1", 110, 5, 1},
		{"babc123-small-2", 120, 5, 1},
	}
	for i, w := range want {
		r := l.Rooms[i]
		if r.ID != w.id || r.First != w.first || r.ChatSenders != w.chat || r.GiftSenders != w.gift {
			t.Errorf("room %d = %+v, want %+v", i, r, w)
		}
	}
	if l.Rooms[1].Chat.Rate != 0.2 || l.Rooms[0].Chat.Rate != DefaultChatRate {
		t.Errorf("group chat override not applied")
	}
	for _, c := range []struct{ i, room, pos int }{{0, 0, 0}, {99, 0, 99}, {100, 1, 0}, {129, 3, 9}} {
		if r, p := l.RoomOf(c.i); r != c.room || p != c.pos {
			t.Errorf("RoomOf(%d) = %d,%d want %d,%d", c.i, r, p, c.room, c.pos)
		}
	}
	empty := ""
	s.RoomPrefix = &empty
	if got := s.Layout(s.RoomPrefixFor("x")).Rooms[0].ID; got != "hot" {
		t.Errorf("empty prefix: room id %q", got)
	}
	if senders(0.001, 10) != 1 || senders(0, 10) != 0 || senders(1, 10) != 10 {
		t.Error("senders rounding")
	}
	if Workers(100000, 18000, 0) != 6 || Workers(10, 18000, 0) != 1 || Workers(10, 18000, 3) != 3 {
		t.Error("worker count")
	}
}

func TestScaleAt(t *testing.T) {
	two, zero := 2.0, 0.0
	s := &Scenario{Steps: []Step{
		{At: Duration(10 * time.Second), For: Duration(5 * time.Second), Scale: &Scale{Gifts: &two}},
		{At: Duration(20 * time.Second), Scale: &Scale{Chat: &zero}},
		{At: Duration(12 * time.Second), Drop: 0.5},
	}}
	for _, c := range []struct {
		at               time.Duration
		chat, likes, gft float64
	}{
		{0, 1, 1, 1}, {10 * time.Second, 1, 1, 2}, {14 * time.Second, 1, 1, 2},
		{15 * time.Second, 1, 1, 1}, {25 * time.Second, 0, 1, 1},
	} {
		c1, l1, g1 := s.ScaleAt(c.at)
		if c1 != c.chat || l1 != c.likes || g1 != c.gft {
			t.Errorf("ScaleAt(%s) = %g %g %g", c.at, c1, l1, g1)
		}
	}
}

// TestShippedScenarios: every file in bench/scenarios parses and validates.
func TestShippedScenarios(t *testing.T) {
	files, err := filepath.Glob("../scenarios/*.yaml")
	if err != nil || len(files) < 5 {
		t.Fatalf("scenarios: %v %v", files, err)
	}
	for _, f := range files {
		s, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		s.Override(Overrides{Secret: "x"})
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		if filepath.Base(f) == "smoke.yaml" {
			tl := s.Timeline()
			if tl.Stop+tl.Drain > 30*time.Second {
				t.Errorf("smoke lasts %s + %s drain, the issue allows 30 s", tl.Stop, tl.Drain)
			}
		}
	}
}

func TestParseTarget(t *testing.T) {
	for _, c := range []struct {
		in   string
		tr   Transport
		addr string
		ok   bool
	}{
		{"ws://127.0.0.1:7000/ws", WebSocket, "127.0.0.1:7000", true},
		{"tcp://[::1]:7000", TCP, "[::1]:7000", true},
		{"WS://h:1", WebSocket, "h:1", true},
		{"ws://h", "", "", false},
		{"udp://h:1", "", "", false},
		{"::", "", "", false},
	} {
		tr, addr, err := ParseTarget(c.in)
		if (err == nil) != c.ok || tr != c.tr || addr != c.addr {
			t.Errorf("ParseTarget(%q) = %q %q %v", c.in, tr, addr, err)
		}
	}
}
