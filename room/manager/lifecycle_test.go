package manager

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// newRealtimeHarness runs on the real clock (timers drive ticks and eviction).
func newRealtimeHarness(t *testing.T, cfg Config, sink Sink, store Store) *Manager {
	t.Helper()
	m, err := New(cfg, store, sink, WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func TestIdleEviction(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tick = 10 * time.Millisecond
	cfg.IdleTimeout = 100 * time.Millisecond
	rec, store := newRecorder(t), NewMemoryStore()
	m := newRealtimeHarness(t, cfg, rec, store)
	m.Submit(&Inbound{Node: "n", Session: 1, User: "u1", Role: proto.RoleViewer, Msg: chatMsg(room1, "remember me")})
	eventually(t, 5*time.Second, "the chat's batch", func() bool { b, _ := rec.snapshot(); return len(b) == 1 })
	if len(m.Rooms()) != 1 {
		t.Fatal("room not active")
	}
	eventually(t, 5*time.Second, "eviction", func() bool { return len(m.Rooms()) == 0 })
	if c := m.Counters(); c.EvictedRooms != 1 || c.ActiveRooms != 0 {
		t.Fatalf("counters %+v", c)
	}
	bl, _ := store.Backlog(context.Background(), room1)
	if len(bl) != 1 || bl[0].Text != "remember me" {
		t.Fatalf("backlog saved on eviction: %+v", bl)
	}
	// Re-activation reads it back.
	m.Submit(&Inbound{Node: "n", Session: 2, User: "u2", Role: proto.RoleViewer, Msg: &proto.Join{ID: 1, Room: room1}})
	eventually(t, 5*time.Second, "joined", func() bool { return rec.nReplies() == 2 })
	if j := rec.reply(t, 2).(*proto.Joined); len(j.State.Backlog) != 1 {
		t.Fatalf("backlog after re-activation %+v", j.State.Backlog)
	}
}

func TestInboxFull(t *testing.T) {
	fs := &faultyStore{MemoryStore: NewMemoryStore(), block: make(chan struct{})}
	cfg := manualConfig()
	cfg.InboxSize = 2
	h := newFaultyHarness(t, cfg, fs)
	// The room is stuck reading its state: requests queue, then overflow.
	h.send("u1", proto.RoleViewer, chatMsg(room1, "a"))
	h.send("u2", proto.RoleViewer, chatMsg(room1, "b"))
	chat := h.send("u3", proto.RoleViewer, chatMsg(room1, "c"))
	join := h.send("u4", proto.RoleViewer, &proto.Join{ID: 4, Room: room1})
	gift := h.send("u5", proto.RoleViewer, giftMsg(5, "k"))
	if a := h.rec.ackOf(t, chat); a.Code != proto.CodeRateLimited || a.RetryAfter == 0 {
		t.Fatalf("chat into a full inbox %+v", a)
	}
	if e, ok := h.rec.reply(t, join).(*proto.Error); !ok || e.Code != proto.CodeUnavailable || e.ID != 4 {
		t.Fatalf("join into a full inbox %+v", h.rec.reply(t, join))
	}
	if a := h.rec.ackOf(t, gift); a.Code != proto.CodeUnavailable || a.RetryAfter == 0 {
		t.Fatalf("gift into a full inbox %+v", a)
	}
	if got := h.m.Counters().Dropped["inbox_full"]; got != 3 {
		t.Fatalf("inbox_full %d", got)
	}
	close(fs.block)
	h.flush(t, room1)
	if h.rec.nReplies() != 5 {
		t.Fatalf("%d replies, want 5", h.rec.nReplies())
	}
}

func TestMaxRooms(t *testing.T) {
	cfg := manualConfig()
	cfg.MaxRooms = 1
	h := newHarness(t, cfg)
	h.activate(t, "a")
	s := h.send("u", proto.RoleViewer, &proto.Join{ID: 1, Room: "b"})
	if e, ok := h.rec.reply(t, s).(*proto.Error); !ok || e.Code != proto.CodeUnavailable || e.Room != "b" {
		t.Fatalf("join beyond MaxRooms: %+v", h.rec.reply(t, s))
	}
	bad := h.send("u", proto.RoleViewer, chatMsg("not a room!", "x"))
	if a := h.rec.ackOf(t, bad); a.Code != proto.CodeBadRequest {
		t.Fatalf("bad room id: %+v", a)
	}
}

func TestSplitBatches(t *testing.T) {
	cfg := manualConfig()
	cfg.MaxBatchEntries = 5
	h := newHarness(t, cfg)
	for i := range 12 {
		h.waitReply(t, h.publish(room1, proto.Entry{Kind: proto.KindNotice, Text: "n"}, string(rune('a'+i))))
	}
	for _, u := range []string{"x", "y", "z"} {
		h.send(u, proto.RoleViewer, chatMsg(room1, "hi"))
	}
	h.m.SetOnline(room1, 10)
	h.flush(t, room1)
	batches, _ := h.rec.snapshot()
	var sizes []int
	var ticks []uint64
	for _, b := range batches {
		sizes = append(sizes, len(b.Reliable)+len(b.Lossy))
		ticks = append(ticks, b.Tick)
	}
	if !slices.Equal(sizes, []int{5, 5, 5}) || !slices.Equal(ticks, []uint64{1, 2, 3}) {
		t.Fatalf("batch sizes %v ticks %v", sizes, ticks)
	}
	if !batches[0].HasOnline || batches[1].HasOnline {
		t.Fatal("online belongs to the first batch of a tick only")
	}
	rel := reliableEntries(batches)
	for i, e := range rel {
		if e.Seq != uint64(i+1) {
			t.Fatalf("reliable seqs %+v", rel)
		}
	}
	if len(batches[2].Lossy) != 3 || len(batches[2].Reliable) != 2 {
		t.Fatalf("last batch %+v", batches[2])
	}
	h.rec.mu.Lock()
	em := h.rec.emitted[1]
	h.rec.mu.Unlock()
	if !em.Reliable || em.FirstSeq != 6 || em.LastSeq != 10 || em.Online != -1 || em.At == 0 {
		t.Fatalf("emitted %+v", em)
	}
}

func TestOnlineRule(t *testing.T) {
	h := newHarness(t, manualConfig())
	h.activate(t, room1)
	count := func() int { b, _ := h.rec.snapshot(); return len(b) }
	h.m.SetOnline(room1, 1000)
	h.flush(t, room1)
	if b, _ := h.rec.snapshot(); count() != 1 || b[0].Online != 1000 || !b[0].HasOnline {
		t.Fatalf("first count: %+v", b)
	}
	h.m.SetOnline(room1, 1005) // 0.5%: not yet
	h.flush(t, room1)
	if count() != 1 {
		t.Fatal("a 0.5% change was sent at once")
	}
	h.clock.advance(5 * time.Second) // …but within 5 s
	h.flush(t, room1)
	if b, _ := h.rec.snapshot(); count() != 2 || b[1].Online != 1005 {
		t.Fatalf("after 5 s: %+v", b)
	}
	h.m.SetOnline(room1, 1020) // 1.5%
	h.flush(t, room1)
	if count() != 3 {
		t.Fatal("a 1.5% change was not sent")
	}
	h.m.SetOnline(room1, 1020) // unchanged: nothing to send
	h.clock.advance(10 * time.Second)
	h.flush(t, room1)
	if count() != 3 {
		t.Fatal("an unchanged count made a batch")
	}
}

func TestBackpressureStretchesTicks(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tick = 10 * time.Millisecond
	cfg.MaxStretch = 150 * time.Millisecond
	cfg.Budget = 1000 // 10 per tick
	rec := newRecorder(t)
	rec.pending.Store(true)
	m := newRealtimeHarness(t, cfg, backpressured{rec}, NewMemoryStore())
	for i := range 5 {
		m.Submit(&Inbound{Node: "n", Session: uint64(i + 1), User: string(rune('a' + i)), Role: proto.RoleViewer,
			Msg: chatMsg(room1, "hi")})
	}
	eventually(t, 5*time.Second, "a batch past the max stretch", func() bool { b, _ := rec.snapshot(); return len(b) == 1 })
	batches, _ := rec.snapshot()
	if len(batches[0].Lossy) != 5 || m.Counters().Stretched == 0 {
		t.Fatalf("batch %+v, stretched %d", batches[0], m.Counters().Stretched)
	}
	rec.pending.Store(false)
	m.Submit(&Inbound{Node: "n", Session: 9, User: "z", Role: proto.RoleViewer, Msg: chatMsg(room1, "hi")})
	eventually(t, 5*time.Second, "the next batch", func() bool { b, _ := rec.snapshot(); return len(b) == 2 })
}

// TestSamplingDeterministic: the same seed and inbound give the same sample;
// inside a class every sender has a chance.
func TestSamplingDeterministic(t *testing.T) {
	run := func(seed int64) []string {
		cfg := manualConfig()
		cfg.Budget = 1 // 10 per (10 s) tick
		h := newHarness(t, cfg, WithSeed(seed))
		for i := range 100 {
			h.send("u"+string(rune('A'+i/26))+string(rune('a'+i%26)), proto.RoleViewer, chatMsg(room1, "hi"))
		}
		h.flush(t, room1)
		batches, _ := h.rec.snapshot()
		var users []string
		for _, e := range batches[0].Lossy {
			users = append(users, e.User)
		}
		h.m.Close()
		return users
	}
	a, b, c := run(7), run(7), run(8)
	if len(a) != 10 || !slices.Equal(a, b) {
		t.Fatalf("seed 7 gave %v then %v", a, b)
	}
	if slices.Equal(a, c) {
		t.Fatalf("seeds 7 and 8 gave the same sample %v", a)
	}
}

func TestRoomsStats(t *testing.T) {
	h := newHarness(t, manualConfig())
	h.activate(t, room1)
	h.policy(t, room1, Policy{Budget: 20, Title: "t"})
	h.send("u1", proto.RoleGuest, chatMsg(room1, "x"))
	h.flush(t, room1)
	h.clock.advance(2 * time.Second)
	h.flush(t, room1)
	st := h.m.Rooms()
	if len(st) != 1 || st[0].Room != room1 || st[0].Budget != 20 || st[0].Policy.Title != "t" ||
		st[0].Dropped["forbidden"] != 1 || st[0].Inbound != 2 || st[0].Epoch == "" {
		t.Fatalf("stats %+v", st)
	}
}
