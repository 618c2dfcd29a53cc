package bench

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/danmaku/danmaku/bench/load"
	"github.com/danmaku/danmaku/bench/scenario"
	"github.com/danmaku/danmaku/bench/stats"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP process_cpu_seconds_total CPU.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
process_resident_memory_bytes 2.5e+07
danmaku_lossy_dropped_total{reason="budget",room="a b"} 42 1700000000000
danmaku_edge_connections 19000

garbage line without value
danmaku_x{unterminated 1
danmaku_nan NaN
`
	got, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"process_cpu_seconds_total":                               12.5,
		"process_resident_memory_bytes":                           2.5e7,
		`danmaku_lossy_dropped_total{reason="budget",room="a b"}`: 42,
		"danmaku_edge_connections":                                19000,
	}
	seen := map[string]float64{}
	for _, s := range got {
		seen[s.key()] = s.value
	}
	for k, v := range want {
		if seen[k] != v {
			t.Errorf("%s = %v, want %v (parsed %v)", k, seen[k], v, seen)
		}
	}
	if _, ok := seen["garbage"]; ok {
		t.Error("a garbage line was parsed")
	}
}

func TestLedgerCheck(t *testing.T) {
	gift := func(key string, seq uint64, user string, ct int64) load.GiftRecord {
		return load.GiftRecord{Room: "r", Key: key, User: user, ClientTS: ct, Acked: true, Seq: seq, Epoch: "e"}
	}
	entry := func(seq uint64, user string, ct int64) load.LaneEntry {
		return load.LaneEntry{Room: "r", Seq: seq, Kind: "gift", User: user, ClientTS: ct}
	}
	cases := []struct {
		name  string
		gifts []load.GiftRecord
		lane  []load.LaneEntry
		want  Reliable
	}{
		{"consistent", []load.GiftRecord{gift("k1", 1, "u", 10), gift("k2", 2, "u", 11)},
			[]load.LaneEntry{entry(1, "u", 10), entry(2, "u", 11), entry(1, "u", 10), {Room: "r", Seq: 3, Kind: "notice"}},
			Reliable{GiftsChecked: 2}},
		{"doubled by a retry", []load.GiftRecord{gift("k1", 1, "u", 10)},
			[]load.LaneEntry{entry(1, "u", 10), entry(2, "u", 10)},
			Reliable{GiftsChecked: 1, Doubled: 1}},
		{"ack points at another entry", []load.GiftRecord{gift("k1", 2, "u", 10)},
			[]load.LaneEntry{entry(1, "u", 10), entry(2, "v", 99)},
			Reliable{GiftsChecked: 1, AckMismatch: 1}},
		{"acked but never seen", []load.GiftRecord{gift("k1", 5, "u", 10)}, nil,
			Reliable{GiftsChecked: 1, Unseen: 1}},
		{"two seqs for one key", []load.GiftRecord{func() load.GiftRecord { g := gift("k1", 1, "u", 10); g.Conflict = true; return g }()},
			[]load.LaneEntry{entry(1, "u", 10)}, Reliable{GiftsChecked: 1, SeqConflicts: 1}},
		{"viewers disagree on a seq", nil, []load.LaneEntry{entry(1, "u", 10), entry(1, "u", 11)},
			Reliable{LaneConflict: 1}},
		{"unacked gifts are not checked", []load.GiftRecord{{Room: "r", Key: "k", User: "u"}}, nil, Reliable{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got Reliable
			ledgerCheck(c.gifts, c.lane, &got)
			if got.GiftsChecked != c.want.GiftsChecked || got.Doubled != c.want.Doubled || got.AckMismatch != c.want.AckMismatch ||
				got.Unseen != c.want.Unseen || got.SeqConflicts != c.want.SeqConflicts || got.LaneConflict != c.want.LaneConflict {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
			bad := c.want.Doubled+c.want.AckMismatch+c.want.Unseen+c.want.SeqConflicts+c.want.LaneConflict > 0
			if bad == exactlyOnceOK(&got) || bad != (len(got.Examples) > 0) {
				t.Fatalf("verdict %v with examples %v", exactlyOnceOK(&got), got.Examples)
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	sc, err := scenario.Parse("t.yaml", []byte(`
targets: [ws://127.0.0.1:1/ws]
secret: s
duration: 30s
rooms: [{id: r, viewers: 10}]
chat: {senders: 0.5}
gifts: {rate: 1}
slo: {connect_p99: 1s}
`))
	if err != nil {
		t.Fatal(err)
	}
	good := func() *Report {
		return &Report{
			Connect:   Connect{Needed: 100, Done: 100, SuccessRatio: 1, ConnectTime: stats.Latency{Count: 100, P99: 50}},
			Latency:   map[string]stats.Latency{"lossy": {Count: 10, P99: 120}, "reliable": {Count: 10, P99: 300}},
			Reconnect: Reconnect{Time: stats.Latency{Count: 3, P99: 900}},
			Lossy:     Lossy{SteadyViewers: 10, BeyondP99: 0.001},
			Traffic:   Traffic{GiftsStarted: 5, GiftsAcked: 5},
			Reliable:  Reliable{Tally: stats.Tally{Viewers: 10, Expected: 50}},
		}
	}
	failing := map[string]func(r *Report){
		"connect_success":      func(r *Report) { r.Connect.Done, r.Connect.SuccessRatio = 90, 0.9 },
		"latency_p99.lossy":    func(r *Report) { r.Latency["lossy"] = stats.Latency{Count: 10, P99: 2500} },
		"latency_p99.reliable": func(r *Report) { r.Latency["reliable"] = stats.Latency{} }, // gifts planned, none received
		"connect_p99":          func(r *Report) { r.Connect.ConnectTime.P99 = 1500 },
		"reconnect_p99":        func(r *Report) { r.Reconnect.Time.P99 = 20000 },
		"max_lossy_drop":       func(r *Report) { r.Lossy.BeyondP99 = 0.05 },
		"gifts_acked":          func(r *Report) { r.Traffic.GiftsAcked = 4 },
		"exactly_once":         func(r *Report) { r.Reliable.Missing = 1 },
	}
	for _, c := range evaluate(sc, good()) {
		if !c.Pass {
			t.Errorf("%s fails on a good report: %+v", c.Name, c)
		}
	}
	for name, spoil := range failing {
		r := good()
		spoil(r)
		for _, c := range evaluate(sc, r) {
			if (c.Name == name) == c.Pass {
				t.Errorf("spoiling %s: check %s pass=%v (%s)", name, c.Name, c.Pass, c.Actual)
			}
		}
	}
	r := good()
	r.Reliable.Duplicates = 1
	if exactlyOnceOK(&r.Reliable) {
		t.Error("a wire duplicate must fail exactly-once")
	}
	r = good()
	r.Reliable.ResumeOverlaps = 7
	if !exactlyOnceOK(&r.Reliable) {
		t.Error("resume overlaps are permitted")
	}
}

func TestTrackerSettled(t *testing.T) {
	start := time.Now().Add(-10 * time.Second)
	stop := start.Add(5 * time.Second)
	after := stop.Add(time.Second).UnixMilli()
	tr := newTracker(2, start)
	empty, _ := stats.NewLatency().Encode()
	st := func(w int, at int64, c load.Counters, rooms ...load.RoomProgress) *load.Stats {
		return &load.Stats{Worker: w, At: at, Counters: c, Lossy: empty, Reliable: empty, Rooms: rooms}
	}
	quiet := load.Counters{"chats_sent": 10, "chats_acked": 8, "chats_rejected": 1, "chats_unacked": 1}
	tr.add(st(0, after, quiet, load.RoomProgress{Room: "a", MaxSeen: 7, MinLast: 7, Joined: 3, ChatsAcked: 5}))
	if tr.settled(stop) {
		t.Fatal("settled before every worker reported")
	}
	tr.add(st(1, after, quiet, load.RoomProgress{Room: "a", MaxAcked: 9, MinLast: 7, Joined: 2, ChatsAcked: 3}))
	if tr.settled(stop) {
		t.Fatal("settled while viewers are behind the head (7 < 9)")
	}
	heads, chats := tr.heads()
	if heads["a"] != 9 || chats["a"] != 8 {
		t.Fatalf("heads %v chats %v", heads, chats)
	}
	tr.add(st(0, after, quiet, load.RoomProgress{Room: "a", MaxSeen: 9, MinLast: 9, Joined: 3}))
	tr.add(st(1, after, quiet, load.RoomProgress{Room: "a", MaxAcked: 9, MinLast: 9, Joined: 2}))
	if !tr.settled(stop) {
		t.Fatal("not settled when everything is in")
	}
	tr.add(st(1, after, load.Counters{"gifts_pending": 1}, load.RoomProgress{Room: "a", MinLast: 9, Joined: 2}))
	if tr.settled(stop) {
		t.Fatal("settled with a gift pending")
	}
	tr.add(st(1, stop.UnixMilli(), quiet))
	if tr.settled(stop) {
		t.Fatal("settled on stats taken at the stop")
	}
	p := tr.point(time.Now())
	if p.Joined != 0 || len(tr.series.T) != 1 {
		t.Fatalf("point %+v", p)
	}
}

func TestLineTail(t *testing.T) {
	lt := &lineTail{max: 2, log: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))}
	lt.Write([]byte("one\ntw"))
	lt.Write([]byte("o\nthree\nfour"))
	if s := lt.String(); !strings.Contains(s, "two") || !strings.Contains(s, "three") || strings.Contains(s, "one") || strings.Contains(s, "four") {
		t.Fatalf("tail %q", s)
	}
	if (&lineTail{}).String() != "" {
		t.Fatal("an empty tail says something")
	}
}

func TestHTMLAndSummaryRender(t *testing.T) {
	r := &Report{Scenario: "s", RunID: "x", Passed: false, Latency: map[string]stats.Latency{},
		Checks: []Check{{Name: "exactly_once", Target: "t", Actual: "1 missing", Detail: "why <b>"}},
		Series: Series{T: []float64{1, 2}, Connected: []int64{5, 6}, Joined: []int64{5, 6}, LossyP50: []float64{1, 2},
			LossyP99: []float64{3, 4}, ReliableP99: []float64{5, 6}, LossyPerSec: []float64{1, 1}, ReliablePerSec: []float64{1, 1},
			BatchesPerSec: []float64{1, 1}, ChatsPerSec: []float64{1, 1}},
	}
	var sum, page bytes.Buffer
	r.WriteSummary(&sum)
	if !strings.Contains(sum.String(), "FAIL") || !strings.Contains(sum.String(), "MISSED") {
		t.Fatalf("summary:\n%s", sum.String())
	}
	if err := r.renderHTML(&page); err != nil {
		t.Fatal(err)
	}
	h := page.String()
	if !strings.Contains(h, echartsJS) || strings.Contains(h, "why <b>") || strings.Count(h, "echarts.init") < 3 {
		t.Fatalf("html report: escaped detail, 3 charts, the echarts script expected")
	}
}
