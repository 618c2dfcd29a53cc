package redisstore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// TestAppendConcurrentDuplicates: 50 senders × 20 appends whose keys collide
// at random. Every key gets exactly one seq, and the seqs are 1..N without a
// gap, N being the number of distinct keys.
func TestAppendConcurrentDuplicates(t *testing.T) {
	s := newTestStore(t, testConfig(t))
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	const senders, each, keys = 50, 20, 400 // 1000 appends over 400 keys
	type result struct {
		key string
		a   manager.Appended
	}
	results := make(chan result, senders*each)
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			for range each {
				key := fmt.Sprintf("k%d", rng.IntN(keys))
				a, err := s.Append(ctxT(t), "r1", key, gift(g))
				if err != nil {
					t.Error(err)
					return
				}
				results <- result{key, a}
			}
		}()
	}
	wg.Wait()
	close(results)

	seqOf := map[string]uint64{}
	keyOf := map[uint64]string{}
	firsts := 0
	for r := range results {
		if !r.a.Duplicate {
			firsts++
		}
		if seq, ok := seqOf[r.key]; ok && seq != r.a.Entry.Seq {
			t.Fatalf("key %s got seqs %d and %d", r.key, seq, r.a.Entry.Seq)
		}
		if k, ok := keyOf[r.a.Entry.Seq]; ok && k != r.key {
			t.Fatalf("seq %d went to keys %s and %s", r.a.Entry.Seq, k, r.key)
		}
		seqOf[r.key], keyOf[r.a.Entry.Seq] = r.a.Entry.Seq, r.key
	}
	n := uint64(len(seqOf))
	if uint64(firsts) != n {
		t.Fatalf("%d first appends for %d keys", firsts, n)
	}
	for seq := uint64(1); seq <= n; seq++ {
		if _, ok := keyOf[seq]; !ok {
			t.Fatalf("gap: seq %d of %d unused", seq, n)
		}
	}
	h := mustHead(t, s, "r1")
	r := mustSince(t, s, "r1", h.Epoch, 0, 0)
	if h.Seq != n || uint64(len(r.Entries)) != n || !r.Complete {
		t.Fatalf("head %d, %d logged entries, complete %v; want %d", h.Seq, len(r.Entries), r.Complete, n)
	}
	if got := counterValue(t, s.m.ops.WithLabelValues("append", "duplicate")); got != float64(senders*each)-float64(n) {
		t.Fatalf("duplicate metric %v, want %d", got, senders*each-int(n))
	}
}

// TestRetention: the log keeps at least Retention entries; a resume from
// before them is incomplete, one from within them complete.
func TestRetention(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retention = 1000
	s := newTestStore(t, cfg)
	for i := range 1500 {
		mustAppend(t, s, "r1", "", notice(i))
	}
	h := mustHead(t, s, "r1")
	if r := mustSince(t, s, "r1", h.Epoch, 0, 0); r.Complete || len(r.Entries) < 1000 || len(r.Entries) > 1100 {
		t.Fatalf("since 0: complete %v with %d entries; want incomplete, 1000–1100 kept", r.Complete, len(r.Entries))
	}
	r := mustSince(t, s, "r1", h.Epoch, h.Seq-10, 0)
	if !r.Complete || len(r.Entries) != 10 || r.Entries[0].Seq != h.Seq-9 || r.Entries[9].Text != "notice 1499" {
		t.Fatalf("since head-10: complete %v, %d entries", r.Complete, len(r.Entries))
	}
}

// roomKeys lists a room's ledger keys as the package doc lays them out.
func roomKeys(s *Store, room string) []string {
	return []string{s.key(room, "epoch"), s.key(room, "seq"), s.key(room, "log")}
}

// TestEpochLoss covers a Redis that lost a room's ledger, whole or in part:
// the room gets a new epoch and seq restarts, never reusing a seq under the
// old epoch, and a resume in the old epoch is incomplete.
func TestEpochLoss(t *testing.T) {
	cases := []struct {
		name   string
		lose   func(t *testing.T, s *Store)
		fresh  bool // a new process, without the floor of the old one
		reason string
	}{
		{"all keys lost", func(t *testing.T, s *Store) {
			must(t, s.rdb.Del(ctxT(t), roomKeys(s, "r1")...).Err())
		}, false, "missing"},
		{"all keys lost, new process", func(t *testing.T, s *Store) {
			must(t, s.rdb.Del(ctxT(t), roomKeys(s, "r1")...).Err())
		}, true, ""},
		{"epoch lost", func(t *testing.T, s *Store) {
			must(t, s.rdb.Del(ctxT(t), s.key("r1", "epoch")).Err())
		}, true, ""},
		{"seq lost", func(t *testing.T, s *Store) {
			must(t, s.rdb.Del(ctxT(t), s.key("r1", "seq")).Err())
		}, true, "lost_writes"},
		{"last writes lost (appendfsync everysec and a crash)", func(t *testing.T, s *Store) {
			must(t, s.rdb.Set(ctxT(t), s.key("r1", "seq"), 3, 0).Err())
			must(t, s.rdb.XTrimMinID(ctxT(t), s.key("r1", "log"), "4-0").Err()) // keep some log
			must(t, s.rdb.XDel(ctxT(t), s.key("r1", "log"), "4-0", "5-0").Err())
		}, false, "lost_writes"},
		{"log ahead of seq", func(t *testing.T, s *Store) {
			must(t, s.rdb.Set(ctxT(t), s.key("r1", "seq"), 3, 0).Err())
		}, true, "log_ahead"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t)
			s := newTestStore(t, cfg)
			for i := range 5 {
				mustAppend(t, s, "r1", fmt.Sprint("k", i), gift(i))
			}
			old := mustHead(t, s, "r1")
			c.lose(t, s)
			if c.fresh {
				s = newTestStore(t, cfg)
			}
			a := mustAppend(t, s, "r1", "", notice(1))
			h := mustHead(t, s, "r1")
			if a.Epoch == old.Epoch || a.Entry.Seq != 1 || h != (manager.Head{Epoch: a.Epoch, Seq: 1}) {
				t.Fatalf("after the loss: append %+v, head %+v; want seq 1 in a new epoch (old %s)", a, h, old.Epoch)
			}
			if r := mustSince(t, s, "r1", old.Epoch, 2, 0); r.Complete || len(r.Entries) != 0 || r.Head != h {
				t.Fatalf("resume in the old epoch: %+v", r)
			}
			if r := mustSince(t, s, "r1", h.Epoch, 0, 0); !r.Complete || len(r.Entries) != 1 {
				t.Fatalf("log of the new epoch: %+v", r)
			}
			if c.reason != "" {
				if got := counterValue(t, s.m.rotations.WithLabelValues(c.reason)); got != 1 {
					t.Fatalf("rotations{reason=%s} = %v, want 1", c.reason, got)
				}
			}
			// An idempotency key of the old epoch still answers with its original.
			if d := mustAppend(t, s, "r1", "k1", gift(1)); !d.Duplicate || d.Epoch != old.Epoch || d.Entry.Seq != 2 {
				t.Fatalf("retry of k1 = %+v, want the original (seq 2, epoch %s)", d, old.Epoch)
			}
		})
	}
}

// TestHeadDetectsLostWrites: Head, not only Append, refuses to go on below
// the floor this process saw.
func TestHeadDetectsLostWrites(t *testing.T) {
	s := newTestStore(t, testConfig(t))
	for range 5 {
		mustAppend(t, s, "r1", "", notice(0))
	}
	old := mustHead(t, s, "r1")
	must(t, s.rdb.Set(ctxT(t), s.key("r1", "seq"), 2, 0).Err())
	if h := mustHead(t, s, "r1"); h.Epoch == old.Epoch || h.Seq != 0 {
		t.Fatalf("head after a rollback = %+v (old %+v)", h, old)
	}
}

// TestScriptRetryIsNotDuplicate runs the append script twice with one nonce,
// as go-redis does when a connection breaks after the script ran: the second
// run returns the first one's record as its own, not as a duplicate, and a
// call with another nonce sees a duplicate. Nothing is written twice.
func TestScriptRetryIsNotDuplicate(t *testing.T) {
	s := newTestStore(t, testConfig(t))
	for _, key := range []string{"idem:k", "try:n1"} {
		run := func(nonce string) appendReply {
			keys := append(roomKeys(s, "r1"), s.key("r1", key), s.key("r1", "owner"))
			v, err := appendScript.Run(ctxT(t), s.rdb, keys, "ep", "", 0, 0, "\x80", nonce, 60000, 1000, "").Result()
			must(t, err)
			r, err := parseAppendReply(v)
			must(t, err)
			return r
		}
		first, retry, other := run("n1"), run("n1"), run("n2")
		if first.state != appendNew || retry.state != appendOwnRetry || other.state != appendDuplicate ||
			retry.seq != first.seq || other.seq != first.seq {
			t.Fatalf("%s: first %+v, retry %+v, other call %+v", key, first, retry, other)
		}
	}
	if n := s.rdb.XLen(ctxT(t), s.key("r1", "log")).Val(); n != 2 {
		t.Fatalf("%d log entries, want 2", n)
	}
}

// TestExpiries checks the TTLs the store sets.
func TestExpiries(t *testing.T) {
	cfg := testConfig(t)
	cfg.IdempotencyTTL = time.Hour
	cfg.LedgerTTL = 2 * time.Hour
	s := newTestStore(t, cfg)
	mustAppend(t, s, "r1", "k", gift(1))
	mustAppend(t, s, "r1", "", gift(2))
	must(t, s.SaveBacklog(ctxT(t), "r1", []proto.Entry{{Kind: proto.KindChat, Text: "hi"}}))
	ttl := func(key string) time.Duration { return s.rdb.PTTL(ctxT(t), key).Val() }
	for _, k := range append(roomKeys(s, "r1"), s.key("r1", "backlog")) {
		if d := ttl(k); d <= time.Hour || d > 2*time.Hour {
			t.Errorf("%s expires in %v, want LedgerTTL", k, d)
		}
	}
	if d := ttl(s.key("r1", "idem:k")); d <= 59*time.Minute || d > time.Hour {
		t.Errorf("idempotency key expires in %v, want 1h", d)
	}
	tries := s.rdb.Keys(ctxT(t), s.key("r1", "try:*")).Val()
	if len(tries) != 1 || ttl(tries[0]) > tryTTL {
		t.Errorf("records of appends without a key: %v, want one living ≤ %v", tries, tryTTL)
	}

	// Without LedgerTTL the ledger never expires.
	s2 := newTestStore(t, testConfig(t))
	mustAppend(t, s2, "r1", "", gift(1))
	for _, k := range roomKeys(s2, "r1") {
		if d := s2.rdb.PTTL(ctxT(t), k).Val(); d != -1 {
			t.Errorf("%s expires in %v, want never", k, d)
		}
	}
}

// TestFencing: with FenceNode set, Append writes only while the owner lease
// names this node.
func TestFencing(t *testing.T) {
	cfg := testConfig(t)
	cfg.FenceNode = "node-a"
	s := newTestStore(t, cfg)
	owner := s.key("r1", "owner")
	for _, lease := range []string{"", "node-b", "node-a-old"} {
		if lease != "" {
			must(t, s.rdb.Set(ctxT(t), owner, lease, 0).Err())
		}
		_, err := s.Append(ctxT(t), "r1", "k", gift(1))
		if !errors.Is(err, ErrNotOwner) || !errors.Is(err, proto.CodeUnavailable) {
			t.Fatalf("owner %q: err %v, want ErrNotOwner", lease, err)
		}
		if n := s.rdb.Exists(ctxT(t), append(roomKeys(s, "r1"), s.key("r1", "idem:k"))...).Val(); n != 0 {
			t.Fatalf("owner %q: a fenced append wrote %d keys", lease, n)
		}
	}
	must(t, s.rdb.Set(ctxT(t), owner, "node-a", 0).Err())
	if a := mustAppend(t, s, "r1", "k", gift(1)); a.Entry.Seq != 1 {
		t.Fatalf("owner's append = %+v", a)
	}
	if got := counterValue(t, s.m.errors.WithLabelValues("append", "not_owner")); got != 3 {
		t.Fatalf("not_owner errors %v, want 3", got)
	}
}

// TestCorruptValues: values this package did not write are reported as
// ErrCorrupt (backlog entries are skipped and counted instead).
func TestCorruptValues(t *testing.T) {
	s := newTestStore(t, testConfig(t))
	ctx := ctxT(t)
	ep := mustAppend(t, s, "r1", "k", gift(1)).Epoch
	must(t, s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.key("r1", "log"), ID: "2-0", Values: []any{"b", "\xc1"}}).Err())
	must(t, s.rdb.Set(ctx, s.key("r1", "seq"), 2, 0).Err())
	if _, err := s.Since(ctx, "r1", ep, 0, 0); !errors.Is(err, ErrCorrupt) || !errors.Is(err, proto.CodeInternal) {
		t.Fatalf("since over a corrupt entry: %v", err)
	}
	must(t, s.rdb.HSet(ctx, s.key("r1", "idem:k"), "b", "\xc1").Err())
	if _, err := s.Append(ctx, "r1", "k", gift(1)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("duplicate of a corrupt record: %v", err)
	}
	must(t, s.rdb.HSet(ctx, s.key("r1", "policy"), "budget", "lots").Err())
	if _, err := s.Policy(ctx, "r1"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt policy: %v", err)
	}
	must(t, s.rdb.HSet(ctx, s.key("r1", "sanctions"), "kick:bob", "0").Err())
	if _, err := s.Sanctions(ctx, "r1"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt sanction: %v", err)
	}
	must(t, s.SaveBacklog(ctx, "r1", []proto.Entry{{Kind: proto.KindChat, Text: "a"}}))
	must(t, s.rdb.RPush(ctx, s.key("r1", "backlog"), "\xc1").Err())
	if b, err := s.Backlog(ctx, "r1"); err != nil || len(b) != 1 || b[0].Text != "a" {
		t.Fatalf("backlog with a corrupt entry = %v, %v", b, err)
	}
	if got := counterValue(t, s.m.dropped.WithLabelValues("corrupt_backlog_entry")); got != 1 {
		t.Fatalf("dropped corrupt backlog entries %v, want 1", got)
	}
}

// TestExpiredSanctionsAreDeleted: reading sanctions removes expired fields.
func TestExpiredSanctionsAreDeleted(t *testing.T) {
	s := newTestStore(t, testConfig(t))
	ctx := ctxT(t)
	must(t, s.SetSanction(ctx, manager.Sanction{Room: "r1", User: "bob", Until: time.Now().Add(-time.Second)}))
	must(t, s.SetSanction(ctx, manager.Sanction{User: "eve", Until: time.Now().Add(-time.Second)}))
	must(t, s.SetSanction(ctx, manager.Sanction{Room: "r1", User: "amy"}))
	if got := sanctionsOf(t, s, "r1"); len(got) != 1 || got[0].User != "amy" {
		t.Fatalf("sanctions %+v, want amy's only", got)
	}
	if n := s.rdb.HLen(ctx, s.key("r1", "sanctions")).Val() + s.rdb.HLen(ctx, s.sanctionsKey("")).Val(); n != 1 {
		t.Fatalf("%d sanction fields left, want 1", n)
	}
}
