package manager

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

const room1 = "r1"

// activate starts room1 with a guest join and waits for it, so policies and
// sanctions can be applied to an active room.
func (h *harness) activate(t *testing.T, room string) {
	t.Helper()
	s := h.send("", proto.RoleGuest, &proto.Join{ID: 1, Room: room})
	h.waitReply(t, s)
}

func (h *harness) policy(t *testing.T, room string, p Policy) {
	t.Helper()
	if err := h.store.SetPolicy(context.Background(), room, p); err != nil {
		t.Fatal(err)
	}
	h.m.ApplyPolicy(room, p)
	h.flush(t, room)
}

func (h *harness) sanction(t *testing.T, s Sanction) {
	t.Helper()
	if err := h.store.SetSanction(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	h.m.ApplySanction(s, false)
	h.flush(t, room1)
}

// TestChatAdmission covers every admission rule and the code it answers with.
func TestChatAdmission(t *testing.T) {
	type step struct {
		user  string
		role  proto.Role
		text  string
		after time.Duration // clock advance before sending
	}
	cases := []struct {
		name    string
		setup   func(t *testing.T, h *harness)
		before  []step // sent (and ticked) first
		send    step
		code    proto.Code
		retry   bool   // RetryAfter > 0
		counted string // drop reason
	}{
		{name: "accepted", send: step{"u1", proto.RoleViewer, "hello", 0}},
		{name: "too long", send: step{"u1", proto.RoleViewer, strings.Repeat("字", 101), 0},
			code: proto.CodeTooLong, counted: "too_long"},
		{name: "empty", send: step{"u1", proto.RoleViewer, "", 0}, code: proto.CodeInvalidText, counted: "invalid_text"},
		{name: "control char", send: step{"u1", proto.RoleViewer, "a\nb", 0}, code: proto.CodeInvalidText, counted: "invalid_text"},
		{name: "guest", send: step{"g", proto.RoleGuest, "hi", 0}, code: proto.CodeForbidden, counted: "forbidden"},
		{name: "no role", send: step{"u1", "", "hi", 0}, code: proto.CodeForbidden, counted: "forbidden"},
		{name: "room ban", setup: func(t *testing.T, h *harness) {
			h.sanction(t, Sanction{Room: room1, User: "u1", Ban: true})
		}, send: step{"u1", proto.RoleViewer, "hi", 0}, code: proto.CodeBanned, counted: "banned"},
		{name: "global mute", setup: func(t *testing.T, h *harness) {
			h.sanction(t, Sanction{User: "u1"})
		}, send: step{"u1", proto.RoleViewer, "hi", 0}, code: proto.CodeMuted, counted: "muted"},
		{name: "expired mute ignored", setup: func(t *testing.T, h *harness) {
			h.sanction(t, Sanction{Room: room1, User: "u1", Until: h.clock.now().Add(time.Second)})
		}, send: step{"u1", proto.RoleViewer, "hi", 2 * time.Second}},
		{name: "lifted mute", setup: func(t *testing.T, h *harness) {
			h.sanction(t, Sanction{Room: room1, User: "u1"})
			h.m.ApplySanction(Sanction{Room: room1, User: "u1"}, true)
			h.flush(t, room1)
		}, send: step{"u1", proto.RoleViewer, "hi", 0}},
		{name: "closed", setup: func(t *testing.T, h *harness) {
			h.policy(t, room1, Policy{Closed: true})
		}, send: step{"u1", proto.RoleStreamer, "hi", 0}, code: proto.CodeRoomClosed, counted: "room_closed"},
		{name: "vip only viewer", setup: func(t *testing.T, h *harness) {
			h.policy(t, room1, Policy{VIPOnly: true})
		}, send: step{"u1", proto.RoleViewer, "hi", 0}, code: proto.CodeVIPOnly, counted: "vip_only"},
		{name: "vip only vip", setup: func(t *testing.T, h *harness) {
			h.policy(t, room1, Policy{VIPOnly: true})
		}, send: step{"u1", proto.RoleVIP, "hi", 0}},
		{name: "vip only moderator", setup: func(t *testing.T, h *harness) {
			h.policy(t, room1, Policy{VIPOnly: true})
		}, send: step{"u1", proto.RoleModerator, "hi", 0}},
		{name: "slow mode", setup: func(t *testing.T, h *harness) {
			h.policy(t, room1, Policy{SlowMode: 5 * time.Second})
		}, before: []step{{"u1", proto.RoleVIP, "one", 0}},
			send: step{"u1", proto.RoleVIP, "two", 2 * time.Second}, code: proto.CodeSlowMode, retry: true, counted: "slow_mode"},
		{name: "slow mode over", setup: func(t *testing.T, h *harness) {
			h.policy(t, room1, Policy{SlowMode: 5 * time.Second})
		}, before: []step{{"u1", proto.RoleVIP, "one", 0}},
			send: step{"u1", proto.RoleVIP, "two", 5 * time.Second}},
		{name: "slow mode spares staff", setup: func(t *testing.T, h *harness) {
			h.policy(t, room1, Policy{SlowMode: 5 * time.Second})
		}, before: []step{{"u1", proto.RoleModerator, "one", 0}},
			send: step{"u1", proto.RoleModerator, "two", 0}},
		{name: "viewer rate burst 3", before: []step{
			{"u1", proto.RoleViewer, "a", 0}, {"u1", proto.RoleViewer, "b", 0}, {"u1", proto.RoleViewer, "c", 0}},
			send: step{"u1", proto.RoleViewer, "d", 0}, code: proto.CodeRateLimited, retry: true, counted: "rate_limited"},
		{name: "viewer rate refills", before: []step{
			{"u1", proto.RoleViewer, "a", 0}, {"u1", proto.RoleViewer, "b", 0}, {"u1", proto.RoleViewer, "c", 0}},
			send: step{"u1", proto.RoleViewer, "d", time.Second}},
		{name: "vip rate burst 5", before: []step{
			{"u1", proto.RoleVIP, "a", 0}, {"u1", proto.RoleVIP, "b", 0}, {"u1", proto.RoleVIP, "c", 0},
			{"u1", proto.RoleVIP, "d", 0}, {"u1", proto.RoleVIP, "e", 0}},
			send: step{"u1", proto.RoleVIP, "f", 0}, code: proto.CodeRateLimited, retry: true, counted: "rate_limited"},
		{name: "duplicate", before: []step{{"u1", proto.RoleViewer, "same", 0}},
			send: step{"u1", proto.RoleViewer, "same", 2 * time.Second}, code: proto.CodeDuplicate, counted: "duplicate"},
		{name: "duplicate after window", before: []step{{"u1", proto.RoleViewer, "same", 0}},
			send: step{"u1", proto.RoleViewer, "same", 11 * time.Second}},
		{name: "same text other user", before: []step{{"u1", proto.RoleViewer, "same", 0}},
			send: step{"u2", proto.RoleViewer, "same", 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, manualConfig())
			h.activate(t, room1)
			if tc.setup != nil {
				tc.setup(t, h)
			}
			for _, st := range tc.before {
				h.clock.advance(st.after)
				s := h.send(st.user, st.role, chatMsg(room1, st.text))
				h.flush(t, room1)
				if a := h.rec.ackOf(t, s); a.Code != proto.CodeOK || a.SampledOut {
					t.Fatalf("setup chat %q: %+v", st.text, a)
				}
			}
			h.clock.advance(tc.send.after)
			s := h.send(tc.send.user, tc.send.role, chatMsg(room1, tc.send.text))
			h.flush(t, room1)
			a := h.rec.ackOf(t, s)
			if a.Code != tc.code {
				t.Fatalf("code %q, want %q (%+v)", a.Code, tc.code, a)
			}
			if (a.RetryAfter > 0) != tc.retry {
				t.Fatalf("RetryAfter %d, want > 0: %v", a.RetryAfter, tc.retry)
			}
			if tc.code == proto.CodeOK {
				if a.MsgID == 0 || a.SampledOut {
					t.Fatalf("accepted ack %+v", a)
				}
				batches, _ := h.rec.snapshot()
				last := batches[len(batches)-1]
				if len(last.Lossy) != 1 || last.Lossy[0].Text != tc.send.text || last.Lossy[0].MsgID != a.MsgID {
					t.Fatalf("batch lossy %+v", last.Lossy)
				}
			}
			if tc.counted != "" {
				if got := h.m.Counters().Dropped[tc.counted]; got != 1 {
					t.Fatalf("dropped[%s] = %d, want 1", tc.counted, got)
				}
			}
		})
	}
}

func TestSlowModeRetryAfter(t *testing.T) {
	h := newHarness(t, manualConfig())
	h.activate(t, room1)
	h.policy(t, room1, Policy{SlowMode: 5 * time.Second})
	h.send("u1", proto.RoleViewer, chatMsg(room1, "one"))
	h.flush(t, room1)
	h.clock.advance(1500 * time.Millisecond)
	s := h.send("u1", proto.RoleViewer, chatMsg(room1, "two"))
	h.flush(t, room1)
	if a := h.rec.ackOf(t, s); a.Code != proto.CodeSlowMode || a.RetryAfter != 3500 {
		t.Fatalf("ack %+v, want slow_mode retry 3500 ms", a)
	}
}

func TestLikes(t *testing.T) {
	h := newHarness(t, manualConfig())
	var sessions []uint64
	for range 3 {
		sessions = append(sessions, h.send("u1", proto.RoleViewer, &proto.Like{ID: 2, Room: room1, Count: 10}))
	}
	sessions = append(sessions, h.send("u2", proto.RoleVIP, &proto.Like{ID: 2, Room: room1, Count: 5}))
	guest := h.send("", proto.RoleGuest, &proto.Like{ID: 2, Room: room1, Count: 5})
	h.flush(t, room1)
	for _, s := range sessions {
		if a := h.rec.ackOf(t, s); a.Code != proto.CodeOK || a.ID != 2 {
			t.Fatalf("like ack %+v", a)
		}
	}
	if a := h.rec.ackOf(t, guest); a.Code != proto.CodeForbidden {
		t.Fatalf("guest like %+v", a)
	}
	batches, _ := h.rec.snapshot()
	if len(batches) != 1 || batches[0].Likes != 35 {
		t.Fatalf("batches %+v, want one with 35 likes", batches)
	}
	// The per-user like rate: 20 messages at once pass, the 21st does not.
	var last uint64
	for range 20 {
		last = h.send("u3", proto.RoleViewer, &proto.Like{ID: 3, Room: room1, Count: 1})
	}
	over := h.send("u3", proto.RoleViewer, &proto.Like{ID: 3, Room: room1, Count: 1})
	h.flush(t, room1)
	if a := h.rec.ackOf(t, last); a.Code != proto.CodeOK {
		t.Fatalf("20th like %+v", a)
	}
	if a := h.rec.ackOf(t, over); a.Code != proto.CodeRateLimited || a.RetryAfter == 0 {
		t.Fatalf("21st like %+v", a)
	}
	if got := h.m.Counters().Dropped["like_rate"]; got != 1 {
		t.Fatalf("like_rate drops %d", got)
	}
}

func TestJoin(t *testing.T) {
	h := newHarness(t, manualConfig())
	h.activate(t, room1)
	h.policy(t, room1, Policy{Title: "final", Budget: 50, SlowMode: 1500 * time.Millisecond, VIPOnly: true})
	h.m.SetOnline(room1, 1234)
	h.send("s", proto.RoleStreamer, chatMsg(room1, "welcome"))
	gift := h.send("v", proto.RoleViewer, &proto.Gift{ID: 9, Room: room1, Gift: "rose", Count: 1, Key: "k1"})
	h.waitReply(t, gift)
	h.flush(t, room1)

	s := h.send("u1", proto.RoleViewer, &proto.Join{ID: 7, Room: room1})
	j, ok := h.waitReply(t, s).(*proto.Joined)
	if !ok {
		t.Fatalf("reply %T", h.rec.reply(t, s))
	}
	st := j.State
	if j.ID != 7 || j.Room != room1 || st.Title != "final" || st.Online != 1234 || st.Epoch != h.store.Epoch() ||
		st.Seq != 1 || st.Budget != 50 || st.SlowMode != 2 || !st.VIPOnly || st.Closed {
		t.Fatalf("joined %+v", j)
	}
	if len(st.Backlog) != 1 || st.Backlog[0].Text != "welcome" {
		t.Fatalf("backlog %+v", st.Backlog)
	}
	h.flush(t, room1)
	batches, _ := h.rec.snapshot()
	last := batches[len(batches)-1]
	if len(last.Lossy) != 1 || last.Lossy[0].Kind != proto.KindEnter || last.Lossy[0].User != "u1" {
		t.Fatalf("enter notice %+v", last.Lossy)
	}
}

func TestJoinRefused(t *testing.T) {
	h := newHarness(t, manualConfig())
	h.activate(t, room1)
	h.sanction(t, Sanction{Room: room1, User: "bad", Ban: true})
	s := h.send("bad", proto.RoleViewer, &proto.Join{ID: 3, Room: room1})
	if e, ok := h.waitReply(t, s).(*proto.Error); !ok || e.Code != proto.CodeBanned || e.ID != 3 || e.Room != room1 {
		t.Fatalf("banned join: %+v", h.rec.reply(t, s))
	}
	s = h.send("bad", proto.RoleViewer, &proto.Resume{ID: 4, Room: room1})
	if e, ok := h.waitReply(t, s).(*proto.Error); !ok || e.Code != proto.CodeBanned {
		t.Fatalf("banned resume: %+v", h.rec.reply(t, s))
	}
	h.policy(t, room1, Policy{Closed: true})
	s = h.send("good", proto.RoleViewer, &proto.Join{ID: 5, Room: room1})
	if e, ok := h.waitReply(t, s).(*proto.Error); !ok || e.Code != proto.CodeRoomClosed {
		t.Fatalf("closed join: %+v", h.rec.reply(t, s))
	}
}

func TestEnterBudget(t *testing.T) {
	cfg := manualConfig()
	cfg.EnterBudget = 3
	h := newHarness(t, cfg)
	for i := range 10 {
		h.send("u"+string(rune('a'+i)), proto.RoleViewer, &proto.Join{ID: 1, Room: room1})
	}
	h.flush(t, room1)
	batches, _ := h.rec.snapshot()
	if len(batches) != 1 || len(batches[0].Lossy) != 3 || batches[0].Dropped != 7 {
		t.Fatalf("batch %+v, want 3 enters and 7 dropped", batches[0])
	}
	if got := h.m.Counters().Dropped["enter_budget"]; got != 7 {
		t.Fatalf("enter_budget drops %d", got)
	}
}

func TestUserStateBounded(t *testing.T) {
	cfg := manualConfig()
	cfg.MaxUsersPerRoom = 10
	h := newHarness(t, cfg)
	for i := range 50 {
		h.send("u"+strings.Repeat("x", i), proto.RoleViewer, chatMsg(room1, "hi"))
	}
	h.flush(t, room1)
	if c := h.m.Counters(); c.UserEvicted != 40 {
		t.Fatalf("user evictions %d, want 40", c.UserEvicted)
	}
}
