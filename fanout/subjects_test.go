package fanout

import (
	"testing"

	"github.com/danmaku/danmaku/room/proto"
)

func TestReplySubjectRoundTrip(t *testing.T) {
	s := newSubjects("dmk")
	refs := []requestRef{{}, {Session: 1, Type: proto.TypeChat, ID: 9}, {Session: 1<<64 - 1, Type: 255, ID: 1<<32 - 1}}
	for _, ref := range refs {
		subj := s.ReplyTo("node-1", ref)
		got, ok := s.ParseReplyTo("node-1", subj)
		if !ok || got != ref {
			t.Fatalf("%q → %+v %v, want %+v", subj, got, ok, ref)
		}
	}
	for _, bad := range []string{"dmk.nr.node-1.1.2", "dmk.nr.node-2.1.2.3", "dmk.nr.node-1.1.2.3.4",
		"dmk.nr.node-1.x.2.3", "dmk.nr.node-1.1.256.3", "dmk.nr.node-1.1.2.4294967296", "other.nr.node-1.1.2.3"} {
		if _, ok := s.ParseReplyTo("node-1", bad); ok {
			t.Errorf("ParseReplyTo(%q) accepted", bad)
		}
	}
}

func TestSubjects(t *testing.T) {
	s := newSubjects("p")
	for got, want := range map[string]string{
		s.In("r1"): "p.in.r1", s.Out("r1"): "p.out.r1", s.Reply("n"): "p.reply.n", s.Online("n"): "p.online.n",
		s.OnlineAll(): "p.online.*", s.NoResponders("n"): "p.nr.n.>", s.ctl: "p.ctl",
	} {
		if got != want {
			t.Errorf("subject %q, want %q", got, want)
		}
	}
	if room, ok := s.RoomOfIn("p.in.r1"); !ok || room != "r1" {
		t.Errorf("RoomOfIn = %q %v", room, ok)
	}
	for _, bad := range []string{"p.out.r1", "p.in.", "p.in.a.b", "q.in.r1"} {
		if _, ok := s.RoomOfIn(bad); ok {
			t.Errorf("RoomOfIn(%q) accepted", bad)
		}
	}
}
