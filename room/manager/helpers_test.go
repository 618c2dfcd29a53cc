package manager

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/danmaku/danmaku/room/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quiet drops the store warnings failure tests provoke on purpose.
var quiet = slog.New(slog.DiscardHandler)

// recorder is a Sink that decodes and keeps everything (a test double of the
// fan-out layer). pending, when set, is its Backpressure answer.
type recorder struct {
	mu      sync.Mutex
	events  int // order of Publish and Reply calls
	emitted []*Emitted
	batches []*proto.Batch
	batchAt []int // event index of each batch
	replies []gotReply
	pending atomic.Bool
	t       testing.TB
}

type gotReply struct {
	Node    string
	Session uint64
	Msg     proto.Message
	At      int // event index
}

func newRecorder(t testing.TB) *recorder { return &recorder{t: t} }

func (r *recorder) Publish(e *Emitted) {
	m, err := proto.Decode(e.Body)
	if err != nil {
		r.t.Errorf("batch does not decode: %v", err)
		return
	}
	b, ok := m.(*proto.Batch)
	if !ok {
		r.t.Errorf("emitted %T, want batch", m)
		return
	}
	r.mu.Lock()
	r.events++
	r.emitted = append(r.emitted, e)
	r.batches = append(r.batches, b)
	r.batchAt = append(r.batchAt, r.events)
	r.mu.Unlock()
}

func (r *recorder) Reply(rp Reply) {
	m, err := proto.Decode(rp.Body)
	if err != nil {
		r.t.Errorf("reply does not decode: %v", err)
		return
	}
	r.mu.Lock()
	r.events++
	r.replies = append(r.replies, gotReply{rp.Node, rp.Session, m, r.events})
	r.mu.Unlock()
}

// backpressured wraps a recorder with the optional Backpressure interface.
type backpressured struct{ *recorder }

func (b backpressured) Pending(string) bool { return b.pending.Load() }

func (r *recorder) snapshot() ([]*proto.Batch, []gotReply) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*proto.Batch(nil), r.batches...), append([]gotReply(nil), r.replies...)
}

func (r *recorder) nReplies() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.replies)
}

// reply returns the reply to session, failing if there is not exactly one.
func (r *recorder) reply(t testing.TB, session uint64) proto.Message {
	t.Helper()
	_, reps := r.snapshot()
	var got []proto.Message
	for _, rp := range reps {
		if rp.Session == session {
			got = append(got, rp.Msg)
		}
	}
	if len(got) != 1 {
		t.Fatalf("session %d got %d replies, want 1: %+v", session, len(got), got)
	}
	return got[0]
}

func (r *recorder) ackOf(t testing.TB, session uint64) *proto.Ack {
	t.Helper()
	a, ok := r.reply(t, session).(*proto.Ack)
	if !ok {
		t.Fatalf("session %d: reply is %T, want ack", session, r.reply(t, session))
	}
	return a
}

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// manualConfig ticks only when the test flushes (Tick is at its maximum) and
// never evicts by itself.
func manualConfig() Config {
	cfg := DefaultConfig()
	cfg.Tick = maxTick
	cfg.IdleTimeout = time.Hour
	return cfg
}

type harness struct {
	m     *Manager
	rec   *recorder
	store *MemoryStore
	clock *fakeClock
	seq   atomic.Uint64 // session ids: one per request, so replies are matched exactly
}

func newHarness(t testing.TB, cfg Config, opts ...Option) *harness {
	t.Helper()
	h := &harness{rec: newRecorder(t), store: NewMemoryStore(), clock: newFakeClock()}
	opts = append([]Option{WithClock(h.clock.now), WithSeed(1), WithLogger(quiet)}, opts...)
	m, err := New(cfg, h.store, h.rec, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	t.Cleanup(m.Close)
	return h
}

// send submits msg from user with role and returns the session its reply
// goes to.
func (h *harness) send(user string, role proto.Role, msg proto.Message) uint64 {
	s := h.seq.Add(1)
	h.m.Submit(&Inbound{Node: "n1", Session: s, User: user, Name: "name-" + user, Role: role, Msg: msg})
	return s
}

func (h *harness) publish(room string, e proto.Entry, key string) uint64 {
	s := h.seq.Add(1)
	h.m.SubmitTo(room, &Inbound{Node: "api", Session: s, Role: proto.RoleSystem,
		Publish: &Publish{Entry: e, Key: key}})
	return s
}

// flush makes room emit and waits for it.
func (h *harness) flush(t testing.TB, room string) {
	t.Helper()
	if !h.m.flush(room) {
		t.Fatalf("room %q is not active", room)
	}
}

// waitReply waits until session has been answered.
func (h *harness) waitReply(t testing.TB, session uint64) proto.Message {
	t.Helper()
	eventually(t, 5*time.Second, "a reply", func() bool {
		_, reps := h.rec.snapshot()
		for _, rp := range reps {
			if rp.Session == session {
				return true
			}
		}
		return false
	})
	return h.rec.reply(t, session)
}

func chatMsg(room, text string) *proto.Chat { return &proto.Chat{ID: 1, Room: room, Text: text} }
