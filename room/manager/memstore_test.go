package manager

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

func TestMemoryStoreLedger(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore()
	s.Retention = 5
	h, _ := s.Head(ctx, "r")
	if h.Epoch == "" || h.Seq != 0 || h.Epoch != s.Epoch() {
		t.Fatalf("empty head %+v", h)
	}
	for i := range 8 {
		a, err := s.Append(ctx, "r", "k"+strconv.Itoa(i), proto.Entry{Kind: proto.KindGift, MsgID: uint64(100 + i)})
		if err != nil || a.Entry.Seq != uint64(i+1) || a.Duplicate || a.Epoch != h.Epoch || a.Entry.ServerTS == 0 {
			t.Fatalf("append %d: %+v %v", i, a, err)
		}
	}
	dup, _ := s.Append(ctx, "r", "k7", proto.Entry{Kind: proto.KindGift, MsgID: 999})
	if !dup.Duplicate || dup.Entry.Seq != 8 || dup.Entry.MsgID != 107 {
		t.Fatalf("duplicate %+v", dup)
	}
	if h, _ := s.Head(ctx, "r"); h.Seq != 8 {
		t.Fatalf("head after a duplicate %+v", h)
	}
	seqs := func(es []proto.Entry) string {
		var b strings.Builder
		for _, e := range es {
			b.WriteString(strconv.FormatUint(e.Seq, 10) + " ")
		}
		return b.String()
	}
	cases := []struct {
		name     string
		epoch    string
		after    uint64
		limit    int
		want     string
		complete bool
	}{
		{"within retention", s.Epoch(), 5, 0, "6 7 8 ", true},
		{"at head", s.Epoch(), 8, 0, "", true},
		{"oldest kept", s.Epoch(), 3, 0, "4 5 6 7 8 ", true},
		{"fell out", s.Epoch(), 1, 0, "4 5 6 7 8 ", false},
		{"limited", s.Epoch(), 3, 2, "4 5 ", false},
		{"other epoch", "old", 5, 0, "", false},
		{"ahead of head", s.Epoch(), 9, 0, "", false},
	}
	for _, tc := range cases {
		rp, err := s.Since(ctx, "r", tc.epoch, tc.after, tc.limit)
		if err != nil || seqs(rp.Entries) != tc.want || rp.Complete != tc.complete || rp.Head.Seq != 8 {
			t.Fatalf("%s: %q complete=%v head=%+v err=%v", tc.name, seqs(rp.Entries), rp.Complete, rp.Head, err)
		}
	}
	if rp, _ := s.Since(ctx, "empty", s.Epoch(), 0, 0); !rp.Complete || len(rp.Entries) != 0 {
		t.Fatalf("empty room %+v", rp)
	}
	if NewMemoryStore().Epoch() == s.Epoch() {
		t.Fatal("epochs repeat across instances")
	}
}

func TestMemoryStoreKeyRetention(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore()
	s.KeyRetention = 2
	for _, k := range []string{"a", "b", "c"} {
		_, _ = s.Append(ctx, "r", k, proto.Entry{Kind: proto.KindGift})
	}
	if a, _ := s.Append(ctx, "r", "c", proto.Entry{}); !a.Duplicate {
		t.Fatal("recent key forgotten")
	}
	if a, _ := s.Append(ctx, "r", "a", proto.Entry{}); a.Duplicate {
		t.Fatal("key beyond KeyRetention still remembered")
	}
}

func TestMemoryStoreState(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore()
	past := time.Now().Add(-time.Minute)
	for _, sc := range []Sanction{
		{Room: "r", User: "a"},
		{Room: "r", User: "a", Ban: true},
		{Room: "", User: "g", Ban: true},
		{Room: "other", User: "b"},
		{Room: "r", User: "old", Until: past},
	} {
		if err := s.SetSanction(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.Sanctions(ctx, "r")
	if len(got) != 3 {
		t.Fatalf("sanctions of r: %+v", got)
	}
	_ = s.LiftSanction(ctx, "r", "a", true)
	if got, _ := s.Sanctions(ctx, "r"); len(got) != 2 {
		t.Fatalf("after lift: %+v", got)
	}
	p := Policy{Title: "t", SlowMode: time.Second}
	_ = s.SetPolicy(ctx, "r", p)
	if got, _ := s.Policy(ctx, "r"); got != p {
		t.Fatalf("policy %+v", got)
	}
	bl := []proto.Entry{{Kind: proto.KindChat, Text: "x"}}
	_ = s.SaveBacklog(ctx, "r", bl)
	bl[0].Text = "changed by the caller"
	if got, _ := s.Backlog(ctx, "r"); len(got) != 1 || got[0].Text != "x" {
		t.Fatalf("backlog %+v", got)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Append(cancelled, "r", "", proto.Entry{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with a cancelled context: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	def := DefaultConfig()
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		field string
		mut   func(*Config)
	}{
		{"Tick", func(c *Config) { c.Tick = time.Millisecond }},
		{"Budget", func(c *Config) { c.Budget = 0 }},
		{"MaxTextRunes", func(c *Config) { c.MaxTextRunes = 0 }},
		{"RateLimits.Viewer", func(c *Config) { c.RateLimits.Viewer.PerSecond = 0 }},
		{"RateLimits.VIP", func(c *Config) { c.RateLimits.VIP.Burst = 0 }},
		{"RateLimits.Staff", func(c *Config) { c.RateLimits.Staff = RateLimit{} }},
		{"LikeRate", func(c *Config) { c.LikeRate.Burst = 0 }},
		{"InboxSize", func(c *Config) { c.InboxSize = 0 }},
		{"IdleTimeout", func(c *Config) { c.IdleTimeout = 0 }},
		{"Retention", func(c *Config) { c.Retention = 0 }},
		{"MaxBatchBytes", func(c *Config) { c.MaxBatchBytes = proto.MaxServerFrame }},
		{"GiftAuthConcurrency", func(c *Config) { c.GiftAuthConcurrency = 0 }},
	}
	for _, tc := range cases {
		c := DefaultConfig()
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field+" ") {
			t.Fatalf("%s: %v", tc.field, err)
		}
	}
	if _, err := New(def, nil, nil); err == nil {
		t.Fatal("New without store and sink")
	}
}

func TestGCRA(t *testing.T) {
	g := RateLimit{PerSecond: 2, Burst: 3}.gcra()
	var tat int64
	now := int64(time.Hour)
	for i := range 3 {
		if ok, _ := g.allow(&tat, now); !ok {
			t.Fatalf("burst message %d refused", i)
		}
	}
	ok, wait := g.allow(&tat, now)
	if ok || wait != int64(500*time.Millisecond) {
		t.Fatalf("4th: ok=%v wait=%v", ok, time.Duration(wait))
	}
	if ok, _ := g.allow(&tat, now+wait); !ok {
		t.Fatal("refused after waiting")
	}
}
