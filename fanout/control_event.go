package fanout

import (
	"fmt"
	"math"
	"time"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// ControlKind is what a control event does.
type ControlKind uint8

// Control events (Node.Control). The numbers are on the wire: never reuse one.
const (
	// ControlSanction sets (or, with Lifted, removes) a mute or ban of User
	// in Room ("" = every room). The owners apply it to admission at once; a
	// ban also removes the user's connections on every node.
	ControlSanction ControlKind = 1
	// ControlPolicy replaces Room's policy. With Policy.Closed every member
	// of the room is removed on every node (closing a room).
	ControlPolicy ControlKind = 2
	// ControlKick removes User's connections from Room ("" = every room) on
	// every node.
	ControlKick ControlKind = 3
	// ControlNotice is a system notice (Text, Level) in Room's reliable lane,
	// or with Room "" in every room that has an owner.
	ControlNotice ControlKind = 4
	// ControlDrain makes Node hand its rooms over and drain its connections.
	ControlDrain ControlKind = 5
)

func (k ControlKind) String() string {
	switch k {
	case ControlSanction:
		return "sanction"
	case ControlPolicy:
		return "policy"
	case ControlKick:
		return "kick"
	case ControlNotice:
		return "notice"
	case ControlDrain:
		return "drain"
	}
	return fmt.Sprintf("control(%d)", uint8(k))
}

// Bounds of control events, with their reasons.
const (
	// maxNoticeLen bounds a notice's text: it is shown over the video, one
	// or two lines; 1 KiB is generous.
	maxNoticeLen = 1 << 10
	// maxTitleLen bounds a room title in a policy.
	maxTitleLen = 256
)

// ControlEvent is one operator action every node must see.
type ControlEvent struct {
	Kind ControlKind
	// Room the event is about. "" = every room (sanction, kick, notice);
	// required for a policy.
	Room string
	// User the event is about (sanction, kick).
	User string
	// Ban is true for a ban, false for a mute (sanction).
	Ban bool
	// Until is when the sanction ends; zero = permanent (sanction).
	Until time.Time
	// Lifted removes the sanction instead of setting it.
	Lifted bool
	// Policy is the room's new policy (policy).
	Policy manager.Policy
	// Text and Level are the notice (notice): level info, warn or critical.
	Text, Level string
	// Node is the node to drain (drain).
	Node string
}

// Sanction returns the sanction a ControlSanction event sets or lifts.
func (ev *ControlEvent) Sanction() manager.Sanction {
	return manager.Sanction{Room: ev.Room, User: ev.User, Ban: ev.Ban, Until: ev.Until}
}

// noticeEntry is the reliable entry a ControlNotice publishes.
func (ev *ControlEvent) noticeEntry() proto.Entry {
	return proto.Entry{Kind: proto.KindNotice, Role: proto.RoleSystem, Text: ev.Text, Level: ev.Level}
}

// Validate checks the fields the event's kind uses.
func (ev *ControlEvent) Validate() error {
	bad := func(why string) error {
		return fmt.Errorf("control %v: %s: %w", ev.Kind, why, proto.CodeBadRequest)
	}
	if ev.Room != "" && !proto.ValidRoom(ev.Room) {
		return bad("invalid room id")
	}
	switch ev.Kind {
	case ControlSanction, ControlKick:
		if ev.User == "" || len(ev.User) > maxUserLen {
			return bad("user required, at most 256 bytes")
		}
	case ControlPolicy:
		p := ev.Policy
		if ev.Room == "" {
			return bad("room required")
		}
		if p.Budget < 0 || p.Tick < 0 || p.SlowMode < 0 || len(p.Title) > maxTitleLen {
			return bad("negative budget, tick or slow mode, or title over 256 bytes")
		}
	case ControlNotice:
		if ev.Text == "" || len(ev.Text) > maxNoticeLen || proto.CheckText(ev.Text, maxNoticeLen) != nil {
			return bad("text must be 1-1024 bytes of printable UTF-8")
		}
		switch ev.Level {
		case "info", "warn", "critical":
		default:
			return bad("level must be info, warn or critical")
		}
	case ControlDrain:
		if !validID(ev.Node) {
			return bad("invalid node id")
		}
	default:
		return bad("unknown kind")
	}
	return nil
}

// control envelope: [v, kind, origin, room, user, ban, until ms, lifted,
// title, budget, tick ns, slow mode ns, vip only, closed, text, level, node]
const controlFields = 17

func appendControl(w *proto.Writer, origin string, ev *ControlEvent) {
	var until int64
	if !ev.Until.IsZero() {
		until = ev.Until.UnixMilli()
	}
	w.ArrayLen(controlFields)
	w.Uint(envVersion)
	w.Uint(uint64(ev.Kind))
	w.Str(origin)
	w.Str(ev.Room)
	w.Str(ev.User)
	w.Bool(ev.Ban)
	w.Int(until)
	w.Bool(ev.Lifted)
	w.Str(ev.Policy.Title)
	w.Int(int64(ev.Policy.Budget))
	w.Int(int64(ev.Policy.Tick))
	w.Int(int64(ev.Policy.SlowMode))
	w.Bool(ev.Policy.VIPOnly)
	w.Bool(ev.Policy.Closed)
	w.Str(ev.Text)
	w.Str(ev.Level)
	w.Str(ev.Node)
}

// decodeControl reads a control envelope and validates the event.
func decodeControl(b []byte) (string, *ControlEvent, error) {
	r, n, err := openEnvelope(b, controlFields)
	if err != nil {
		return "", nil, err
	}
	f := fieldReader{r: r}
	ev := new(ControlEvent)
	kind := f.uint("kind")
	origin := f.str(maxUserLen, "origin")
	ev.Room = f.str(proto.MaxRoomLen, "room")
	ev.User = f.str(maxUserLen, "user")
	ev.Ban = f.bool("ban")
	until := f.int("until")
	ev.Lifted = f.bool("lifted")
	ev.Policy.Title = f.str(maxTitleLen, "title")
	ev.Policy.Budget = int(f.int32("budget"))
	ev.Policy.Tick = time.Duration(f.int("tick"))
	ev.Policy.SlowMode = time.Duration(f.int("slow mode"))
	ev.Policy.VIPOnly = f.bool("vip only")
	ev.Policy.Closed = f.bool("closed")
	ev.Text = f.str(maxNoticeLen, "text")
	ev.Level = f.str(16, "level")
	ev.Node = f.str(proto.MaxRoomLen, "node")
	if f.err != nil {
		return "", nil, f.err
	}
	if kind > 255 || !validID(origin) {
		return "", nil, badEnvelope("kind or origin", nil)
	}
	ev.Kind = ControlKind(kind)
	if until != 0 {
		ev.Until = time.UnixMilli(until)
	}
	if err := ev.Validate(); err != nil {
		return "", nil, badEnvelope("event", err)
	}
	return origin, ev, closeEnvelope(r, n, controlFields)
}

// fieldReader reads envelope fields in order, keeping the first error.
type fieldReader struct {
	r   *proto.Reader
	err error
}

func (f *fieldReader) fail(what string, err error) {
	if f.err == nil {
		f.err = badEnvelope(what, err)
	}
}

func (f *fieldReader) str(max int, what string) string {
	if f.err != nil {
		return ""
	}
	s, err := f.r.Str()
	if err != nil || len(s) > max {
		f.fail(what, err)
	}
	return s
}

func (f *fieldReader) int(what string) int64 {
	if f.err != nil {
		return 0
	}
	v, err := f.r.Int()
	if err != nil {
		f.fail(what, err)
	}
	return v
}

func (f *fieldReader) int32(what string) int64 {
	v := f.int(what)
	if v < math.MinInt32 || v > math.MaxInt32 {
		f.fail(what, nil)
	}
	return v
}

func (f *fieldReader) uint(what string) uint64 {
	if f.err != nil {
		return 0
	}
	v, err := f.r.Uint()
	if err != nil {
		f.fail(what, err)
	}
	return v
}

func (f *fieldReader) bool(what string) bool {
	if f.err != nil {
		return false
	}
	v, err := f.r.Bool()
	if err != nil {
		f.fail(what, err)
	}
	return v
}
