package redisstore

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// conformance is the behaviour every manager.Store must have, written against
// the interface only: each case gets a fresh, empty store.
var conformance = []struct {
	name string
	run  func(t *testing.T, s manager.Store)
}{
	{"head creates one epoch", func(t *testing.T, s manager.Store) {
		h1 := mustHead(t, s, "r1")
		h2 := mustHead(t, s, "r1")
		if h1.Epoch == "" || h1 != h2 || h1.Seq != 0 {
			t.Fatalf("heads %+v %+v, want one epoch at seq 0", h1, h2)
		}
		if o := mustHead(t, s, "r2"); o.Epoch == h1.Epoch {
			t.Fatalf("rooms r1 and r2 share epoch %q", o.Epoch)
		}
	}},
	{"append assigns contiguous seqs in the head's epoch", func(t *testing.T, s manager.Store) {
		h := mustHead(t, s, "r1")
		for i := 1; i <= 20; i++ {
			e := gift(i)
			a := mustAppend(t, s, "r1", fmt.Sprintf("k%d", i), e)
			e.Seq, e.ServerTS = uint64(i), a.Entry.ServerTS
			if a.Epoch != h.Epoch || a.Duplicate || !reflect.DeepEqual(a.Entry, e) || a.Entry.ServerTS == 0 {
				t.Fatalf("append %d = %+v, want %+v in epoch %s", i, a, e, h.Epoch)
			}
		}
		if h2 := mustHead(t, s, "r1"); h2 != (manager.Head{Epoch: h.Epoch, Seq: 20}) {
			t.Fatalf("head %+v after 20 appends", h2)
		}
	}},
	{"append keeps the caller's ServerTS", func(t *testing.T, s manager.Store) {
		e := gift(1)
		e.ServerTS = 12345
		if a := mustAppend(t, s, "r1", "", e); a.Entry.ServerTS != 12345 {
			t.Fatalf("ServerTS %d, want 12345", a.Entry.ServerTS)
		}
	}},
	{"same key twice is one entry", func(t *testing.T, s manager.Store) {
		mustAppend(t, s, "r1", "other", gift(0))
		first := mustAppend(t, s, "r1", "k", gift(1))
		again := mustAppend(t, s, "r1", "k", gift(2)) // a retry whose body changed: the first wins
		if !again.Duplicate || first.Duplicate || again.Entry != first.Entry || again.Epoch != first.Epoch {
			t.Fatalf("retry = %+v, want the original %+v marked duplicate", again, first)
		}
		r := mustSince(t, s, "r1", first.Epoch, 0, 100)
		if len(r.Entries) != 2 || r.Head.Seq != 2 {
			t.Fatalf("since: %d entries, head %+v; want 2", len(r.Entries), r.Head)
		}
	}},
	{"keys are per room", func(t *testing.T, s manager.Store) {
		a := mustAppend(t, s, "r1", "k", gift(1))
		b := mustAppend(t, s, "r2", "k", gift(1))
		if a.Duplicate || b.Duplicate {
			t.Fatalf("the same key in two rooms was a duplicate: %+v %+v", a, b)
		}
	}},
	{"appends without a key are all stored", func(t *testing.T, s manager.Store) {
		for i := 1; i <= 3; i++ {
			if a := mustAppend(t, s, "r1", "", notice(i)); a.Entry.Seq != uint64(i) || a.Duplicate {
				t.Fatalf("append %d = %+v", i, a)
			}
		}
	}},
	{"since replays and says whether it is complete", func(t *testing.T, s manager.Store) {
		var want []proto.Entry
		for i := 1; i <= 10; i++ {
			want = append(want, mustAppend(t, s, "r1", "", gift(i)).Entry)
		}
		ep := mustHead(t, s, "r1").Epoch
		cases := []struct {
			epoch    string
			after    uint64
			limit    int
			want     []proto.Entry
			complete bool
		}{
			{ep, 0, 100, want, true},
			{ep, 4, 100, want[4:], true},
			{ep, 4, 3, want[4:7], true}, // cut by the limit, but no gap
			{ep, 4, 0, want[4:], true},  // 0 = no limit of the caller's
			{ep, 10, 100, nil, true},    // up to date
			{ep, 11, 100, nil, false},   // ahead of the head: another history
			{ep, 1 << 60, 100, nil, false},
			{"old-epoch", 4, 100, nil, false},
			{"", 0, 100, nil, false},
		}
		for _, c := range cases {
			r := mustSince(t, s, "r1", c.epoch, c.after, c.limit)
			if r.Complete != c.complete || !slices.Equal(r.Entries, c.want) || r.Head != (manager.Head{Epoch: ep, Seq: 10}) {
				t.Errorf("Since(%q, %d, %d) = complete %v, %d entries, head %+v; want %v, %d",
					c.epoch, c.after, c.limit, r.Complete, len(r.Entries), r.Head, c.complete, len(c.want))
			}
		}
	}},
	{"since on a new room creates its epoch", func(t *testing.T, s manager.Store) {
		r := mustSince(t, s, "r1", "", 0, 10)
		if r.Head.Epoch == "" || r.Head.Seq != 0 || r.Complete || mustHead(t, s, "r1") != r.Head {
			t.Fatalf("since on a new room = %+v", r)
		}
	}},
	{"bad input is refused", func(t *testing.T, s manager.Store) {
		ctx := ctxT(t)
		for name, err := range map[string]error{
			"chat kind": second(s.Append(ctx, "r1", "", proto.Entry{Kind: proto.KindChat, Text: "x"})),
			"room id":   second(s.Append(ctx, "bad room", "", gift(1))),
			"key":       second(s.Append(ctx, "r1", string(make([]byte, proto.MaxKeyLen+1)), gift(1))),
			"head room": second(s.Head(ctx, "")),
			"since":     second(s.Since(ctx, "r{1}", "e", 0, 1)),
			"backlog":   second(s.Backlog(ctx, "x:y")),
			"sanction":  s.SetSanction(ctx, manager.Sanction{Room: "r1"}),
			"policy":    s.SetPolicy(ctx, "r1", manager.Policy{Budget: -1}),
		} {
			if !errors.Is(err, proto.CodeBadRequest) {
				t.Errorf("%s: err %v, want bad_request", name, err)
			}
		}
	}},
	{"backlog keeps the newest entries, oldest first", func(t *testing.T, s manager.Store) {
		ctx := ctxT(t)
		if b, err := s.Backlog(ctx, "r1"); err != nil || len(b) != 0 {
			t.Fatalf("empty backlog = %v, %v", b, err)
		}
		var chats []proto.Entry
		for i := range 60 {
			chats = append(chats, proto.Entry{Kind: proto.KindChat, MsgID: uint64(i), User: "u", Text: fmt.Sprint("hi ", i)})
		}
		must(t, s.SaveBacklog(ctx, "r1", chats[:10]))
		must(t, s.SaveBacklog(ctx, "r1", chats))
		b, err := s.Backlog(ctx, "r1")
		must(t, err)
		if !slices.Equal(b, chats[10:]) {
			t.Fatalf("backlog has %d entries from %v, want the newest 50", len(b), b[0].MsgID)
		}
		must(t, s.SaveBacklog(ctx, "r1", nil))
		if b, _ := s.Backlog(ctx, "r1"); len(b) != 0 {
			t.Fatalf("backlog after saving none: %d entries", len(b))
		}
	}},
	{"sanctions: room plus global, replaced, lifted, expired", func(t *testing.T, s manager.Store) {
		ctx := ctxT(t)
		later := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli())
		must(t, s.SetSanction(ctx, manager.Sanction{Room: "r1", User: "alice", Until: later}))
		must(t, s.SetSanction(ctx, manager.Sanction{Room: "r1", User: "alice", Ban: true}))
		must(t, s.SetSanction(ctx, manager.Sanction{Room: "r1", User: "bob", Until: time.Now().Add(-time.Second)}))
		must(t, s.SetSanction(ctx, manager.Sanction{Room: "r2", User: "carol", Ban: true}))
		must(t, s.SetSanction(ctx, manager.Sanction{User: "mallory", Ban: true}))
		must(t, s.SetSanction(ctx, manager.Sanction{Room: "global", User: "dave"})) // a room named "global"
		got := sanctionsOf(t, s, "r1")
		want := []manager.Sanction{
			{User: "mallory", Ban: true},
			{Room: "r1", User: "alice", Ban: true},
			{Room: "r1", User: "alice", Until: later},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("sanctions of r1 = %+v, want %+v", got, want)
		}
		must(t, s.SetSanction(ctx, manager.Sanction{Room: "r1", User: "alice"})) // mute now permanent
		must(t, s.LiftSanction(ctx, "r1", "alice", true))
		must(t, s.LiftSanction(ctx, "r1", "nobody", false)) // lifting nothing is fine
		must(t, s.LiftSanction(ctx, "", "mallory", true))
		want = []manager.Sanction{{Room: "r1", User: "alice"}}
		if got := sanctionsOf(t, s, "r1"); !reflect.DeepEqual(got, want) {
			t.Fatalf("sanctions of r1 = %+v, want %+v", got, want)
		}
		want = []manager.Sanction{{Room: "global", User: "dave"}}
		if got := sanctionsOf(t, s, "global"); !reflect.DeepEqual(got, want) {
			t.Fatalf("sanctions of room global = %+v, want %+v", got, want)
		}
	}},
	{"policy round-trips and is replaced", func(t *testing.T, s manager.Store) {
		ctx := ctxT(t)
		if p, err := s.Policy(ctx, "r1"); err != nil || p != (manager.Policy{}) {
			t.Fatalf("policy of a new room = %+v, %v", p, err)
		}
		full := manager.Policy{Title: "Final 决赛", Budget: 300, Tick: 50 * time.Millisecond,
			SlowMode: 3 * time.Second, VIPOnly: true, Closed: true}
		for _, p := range []manager.Policy{full, {Budget: 10}, {}} {
			must(t, s.SetPolicy(ctx, "r1", p))
			got, err := s.Policy(ctx, "r1")
			if err != nil || got != p {
				t.Fatalf("policy = %+v, %v; want %+v", got, err, p)
			}
		}
	}},
}

func TestConformance(t *testing.T) {
	for _, c := range conformance {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, newTestStore(t, testConfig(t)))
		})
	}
}

func gift(i int) proto.Entry {
	return proto.Entry{Kind: proto.KindGift, MsgID: uint64(1000 + i), User: fmt.Sprint("u", i),
		Name: "Ann", Role: proto.RoleViewer, Gift: "rocket", Count: uint32(i + 1), ClientTS: 1700000000000}
}

func notice(i int) proto.Entry {
	return proto.Entry{Kind: proto.KindNotice, Role: proto.RoleSystem, Text: fmt.Sprint("notice ", i), Level: "info"}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func second[T any](_ T, err error) error { return err }

func mustHead(t *testing.T, s manager.Store, room string) manager.Head {
	t.Helper()
	h, err := s.Head(ctxT(t), room)
	must(t, err)
	return h
}

func mustAppend(t *testing.T, s manager.Store, room, key string, e proto.Entry) manager.Appended {
	t.Helper()
	a, err := s.Append(ctxT(t), room, key, e)
	must(t, err)
	return a
}

func mustSince(t *testing.T, s manager.Store, room, epoch string, after uint64, limit int) manager.Replay {
	t.Helper()
	r, err := s.Since(ctxT(t), room, epoch, after, limit)
	must(t, err)
	return r
}

// sanctionsOf returns room's sanctions in a stable order.
func sanctionsOf(t *testing.T, s manager.Store, room string) []manager.Sanction {
	t.Helper()
	got, err := s.Sanctions(ctxT(t), room)
	must(t, err)
	slices.SortFunc(got, func(a, b manager.Sanction) int {
		return cmp.Compare(a.Room+"/"+a.User+fmt.Sprint(!a.Ban), b.Room+"/"+b.User+fmt.Sprint(!b.Ban))
	})
	return got
}
