package manager

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

var errStoreDown = errors.New("store down")

// faultyStore wraps a MemoryStore with injectable failures and call counts.
type faultyStore struct {
	*MemoryStore
	failAll    atomic.Bool
	failAppend atomic.Bool
	sinceCalls atomic.Int64
	block      chan struct{} // when set, Head waits for it to close
}

func (s *faultyStore) Head(ctx context.Context, room string) (Head, error) {
	if s.block != nil {
		<-s.block
	}
	if s.failAll.Load() {
		return Head{}, errStoreDown
	}
	return s.MemoryStore.Head(ctx, room)
}

func (s *faultyStore) Append(ctx context.Context, room, key string, e proto.Entry) (Appended, error) {
	if s.failAll.Load() || s.failAppend.Load() {
		return Appended{}, errStoreDown
	}
	return s.MemoryStore.Append(ctx, room, key, e)
}

func (s *faultyStore) Since(ctx context.Context, room, epoch string, after uint64, limit int) (Replay, error) {
	s.sinceCalls.Add(1)
	if s.failAll.Load() {
		return Replay{}, errStoreDown
	}
	return s.MemoryStore.Since(ctx, room, epoch, after, limit)
}

func (s *faultyStore) Backlog(ctx context.Context, room string) ([]proto.Entry, error) {
	if s.failAll.Load() {
		return nil, errStoreDown
	}
	return s.MemoryStore.Backlog(ctx, room)
}

func (s *faultyStore) Sanctions(ctx context.Context, room string) ([]Sanction, error) {
	if s.failAll.Load() {
		return nil, errStoreDown
	}
	return s.MemoryStore.Sanctions(ctx, room)
}

func (s *faultyStore) Policy(ctx context.Context, room string) (Policy, error) {
	if s.failAll.Load() {
		return Policy{}, errStoreDown
	}
	return s.MemoryStore.Policy(ctx, room)
}

func (s *faultyStore) SaveBacklog(ctx context.Context, room string, es []proto.Entry) error {
	if s.failAll.Load() {
		return errStoreDown
	}
	return s.MemoryStore.SaveBacklog(ctx, room, es)
}

// newFaultyHarness is a harness over a faultyStore.
func newFaultyHarness(t *testing.T, cfg Config, fs *faultyStore, opts ...Option) *harness {
	t.Helper()
	h := &harness{rec: newRecorder(t), store: fs.MemoryStore, clock: newFakeClock()}
	opts = append([]Option{WithClock(h.clock.now), WithSeed(1), WithLogger(quiet)}, opts...)
	m, err := New(cfg, fs, h.rec, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	t.Cleanup(m.Close)
	return h
}

func giftMsg(id uint32, key string) *proto.Gift {
	return &proto.Gift{ID: id, Room: room1, Gift: "rocket", Count: 1, Key: key}
}

// reliableEntries returns every reliable entry broadcast, in order.
func reliableEntries(batches []*proto.Batch) []proto.Entry {
	var out []proto.Entry
	for _, b := range batches {
		out = append(out, b.Reliable...)
	}
	return out
}

func TestGiftIdempotent(t *testing.T) {
	h := newHarness(t, manualConfig())
	first := h.waitReply(t, h.send("u1", proto.RoleViewer, giftMsg(1, "k1"))).(*proto.Ack)
	if first.Code != "" || first.Seq != 1 || first.Epoch != h.store.Epoch() || first.Duplicate || first.MsgID == 0 {
		t.Fatalf("first ack %+v", first)
	}
	// A retry answered from the room's key cache.
	again := h.waitReply(t, h.send("u1", proto.RoleViewer, giftMsg(2, "k1"))).(*proto.Ack)
	// Another user's identical key is another gift.
	other := h.waitReply(t, h.send("u2", proto.RoleViewer, giftMsg(3, "k1"))).(*proto.Ack)
	h.flush(t, room1)
	if again.ID != 2 || again.Seq != 1 || again.MsgID != first.MsgID || !again.Duplicate || again.Epoch != first.Epoch {
		t.Fatalf("retry ack %+v, first %+v", again, first)
	}
	if other.Seq != 2 || other.Duplicate {
		t.Fatalf("other user's gift %+v", other)
	}
	// After the room is released its cache is gone: the store's idempotency answers.
	h.m.Release(room1)
	late := h.waitReply(t, h.send("u1", proto.RoleViewer, giftMsg(4, "k1"))).(*proto.Ack)
	if late.Seq != 1 || !late.Duplicate || late.MsgID != first.MsgID {
		t.Fatalf("retry after release %+v", late)
	}
	h.flush(t, room1)
	batches, _ := h.rec.snapshot()
	rel := reliableEntries(batches)
	if len(rel) != 2 || rel[0].Seq != 1 || rel[1].Seq != 2 || rel[0].User != "u1" || rel[0].Gift != "rocket" {
		t.Fatalf("broadcast %+v, want each gift once", rel)
	}
}

// gate is a GiftAuthorizer the test drives.
type gate struct {
	mu      sync.Mutex
	calls   int
	release chan struct{} // nil: answer at once
	err     error
}

func (g *gate) AuthorizeGift(ctx context.Context, _ GiftRequest) error {
	g.mu.Lock()
	g.calls++
	rel, err := g.release, g.err
	g.mu.Unlock()
	if rel != nil {
		select {
		case <-rel:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func TestGiftRetryWhileInFlight(t *testing.T) {
	g := &gate{release: make(chan struct{})}
	h := newHarness(t, manualConfig(), WithGiftAuthorizer(g))
	s1 := h.send("u1", proto.RoleViewer, giftMsg(1, "k"))
	s2 := h.send("u1", proto.RoleViewer, giftMsg(2, "k"))
	h.flush(t, room1) // both handled: the second waits for the first
	close(g.release)
	a1 := h.waitReply(t, s1).(*proto.Ack)
	a2 := h.waitReply(t, s2).(*proto.Ack)
	if a1.Seq != 1 || a1.Duplicate || a2.Seq != 1 || !a2.Duplicate || a2.ID != 2 {
		t.Fatalf("acks %+v %+v", a1, a2)
	}
	if g.calls != 1 {
		t.Fatalf("authorizer called %d times, want 1", g.calls)
	}
}

func TestGiftAuthorizer(t *testing.T) {
	cases := []struct {
		name    string
		err     error
		block   bool
		code    proto.Code
		outcome string
	}{
		{name: "allowed", outcome: "allowed"},
		{name: "denied", err: errors.New("insufficient balance"), code: proto.CodeGiftDenied, outcome: "denied"},
		{name: "own code", err: proto.CodeForbidden, code: proto.CodeForbidden, outcome: "denied"},
		{name: "timeout", block: true, code: proto.CodeGiftDenied, outcome: "timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := &gate{err: tc.err}
			if tc.block {
				g.release = make(chan struct{}) // never closed: the deadline answers
			}
			cfg := manualConfig()
			cfg.GiftAuthTimeout = 30 * time.Millisecond
			h := newHarness(t, cfg, WithGiftAuthorizer(g))
			a := h.waitReply(t, h.send("u1", proto.RoleViewer, giftMsg(1, "k"))).(*proto.Ack)
			if a.Code != tc.code {
				t.Fatalf("ack %+v, want code %q", a, tc.code)
			}
			h.flush(t, room1)
			batches, _ := h.rec.snapshot()
			if n := len(reliableEntries(batches)); (n == 1) != (tc.code == "") {
				t.Fatalf("%d gifts broadcast", n)
			}
			if got := h.m.Counters().GiftAuth[tc.outcome]; got != 1 {
				t.Fatalf("outcome %s counted %d", tc.outcome, got)
			}
		})
	}
}

func TestGiftAdmission(t *testing.T) {
	h := newHarness(t, manualConfig())
	h.activate(t, room1)
	h.sanction(t, Sanction{Room: room1, User: "muted"})
	h.sanction(t, Sanction{Room: room1, User: "banned", Ban: true})
	cases := []struct {
		user string
		role proto.Role
		code proto.Code
	}{
		{"muted", proto.RoleViewer, ""}, // a mute silences chat, not purchases
		{"banned", proto.RoleViewer, proto.CodeBanned},
		{"", proto.RoleGuest, proto.CodeForbidden},
	}
	for i, tc := range cases {
		a := h.waitReply(t, h.send(tc.user, tc.role, giftMsg(uint32(i+1), "k"))).(*proto.Ack)
		if a.Code != tc.code {
			t.Fatalf("%s: ack %+v, want %q", tc.user, a, tc.code)
		}
	}
}

func TestStoreFailure(t *testing.T) {
	fs := &faultyStore{MemoryStore: NewMemoryStore()}
	fs.failAppend.Store(true)
	h := newFaultyHarness(t, manualConfig(), fs)
	a := h.waitReply(t, h.send("u1", proto.RoleViewer, giftMsg(1, "k"))).(*proto.Ack)
	if a.Code != proto.CodeUnavailable || a.RetryAfter != 1000 {
		t.Fatalf("gift with the store down: %+v", a)
	}
	p := h.waitReply(t, h.publish(room1, proto.Entry{Kind: proto.KindNotice, Text: "hi"}, "")).(*proto.Ack)
	if p.Code != proto.CodeUnavailable {
		t.Fatalf("publish with the store down: %+v", p)
	}
	// Chat keeps flowing (invariant 9).
	s := h.send("u1", proto.RoleViewer, chatMsg(room1, "still here"))
	h.flush(t, room1)
	if c := h.rec.ackOf(t, s); c.Code != "" || c.SampledOut {
		t.Fatalf("chat with the store down: %+v", c)
	}
	if got := h.m.Counters().Dropped["store_error"]; got != 2 {
		t.Fatalf("store_error drops %d", got)
	}
	// The store comes back: the retry succeeds.
	fs.failAppend.Store(false)
	a = h.waitReply(t, h.send("u1", proto.RoleViewer, giftMsg(2, "k"))).(*proto.Ack)
	if a.Code != "" || a.Seq != 1 {
		t.Fatalf("retry: %+v", a)
	}
}

func TestStoreDownAtActivation(t *testing.T) {
	fs := &faultyStore{MemoryStore: NewMemoryStore()}
	fs.failAll.Store(true)
	h := newFaultyHarness(t, manualConfig(), fs)
	j, ok := h.waitReply(t, h.send("u1", proto.RoleViewer, &proto.Join{ID: 1, Room: room1})).(*proto.Joined)
	if !ok || j.State.Epoch != "" {
		t.Fatalf("join while the store is down: %+v", h.rec.reply(t, 1))
	}
	s := h.send("u1", proto.RoleViewer, chatMsg(room1, "hi"))
	h.flush(t, room1)
	if a := h.rec.ackOf(t, s); a.Code != "" {
		t.Fatalf("chat: %+v", a)
	}
	if st := h.m.Rooms(); len(st) != 1 || !st[0].Degraded {
		t.Fatalf("stats %+v, want degraded", st)
	}
	// Back up: the next append brings the epoch.
	fs.failAll.Store(false)
	a := h.waitReply(t, h.send("u1", proto.RoleViewer, giftMsg(2, "k"))).(*proto.Ack)
	if a.Code != "" || a.Epoch != h.store.Epoch() {
		t.Fatalf("gift after recovery: %+v", a)
	}
}

func TestPublish(t *testing.T) {
	h := newHarness(t, manualConfig())
	notice := proto.Entry{Kind: proto.KindNotice, Text: "the final starts", Level: "info"}
	a := h.waitReply(t, h.publish(room1, notice, "n1")).(*proto.Ack)
	b := h.waitReply(t, h.publish(room1, notice, "n1")).(*proto.Ack)
	if a.Code != "" || a.Seq != 1 || a.Duplicate || b.Seq != 1 || !b.Duplicate {
		t.Fatalf("acks %+v %+v", a, b)
	}
	bad := []proto.Entry{
		{Kind: proto.KindChat, Text: "lossy kinds are not published"},
		{Kind: proto.KindNotice, Text: "\xff\xfe"},
		{Kind: proto.KindNotice, Data: string(make([]byte, 9000))},
	}
	for _, e := range bad {
		if r := h.waitReply(t, h.publish(room1, e, "")).(*proto.Ack); r.Code != proto.CodeBadRequest {
			t.Fatalf("publish %+v: %+v", e.Kind, r)
		}
	}
	// Publish has no room: Submit cannot route it.
	s := h.seq.Add(1)
	h.m.Submit(&Inbound{Node: "api", Session: s, Publish: &Publish{Entry: notice}})
	if r := h.waitReply(t, s).(*proto.Ack); r.Code != proto.CodeBadRequest {
		t.Fatalf("publish without a room: %+v", r)
	}
	h.flush(t, room1)
	batches, _ := h.rec.snapshot()
	rel := reliableEntries(batches)
	if len(rel) != 1 || rel[0].Role != proto.RoleSystem || rel[0].Text != notice.Text || rel[0].ServerTS == 0 {
		t.Fatalf("broadcast %+v", rel)
	}
}

func TestResume(t *testing.T) {
	fs := &faultyStore{MemoryStore: NewMemoryStore()}
	cfg := manualConfig()
	cfg.Retention = 3 // the room's window; the store keeps 1000
	h := newFaultyHarness(t, cfg, fs)
	for i := range 6 {
		h.waitReply(t, h.send("u1", proto.RoleViewer, giftMsg(uint32(i+1), string(rune('a'+i)))))
	}
	h.flush(t, room1)
	epoch := fs.Epoch()
	resume := func(ep string, seq uint64) *proto.Resumed {
		t.Helper()
		s := h.send("u2", proto.RoleViewer, &proto.Resume{ID: 5, Room: room1, Epoch: ep, Seq: seq})
		r, ok := h.waitReply(t, s).(*proto.Resumed)
		if !ok {
			t.Fatalf("resume reply %+v", h.rec.reply(t, s))
		}
		return r
	}
	calls := fs.sinceCalls.Load()
	r := resume(epoch, 6)
	if !r.Recovered || len(r.Entries) != 0 || r.Seq != 6 || r.Epoch != epoch || r.ID != 5 || fs.sinceCalls.Load() != calls {
		t.Fatalf("at head: %+v (store calls %d → %d)", r, calls, fs.sinceCalls.Load())
	}
	r = resume(epoch, 4)
	if !r.Recovered || len(r.Entries) != 2 || r.Entries[0].Seq != 5 || r.Seq != 6 || fs.sinceCalls.Load() != calls {
		t.Fatalf("from the window: %+v", r)
	}
	r = resume(epoch, 1) // older than the window: from the store
	if !r.Recovered || len(r.Entries) != 5 || r.Entries[0].Seq != 2 || r.Entries[4].Seq != 6 || fs.sinceCalls.Load() != calls+1 {
		t.Fatalf("from the store: %+v", r)
	}
	for _, tc := range []struct {
		name  string
		epoch string
		seq   uint64
	}{{"other epoch", "old-life", 3}, {"ahead", epoch, 9}, {"no epoch", "", 0}} {
		r = resume(tc.epoch, tc.seq)
		if r.Recovered || r.State == nil || r.Epoch != epoch || r.Seq != 6 || r.State.Seq != 6 {
			t.Fatalf("%s: %+v", tc.name, r)
		}
	}
}

func TestResumeOutOfRetention(t *testing.T) {
	ms := NewMemoryStore()
	ms.Retention = 2
	fs := &faultyStore{MemoryStore: ms}
	cfg := manualConfig()
	cfg.Retention = 2
	h := newFaultyHarness(t, cfg, fs)
	for i := range 5 {
		h.waitReply(t, h.send("u1", proto.RoleViewer, giftMsg(uint32(i+1), string(rune('a'+i)))))
	}
	h.flush(t, room1)
	s := h.send("u2", proto.RoleViewer, &proto.Resume{ID: 1, Room: room1, Epoch: ms.Epoch(), Seq: 1})
	r := h.waitReply(t, s).(*proto.Resumed)
	if r.Recovered || r.State == nil || r.Seq != 5 {
		t.Fatalf("resume past retention: %+v", r)
	}
}

// TestEpochChange: a restarted memory store has a new epoch; a client's old
// position is not trusted.
func TestEpochChange(t *testing.T) {
	h1 := newHarness(t, manualConfig())
	a := h1.waitReply(t, h1.send("u1", proto.RoleViewer, giftMsg(1, "k"))).(*proto.Ack)
	h1.m.Close()

	h2 := newHarness(t, manualConfig()) // "restarted": a new MemoryStore
	if h2.store.Epoch() == a.Epoch {
		t.Fatal("two memory stores share an epoch")
	}
	s := h2.send("u1", proto.RoleViewer, &proto.Resume{ID: 1, Room: room1, Epoch: a.Epoch, Seq: a.Seq})
	r := h2.waitReply(t, s).(*proto.Resumed)
	if r.Recovered || r.Epoch != h2.store.Epoch() || r.State == nil || r.State.Epoch != r.Epoch {
		t.Fatalf("resume across a restart: %+v", r)
	}
}

// TestReleaseFlushes: entries persisted before Release are acked and
// broadcast before it returns, and chats waiting for their tick are answered.
func TestReleaseFlushes(t *testing.T) {
	h := newHarness(t, manualConfig())
	gift := h.send("u1", proto.RoleViewer, giftMsg(1, "k"))
	h.waitReply(t, gift)
	chat := h.send("u2", proto.RoleViewer, chatMsg(room1, "bye"))
	h.m.Release(room1)
	if a := h.rec.ackOf(t, chat); a.Code != "" || a.SampledOut {
		t.Fatalf("chat ack %+v", a)
	}
	batches, _ := h.rec.snapshot()
	if len(batches) != 1 || len(batches[0].Reliable) != 1 || len(batches[0].Lossy) != 1 {
		t.Fatalf("batches at release %+v", batches)
	}
	if len(h.m.Rooms()) != 0 {
		t.Fatal("room still active after Release")
	}
	// A later request re-activates the room; the lane continues.
	s := h.send("u3", proto.RoleViewer, &proto.Join{ID: 1, Room: room1})
	j := h.waitReply(t, s).(*proto.Joined)
	if j.State.Seq != 1 || len(j.State.Backlog) != 1 {
		t.Fatalf("state after re-activation %+v", j.State)
	}
	a := h.waitReply(t, h.send("u1", proto.RoleViewer, giftMsg(2, "k2"))).(*proto.Ack)
	if a.Seq != 2 {
		t.Fatalf("next gift %+v", a)
	}
}

// TestReleaseDuringAuthorization: a gift at the webhook when the room is
// released still goes through: Release waits for it, acks and broadcasts it.
func TestReleaseDuringAuthorization(t *testing.T) {
	g := &gate{release: make(chan struct{})}
	h := newHarness(t, manualConfig(), WithGiftAuthorizer(g))
	s := h.send("u1", proto.RoleViewer, giftMsg(1, "k"))
	h.flush(t, room1)
	go func() { // answer the webhook once the room is being released
		for len(h.m.Rooms()) != 0 {
			time.Sleep(time.Millisecond)
		}
		close(g.release)
	}()
	h.m.Release(room1)
	if a := h.rec.ackOf(t, s); a.Code != "" || a.Seq != 1 {
		t.Fatalf("ack %+v", a)
	}
	batches, _ := h.rec.snapshot()
	if rel := reliableEntries(batches); len(rel) != 1 {
		t.Fatalf("broadcast %+v", rel)
	}
}

func TestCloseRefusesLater(t *testing.T) {
	h := newHarness(t, manualConfig())
	h.activate(t, room1)
	h.m.Close()
	chat := h.send("u1", proto.RoleViewer, chatMsg(room1, "late"))
	if a := h.rec.ackOf(t, chat); a.Code != proto.CodeUnavailable {
		t.Fatalf("chat after close %+v", a)
	}
	join := h.send("u1", proto.RoleViewer, &proto.Join{ID: 1, Room: room1})
	if e, ok := h.rec.reply(t, join).(*proto.Error); !ok || e.Code != proto.CodeUnavailable {
		t.Fatalf("join after close %+v", h.rec.reply(t, join))
	}
}

// TestStateEntryLive: a state entry with a live flag (what the media relay
// publishes) shows in every later join's RoomState, and a new owner reading
// the room from the store knows it too.
func TestStateEntryLive(t *testing.T) {
	h := newHarness(t, manualConfig())
	joined := func(h *harness) proto.RoomState {
		t.Helper()
		j, ok := h.waitReply(t, h.send("v", proto.RoleViewer, &proto.Join{ID: 1, Room: room1})).(*proto.Joined)
		if !ok {
			t.Fatal("join not answered with joined")
		}
		return j.State
	}
	if st := joined(h); st.Live || st.Media != "" {
		t.Fatalf("fresh room is live: %+v", st)
	}
	steps := []struct {
		data  string
		live  bool
		media string
	}{
		{`{"live":true,"media":"h264+opus"}`, true, "h264+opus"},
		{`{"title":"no live field"}`, true, "h264+opus"}, // other state entries leave it
		{`not json`, true, "h264+opus"},
		{`{"live":false,"media":"h264"}`, false, ""},
		{`{"live":true,"media":"h264"}`, true, "h264"},
	}
	for _, s := range steps {
		if a := h.waitReply(t, h.publish(room1, proto.Entry{Kind: proto.KindState, Data: s.data}, "")).(*proto.Ack); a.Code != "" {
			t.Fatalf("publish %s: %+v", s.data, a)
		}
		if st := joined(h); st.Live != s.live || st.Media != s.media {
			t.Fatalf("after %s: live %v media %q, want %v %q", s.data, st.Live, st.Media, s.live, s.media)
		}
	}
	// A second manager on the same store (a new owner) reads it back.
	h2 := &harness{rec: newRecorder(t), store: h.store, clock: newFakeClock()}
	m2, err := New(manualConfig(), h.store, h2.rec, WithClock(h2.clock.now), WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m2.Close)
	h2.m = m2
	if st := joined(h2); !st.Live || st.Media != "h264" {
		t.Fatalf("new owner: %+v", st)
	}
}
