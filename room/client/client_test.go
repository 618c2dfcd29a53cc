package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/danmaku/danmaku/room/client"
	"github.com/danmaku/danmaku/room/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var transports = []string{"tcp", "ws"}

// forEach runs fn once per transport.
func forEach(t *testing.T, fn func(t *testing.T, transport string)) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { fn(t, tr) })
	}
}

// recorder drains a client's events and keeps them.
type recorder struct {
	mu     sync.Mutex
	events []client.Event
	rel    map[string][]string // room → "epoch/seq" of delivered reliable entries
	lossy  map[string][]string // room → texts
	done   chan struct{}
}

func record(c *client.Client) *recorder {
	r := &recorder{rel: map[string][]string{}, lossy: map[string][]string{}, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for ev := range c.Events() {
			r.mu.Lock()
			r.events = append(r.events, ev)
			if ev.Kind == client.EventBatch {
				for _, e := range ev.Batch.Reliable {
					r.rel[ev.Room] = append(r.rel[ev.Room], fmt.Sprintf("%s/%d", ev.Batch.Epoch, e.Seq))
				}
				for _, e := range ev.Batch.Lossy {
					r.lossy[ev.Room] = append(r.lossy[ev.Room], e.Text)
				}
			}
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *recorder) reliable(room string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.rel[room])
}

// find returns the first event of kind that matches ok (nil = any).
func (r *recorder) find(kind client.EventKind, ok func(client.Event) bool) (client.Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if ev.Kind == kind && (ok == nil || ok(ev)) {
			return ev, true
		}
	}
	return client.Event{}, false
}

func (r *recorder) waitFor(t *testing.T, kind client.EventKind, ok func(client.Event) bool) client.Event {
	t.Helper()
	var ev client.Event
	eventually(t, func() bool {
		var found bool
		ev, found = r.find(kind, ok)
		return found
	})
	return ev
}

// waitReliable waits until room's delivered reliable entries are exactly want.
func (r *recorder) waitReliable(t *testing.T, room string, want []string) {
	t.Helper()
	if err := poll(5*time.Second, func() bool { return len(r.reliable(room)) >= len(want) }); err != nil {
		t.Fatalf("room %s: delivered %v, want %v", room, r.reliable(room), want)
	}
	if got := r.reliable(room); !slices.Equal(got, want) {
		t.Fatalf("room %s: delivered %v, want %v", room, got, want)
	}
}

func seqs(epoch string, from, to uint64) []string {
	var out []string
	for s := from; s <= to; s++ {
		out = append(out, fmt.Sprintf("%s/%d", epoch, s))
	}
	return out
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// dial connects a client with fast test backoff and records its events; the
// client is closed before the server (cleanups run last-in first-out).
func dial(t *testing.T, s *server, transport string, opts ...client.Option) (*client.Client, *recorder) {
	t.Helper()
	opts = append([]client.Option{client.WithBackoff(5*time.Millisecond, 50*time.Millisecond), client.WithLogger(quiet)}, opts...)
	c, err := client.Dial(context.Background(), s.url(transport), "tok", opts...)
	if err != nil {
		t.Fatal(err)
	}
	rec := record(c)
	t.Cleanup(func() {
		c.Close()
		<-rec.done
	})
	return c, rec
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestSession(t *testing.T) {
	forEach(t, func(t *testing.T, tr string) {
		s := newServer(t)
		s.setHook(func(c *sconn, m proto.Message) bool {
			if j, ok := m.(*proto.Join); ok && j.Room == "secret" {
				_ = c.send(&proto.Error{ID: j.ID, Code: proto.CodeForbidden, Room: j.Room})
				return true
			}
			return false
		})
		c, rec := dial(t, s, tr)
		ctx := ctx(t)

		if w := c.Welcome(); w.User != "u1" || w.Heartbeat != 5000 || w.Limits.MaxText != 20 {
			t.Fatalf("welcome %+v", w)
		}
		h := got[*proto.Hello](s)[0]
		if h.SDK != client.SDKName || h.SDKVersion != client.SDKVersion || h.Version != proto.Version || h.Token != "tok" || h.Platform == "" {
			t.Fatalf("hello %+v", h)
		}

		st, err := c.Join(ctx, "lobby")
		if err != nil || st.Epoch != "e1" || st.Title != "lobby" {
			t.Fatalf("join: %+v, %v", st, err)
		}
		rec.waitFor(t, client.EventState, func(ev client.Event) bool { return ev.Room == "lobby" && !ev.Rejoined })
		if on, ok := c.Online("lobby"); !ok || on != 1 {
			t.Fatalf("online %d %v", on, ok)
		}
		if _, err := c.Join(ctx, "lobby"); !errors.Is(err, client.ErrAlreadyJoined) {
			t.Fatalf("second join: %v", err)
		}
		if _, err := c.Join(ctx, "secret"); !errors.Is(err, proto.CodeForbidden) {
			t.Fatalf("forbidden join: %v", err)
		}
		if _, err := c.Join(ctx, "bad room!"); !errors.Is(err, proto.CodeBadRequest) {
			t.Fatalf("invalid room: %v", err)
		}

		ack, err := c.Chat(ctx, "lobby", "hello", client.WithColor(0xff0000), client.WithMode(proto.ModeTop))
		if err != nil || ack.MsgID != 7 || ack.SampledOut {
			t.Fatalf("chat: %+v, %v", ack, err)
		}
		sent := got[*proto.Chat](s)[0]
		if sent.Color != 0xff0000 || sent.Mode != proto.ModeTop || sent.ClientTS == 0 || sent.Room != "lobby" {
			t.Fatalf("chat on the wire %+v", sent)
		}
		if ack, err := c.Chat(ctx, "lobby", "sample"); err != nil || !ack.SampledOut {
			t.Fatalf("sampled out: %+v, %v", ack, err)
		}
		ack, err = c.Chat(ctx, "lobby", "flood")
		if !errors.Is(err, proto.CodeRateLimited) || ack == nil || ack.RetryAfter != 1500 {
			t.Fatalf("rate limited: %+v, %v", ack, err)
		}
		if _, err := c.Chat(ctx, "lobby", strings.Repeat("x", 21)); !errors.Is(err, proto.CodeTooLong) {
			t.Fatalf("too long (server limit 20, checked locally): %v", err)
		}
		if n := len(got[*proto.Chat](s)); n != 3 {
			t.Fatalf("%d chats reached the server, want 3", n)
		}
		if _, err := c.Like(ctx, "lobby", 3); err != nil {
			t.Fatalf("like: %v", err)
		}
		if _, err := c.Like(ctx, "lobby", 0); !errors.Is(err, proto.CodeBadRequest) {
			t.Fatalf("like 0: %v", err)
		}

		ack, err = c.Gift(ctx, "lobby", "rocket", 2)
		if err != nil || ack.Seq != 1 || ack.Epoch != "e1" || ack.Duplicate {
			t.Fatalf("gift: %+v, %v", ack, err)
		}
		rec.waitReliable(t, "lobby", []string{"e1/1"})
		if ep, seq, ok := c.Position("lobby"); !ok || ep != "e1" || seq != 1 {
			t.Fatalf("position %s %d %v", ep, seq, ok)
		}

		if err := c.Leave(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
		if err := c.Leave(ctx, "lobby"); !errors.Is(err, proto.CodeNotJoined) {
			t.Fatalf("second leave: %v", err)
		}
		if _, ok := c.Online("lobby"); ok {
			t.Fatal("left room still listed")
		}
	})
}

func TestDialRefused(t *testing.T) {
	forEach(t, func(t *testing.T, tr string) {
		s := newServer(t)
		s.setRefuse(proto.CodeUnauthorized)
		_, err := client.Dial(ctx(t), s.url(tr), "forged", client.WithLogger(quiet))
		if !errors.Is(err, proto.CodeUnauthorized) {
			t.Fatalf("got %v, want unauthorized", err)
		}
	})
	if _, err := client.Dial(ctx(t), "http://127.0.0.1:1", ""); err == nil {
		t.Fatal("http scheme accepted")
	}
	if _, err := client.Dial(ctx(t), "tcp://127.0.0.1:1", "", client.WithBackoff(0, time.Second)); err == nil || !strings.Contains(err.Error(), "BackoffBase") {
		t.Fatalf("invalid config: %v", err)
	}
}

func TestGiftRetriesWithSameKey(t *testing.T) {
	forEach(t, func(t *testing.T, tr string) {
		s := newServer(t)
		var attempts int
		s.setHook(func(c *sconn, m proto.Message) bool {
			g, ok := m.(*proto.Gift)
			if !ok {
				return false
			}
			attempts++
			switch attempts {
			case 1, 2: // lost: no ack
				return true
			case 3:
				_ = c.send(&proto.Ack{ID: g.ID, Code: proto.CodeUnavailable, RetryAfter: 20})
				return true
			}
			return false
		})
		// Generous: an ack slower than this would be a legitimate extra retry.
		c, _ := dial(t, s, tr, client.WithGiftAttemptTimeout(500*time.Millisecond))
		ctx := ctx(t)
		if _, err := c.Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
		ack, err := c.Gift(ctx, "lobby", "rocket", 1)
		if err != nil || ack.Seq != 1 || ack.Duplicate {
			t.Fatalf("gift: %+v, %v", ack, err)
		}
		gifts := got[*proto.Gift](s)
		if len(gifts) != 4 {
			t.Fatalf("server saw %d gift frames, want 4", len(gifts))
		}
		for _, g := range gifts {
			if g.Key != gifts[0].Key || g.ClientTS != gifts[0].ClientTS || g.Key == "" {
				t.Fatalf("retries differ: %+v vs %+v", g, gifts[0])
			}
		}
		if n := c.Stats().GiftRetry; n != 3 {
			t.Fatalf("gift retries %d, want 3", n)
		}
		// The app retries later with the same key: the original ack, as is.
		dup, err := c.GiftWithKey(ctx, "lobby", "rocket", 1, gifts[0].Key)
		if err != nil || !dup.Duplicate || dup.Seq != ack.Seq {
			t.Fatalf("duplicate: %+v, %v", dup, err)
		}
	})
}

func TestGiftAcrossReconnect(t *testing.T) {
	forEach(t, func(t *testing.T, tr string) {
		s := newServer(t)
		var once sync.Once
		s.setHook(func(c *sconn, m proto.Message) bool {
			killed := false
			if _, ok := m.(*proto.Gift); ok {
				once.Do(func() { c.kill(); killed = true })
			}
			return killed
		})
		c, rec := dial(t, s, tr)
		ctx := ctx(t)
		if _, err := c.Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
		ack, err := c.GiftWithKey(ctx, "lobby", "rocket", 5, "order-42")
		if err != nil || ack.Seq != 1 {
			t.Fatalf("gift: %+v, %v", ack, err)
		}
		if gifts := got[*proto.Gift](s); len(gifts) != 2 || gifts[1].Key != "order-42" {
			t.Fatalf("gift frames %+v", gifts)
		}
		rec.waitReliable(t, "lobby", []string{"e1/1"}) // its broadcast, once
	})
}

func TestGiftDeadline(t *testing.T) {
	s := newServer(t)
	s.setHook(func(c *sconn, m proto.Message) bool { _, ok := m.(*proto.Gift); return ok })
	c, _ := dial(t, s, "tcp", client.WithGiftDeadline(300*time.Millisecond), client.WithGiftAttemptTimeout(50*time.Millisecond))
	_, err := c.Gift(ctx(t), "lobby", "rocket", 1)
	var ge *client.GiftError
	if !errors.As(err, &ge) || ge.Key == "" || ge.Ack != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	for _, g := range got[*proto.Gift](s) { // however many fit in the deadline
		if g.Key != ge.Key {
			t.Fatalf("attempt with key %s, want %s", g.Key, ge.Key)
		}
	}
}

// The server sends batches before joined, duplicates, a gap, out-of-order
// entries; the app sees every reliable seq once, in order.
func TestExactlyOnce(t *testing.T) {
	forEach(t, func(t *testing.T, tr string) {
		s := newServer(t)
		s.publish("x", 10) // history 1..10, nobody joined yet
		batch := func(lossy string, seqs ...uint64) *proto.Batch {
			b := &proto.Batch{Room: "x", Epoch: "e1"}
			for _, q := range seqs {
				b.Reliable = append(b.Reliable, s.entry("x", q))
			}
			if lossy != "" {
				b.Lossy = []proto.Entry{{Kind: proto.KindChat, Text: lossy}}
			}
			return b
		}
		s.setHook(func(c *sconn, m proto.Message) bool {
			j, ok := m.(*proto.Join)
			if !ok {
				return false
			}
			s.mu.Lock()
			s.room("x").members[c] = true
			s.mu.Unlock()
			_ = c.send(batch("", 4, 5)) // before joined
			_ = c.send(&proto.Joined{ID: j.ID, Room: "x", State: proto.RoomState{Epoch: "e1", Seq: 3}})
			_ = c.send(batch("", 5, 6))
			_ = c.send(batch("", 6, 7))
			_ = c.send(batch("during the gap", 10, 9)) // gap (8), out of order
			_ = c.send(batch("", 7))
			return true
		})
		c, rec := dial(t, s, tr)
		if _, err := c.Join(ctx(t), "x"); err != nil {
			t.Fatal(err)
		}
		rec.waitReliable(t, "x", seqs("e1", 4, 10))
		resumes := got[*proto.Resume](s)
		if len(resumes) != 1 || resumes[0].Seq != 7 || resumes[0].Epoch != "e1" || resumes[0].Room != "x" {
			t.Fatalf("resumes %+v, want one from e1/7", resumes)
		}
		if lossy := rec.lossy["x"]; len(lossy) != 1 {
			t.Fatalf("lossy %v", lossy)
		}
		st := c.Stats()
		if st.Duplicates != 5 || st.Gaps != 1 || st.Recovered != 1 || st.Reliable != 7 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestReconnectResumes(t *testing.T) {
	forEach(t, func(t *testing.T, tr string) {
		s := newServer(t)
		c, rec := dial(t, s, tr)
		if _, err := c.Join(ctx(t), "live"); err != nil {
			t.Fatal(err)
		}
		s.publish("live", 5)
		rec.waitReliable(t, "live", seqs("e1", 1, 5))

		s.only(t).kill()
		s.publish("live", 3) // 6..8 while the client is away: only in history
		rec.waitFor(t, client.EventResumed, func(ev client.Event) bool { return ev.Recovered })
		s.publish("live", 2) // 9..10 live
		rec.waitReliable(t, "live", seqs("e1", 1, 10))

		resumes := got[*proto.Resume](s)
		if len(resumes) != 1 || resumes[0].Seq != 5 || resumes[0].Epoch != "e1" {
			t.Fatalf("resumes %+v, want one from e1/5", resumes)
		}
		for _, k := range []client.EventKind{client.EventConnected, client.EventDisconnected, client.EventReconnecting, client.EventReconnected} {
			rec.waitFor(t, k, nil)
		}
		if st := c.Stats(); st.Reconnects != 1 || st.Reliable != 10 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestReconnectNotRecovered(t *testing.T) {
	forEach(t, func(t *testing.T, tr string) {
		s := newServer(t)
		c, rec := dial(t, s, tr)
		if _, err := c.Join(ctx(t), "live"); err != nil {
			t.Fatal(err)
		}
		s.publish("live", 3)
		rec.waitReliable(t, "live", seqs("e1", 1, 3))

		s.resetEpoch("live", "e2", 50) // the ledger was lost
		s.only(t).kill()
		ev := rec.waitFor(t, client.EventState, func(ev client.Event) bool { return ev.Rejoined })
		if ev.State.Epoch != "e2" || ev.State.Seq != 50 {
			t.Fatalf("rejoined state %+v", ev.State)
		}
		rec.waitFor(t, client.EventResumed, func(ev client.Event) bool { return !ev.Recovered })
		s.publish("live", 2)
		// A late batch of the old epoch is stale.
		_ = s.only(t).send(&proto.Batch{Room: "live", Epoch: "e1", Reliable: []proto.Entry{{Kind: proto.KindGift, Seq: 4}}})
		rec.waitReliable(t, "live", append(seqs("e1", 1, 3), seqs("e2", 51, 52)...))
		eventually(t, func() bool { return c.Stats().StaleEpoch == 1 })
		if ep, seq, _ := c.Position("live"); ep != "e2" || seq != 52 {
			t.Fatalf("position %s/%d", ep, seq)
		}
		if st := c.Stats(); st.Rebased != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestServerRequestsReconnect(t *testing.T) {
	forEach(t, func(t *testing.T, tr string) {
		s := newServer(t)
		c, rec := dial(t, s, tr)
		if _, err := c.Join(ctx(t), "live"); err != nil {
			t.Fatal(err)
		}
		_ = s.only(t).send(&proto.Reconnect{Reason: proto.CodeShutdown, RetryAfter: 30})
		ev := rec.waitFor(t, client.EventReconnectRequested, nil)
		if ev.Reconnect.Reason != proto.CodeShutdown || ev.Reconnect.RetryAfter != 30 {
			t.Fatalf("event %+v", ev.Reconnect)
		}
		ev = rec.waitFor(t, client.EventReconnecting, nil)
		if ev.Delay < 30*time.Millisecond {
			t.Fatalf("reconnected after %v, before the server's retry-after", ev.Delay)
		}
		rec.waitFor(t, client.EventResumed, nil)
		if n := s.acceptedConns(); n != 2 {
			t.Fatalf("%d connections", n)
		}
		if _, err := c.Chat(ctx(t), "live", "back"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestHeartbeat(t *testing.T) {
	forEach(t, func(t *testing.T, tr string) {
		s := newServer(t)
		s.setHeartbeat(250) // ms: the client pings every 200 ms, gives up after 500 ms of silence
		c, rec := dial(t, s, tr)
		if _, err := c.Join(ctx(t), "live"); err != nil {
			t.Fatal(err)
		}
		eventually(t, func() bool { return len(got[*proto.Ping](s)) >= 3 })
		eventually(t, func() bool { on, _ := c.Online("live"); return on == 42 && c.Stats().RTT > 0 })

		s.only(t).silent.Store(true) // the server hangs: no pong, no close
		ev := rec.waitFor(t, client.EventDisconnected, nil)
		if !strings.Contains(ev.Err.Error(), "heartbeat") {
			t.Fatalf("disconnected by %v", ev.Err)
		}
		rec.waitFor(t, client.EventResumed, nil)
		if n := s.acceptedConns(); n < 2 { // more if a loaded machine stalled a pong
			t.Fatalf("%d connections", n)
		}
	})
}

func TestTokenSource(t *testing.T) {
	s := newServer(t)
	var n int
	var mu sync.Mutex
	src := func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		return fmt.Sprintf("tok-%d", n), nil
	}
	_, rec := dial(t, s, "tcp", client.WithTokenSource(src))
	s.only(t).kill()
	rec.waitFor(t, client.EventReconnected, nil)
	hellos := got[*proto.Hello](s)
	if len(hellos) != 2 || hellos[0].Token != "tok-1" || hellos[1].Token != "tok-2" {
		t.Fatalf("hellos %+v", hellos)
	}
}

// A token refused on reconnect, without a TokenSource, stops the client.
func TestRefusedReconnectStops(t *testing.T) {
	s := newServer(t)
	c, rec := dial(t, s, "ws")
	s.setRefuse(proto.CodeTokenExpired)
	s.only(t).kill()
	ev := rec.waitFor(t, client.EventClosed, nil)
	if !errors.Is(ev.Err, proto.CodeTokenExpired) || !errors.Is(c.Err(), proto.CodeTokenExpired) {
		t.Fatalf("closed by %v / %v", ev.Err, c.Err())
	}
	<-c.Done()
	<-rec.done // the Events channel is closed
	if _, err := c.Chat(ctx(t), "live", "x"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("chat after stop: %v", err)
	}
}

func TestCallContextAndLostConnection(t *testing.T) {
	forEach(t, func(t *testing.T, tr string) {
		s := newServer(t)
		s.setHook(func(c *sconn, m proto.Message) bool {
			ch, ok := m.(*proto.Chat)
			switch {
			case !ok:
				return false
			case ch.Text == "swallow":
				return true
			case ch.Text == "kill":
				c.kill()
				return true
			}
			return false
		})
		c, rec := dial(t, s, tr)
		short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := c.Chat(short, "live", "swallow"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("timeout: %v", err)
		}
		if _, err := c.Chat(ctx(t), "live", "ok"); err != nil {
			t.Fatalf("after a timeout: %v", err)
		}
		if _, err := c.Chat(ctx(t), "live", "kill"); !errors.Is(err, proto.CodeUnavailable) {
			t.Fatalf("lost connection: %v", err)
		}
		rec.waitFor(t, client.EventReconnected, nil)
	})
}

// Close with calls in flight returns at once and leaves no goroutine behind.
func TestClosePending(t *testing.T) {
	forEach(t, func(t *testing.T, tr string) {
		s, err := startServer(5000)
		if err != nil {
			t.Fatal(err)
		}
		s.setHook(func(_ *sconn, m proto.Message) bool { _, hello := m.(*proto.Hello); return !hello }) // answers nothing after welcome
		c, err := client.Dial(ctx(t), s.url(tr), "tok", client.WithLogger(quiet))
		if err != nil {
			t.Fatal(err)
		}
		rec := record(c)
		errs := make(chan error, 2)
		go func() { _, err := c.Chat(context.Background(), "lobby", "hi"); errs <- err }()
		go func() { _, err := c.Gift(context.Background(), "lobby", "rocket", 1); errs <- err }()
		eventually(t, func() bool { return len(got[*proto.Chat](s)) == 1 && len(got[*proto.Gift](s)) == 1 })
		c.Close()
		for range 2 {
			select {
			case err := <-errs:
				if !errors.Is(err, client.ErrClosed) {
					t.Fatalf("pending call: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("pending call did not return after Close")
			}
		}
		<-rec.done
		c.Close() // a no-op
		s.Close()
		goleak.VerifyNone(t)
	})
}

// Many goroutines use one client at once (run with -race).
func TestConcurrentUse(t *testing.T) {
	s := newServer(t)
	c, rec := dial(t, s, "ws")
	if _, err := c.Join(ctx(t), "lobby"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				if _, err := c.Chat(ctx(t), "lobby", fmt.Sprintf("m%d-%d", i, j)); err != nil {
					t.Error(err)
				}
				if _, err := c.Gift(ctx(t), "lobby", "rose", 1); err != nil {
					t.Error(err)
				}
				_ = c.Stats()
				_, _ = c.Online("lobby")
			}
		}()
	}
	wg.Wait()
	rec.waitReliable(t, "lobby", seqs("e1", 1, 80))
}

func TestKickedStops(t *testing.T) {
	s := newServer(t)
	c, rec := dial(t, s, "tcp")
	conn := s.only(t)
	_ = conn.send(&proto.Error{Code: proto.CodeKicked, Message: "bye"})
	conn.kill()
	ev := rec.waitFor(t, client.EventClosed, nil)
	if !errors.Is(ev.Err, proto.CodeKicked) || !errors.Is(c.Err(), proto.CodeKicked) {
		t.Fatalf("closed by %v", ev.Err)
	}
	if _, ok := rec.find(client.EventReconnecting, nil); ok || s.acceptedConns() != 1 {
		t.Fatal("reconnected after a kick")
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	s := newServer(t)
	cfg := client.DefaultConfig()
	cfg.MaxReconnectAttempts = 3
	cfg.BackoffBase, cfg.BackoffMax = time.Millisecond, 5*time.Millisecond
	c, rec := dial(t, s, "ws", client.WithConfig(cfg), client.WithLogger(quiet))
	s.Close() // nothing listens any more
	ev := rec.waitFor(t, client.EventClosed, nil)
	if !strings.Contains(ev.Err.Error(), "3 reconnect attempts") {
		t.Fatalf("closed by %v", ev.Err)
	}
	<-c.Done()
	r, _ := rec.find(client.EventReconnecting, func(ev client.Event) bool { return ev.Attempt == 3 })
	if r.Attempt != 3 {
		t.Fatal("no third attempt reported")
	}
}

// A resume refused with a retryable code is retried; refused for good, the
// room is left with an event.
func TestResumeRefused(t *testing.T) {
	s := newServer(t)
	var n int
	s.setHook(func(c *sconn, m proto.Message) bool {
		r, ok := m.(*proto.Resume)
		if !ok {
			return false
		}
		n++
		code := proto.CodeUnavailable
		if n > 1 {
			code = proto.CodeBanned
		}
		_ = c.send(&proto.Error{ID: r.ID, Code: code, Room: r.Room})
		return true
	})
	c, rec := dial(t, s, "tcp")
	if _, err := c.Join(ctx(t), "live"); err != nil {
		t.Fatal(err)
	}
	s.only(t).kill()
	ev := rec.waitFor(t, client.EventLeft, nil)
	if ev.Room != "live" || !errors.Is(ev.Err, proto.CodeBanned) {
		t.Fatalf("left %+v", ev)
	}
	if len(got[*proto.Resume](s)) != 2 {
		t.Fatalf("resumes %+v", got[*proto.Resume](s))
	}
	if _, ok := c.Online("live"); ok {
		t.Fatal("room still joined")
	}
}

func TestOnEventCallback(t *testing.T) {
	s := newServer(t)
	var mu sync.Mutex
	var kinds []client.EventKind
	c, err := client.Dial(ctx(t), s.url("tcp"), "tok", client.WithLogger(quiet), client.WithOnEvent(func(ev client.Event) {
		mu.Lock()
		kinds = append(kinds, ev.Kind)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Events() != nil {
		t.Fatal("Events must be nil with OnEvent")
	}
	if _, err := c.Join(ctx(t), "lobby"); err != nil {
		t.Fatal(err)
	}
	s.publish("lobby", 1)
	eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Equal(kinds, []client.EventKind{client.EventConnected, client.EventState, client.EventBatch})
	})
}
