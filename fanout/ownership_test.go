package fanout

import (
	"context"
	"testing"
	"time"
)

func TestLocalOwnership(t *testing.T) {
	o := NewLocalOwnership("solo")
	ctx := context.Background()
	if l, err := o.Acquire(ctx, "r"); err != nil || l.Owner != "solo" || !l.Until.IsZero() {
		t.Fatalf("Acquire = %+v %v", l, err)
	}
	ls, err := o.Renew(ctx, []string{"a", "b"})
	if err != nil || len(ls) != 2 || ls[1].Owner != "solo" {
		t.Fatalf("Renew = %+v %v", ls, err)
	}
	if owners, err := o.Owners(ctx, []string{"a"}); err != nil || owners[0] != "solo" {
		t.Fatalf("Owners = %v %v", owners, err)
	}
}

func TestRedisOwnership(t *testing.T) {
	rdb, prefix := newRedis(t)
	ctx := context.Background()
	const ttl = 300 * time.Millisecond
	a, err := NewRedisOwnership(rdb, prefix, "a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewRedisOwnership(rdb, prefix, "b", ttl)

	before := time.Now()
	la, err := a.Acquire(ctx, "room1")
	if err != nil || la.Owner != "a" || la.Until.Before(before.Add(ttl)) || la.Until.After(time.Now().Add(ttl)) {
		t.Fatalf("a.Acquire = %+v %v", la, err)
	}
	if v := rdb.Get(ctx, prefix+":{room1}:owner").Val(); v != "a" {
		t.Fatalf("lease key holds %q, want the layout redisstore fences on", v)
	}
	if lb, err := b.Acquire(ctx, "room1"); err != nil || lb.Owner != "a" || !lb.Until.IsZero() {
		t.Fatalf("b.Acquire of a's room = %+v %v", lb, err)
	}
	if owners, err := b.Owners(ctx, []string{"room1", "room2"}); err != nil || owners[0] != "a" || owners[1] != "" {
		t.Fatalf("Owners = %q %v", owners, err)
	}
	// b cannot release a's lease; b's renewal sees a.
	if err := b.Release(ctx, "room1"); err != nil {
		t.Fatal(err)
	}
	if ls, err := b.Renew(ctx, []string{"room1"}); err != nil || ls[0].Owner != "a" {
		t.Fatalf("b.Renew = %+v %v", ls, err)
	}
	// a keeps it alive past the TTL by renewing.
	for i := 0; i < 3; i++ {
		if ls, err := a.Renew(ctx, []string{"room1", "room3"}); err != nil || ls[0].Owner != "a" || ls[1].Owner != "a" {
			t.Fatalf("a.Renew = %+v %v", ls, err)
		}
		time.Sleep(ttl / 3) // lease time passing is what is tested
	}
	if owners, _ := b.Owners(ctx, []string{"room1"}); owners[0] != "a" {
		t.Fatalf("renewed lease lost: owner %q", owners[0])
	}
	// Without renewal it expires and b takes it (what happens after a SIGKILL).
	eventually(t, 3*ttl, "a's lease to expire", func() bool {
		l, err := b.Acquire(ctx, "room1")
		return err == nil && l.Owner == "b"
	})
	// a's renewal now reports the loss.
	if ls, err := a.Renew(ctx, []string{"room1"}); err != nil || ls[0].Owner != "b" || !ls[0].Until.IsZero() {
		t.Fatalf("a.Renew after loss = %+v %v", ls, err)
	}
	// Release frees it at once.
	if err := b.Release(ctx, "room1"); err != nil {
		t.Fatal(err)
	}
	if l, err := a.Acquire(ctx, "room1"); err != nil || l.Owner != "a" {
		t.Fatalf("a.Acquire after release = %+v %v", l, err)
	}
}

func TestRedisOwnershipErrors(t *testing.T) {
	rdb, prefix := newRedis(t)
	if _, err := NewRedisOwnership(nil, prefix, "a", time.Second); err == nil {
		t.Error("nil client accepted")
	}
	if _, err := NewRedisOwnership(rdb, "bad{", "a", time.Second); err == nil {
		t.Error("prefix with a brace accepted")
	}
	if _, err := NewRedisOwnership(rdb, prefix, "a b", time.Second); err == nil {
		t.Error("bad node id accepted")
	}
	if _, err := NewRedisOwnership(rdb, prefix, "a", time.Millisecond); err == nil {
		t.Error("tiny ttl accepted")
	}
	o, _ := NewRedisOwnership(rdb, prefix, "a", time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := o.Acquire(ctx, "r"); err == nil {
		t.Error("Acquire with a canceled context succeeded")
	}
	if _, err := o.Renew(ctx, []string{"r"}); err == nil {
		t.Error("Renew with a canceled context succeeded")
	}
}
