package fanout

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

func encodeRequest(room string, in *manager.Inbound) []byte {
	var w proto.Writer
	appendRequest(&w, room, in)
	return w.B
}

func sampleRequests() []struct {
	name string
	room string
	in   *manager.Inbound
} {
	base := func(m proto.Message, p *manager.Publish) *manager.Inbound {
		return &manager.Inbound{Node: "node-1", Session: 42, User: "u1", Name: "Ann ✓", Role: proto.RoleViewer,
			Msg: m, Publish: p, Received: 1700000000123}
	}
	return []struct {
		name string
		room string
		in   *manager.Inbound
	}{
		{"join", "r1", base(&proto.Join{ID: 1, Room: "r1"}, nil)},
		{"leave", "r1", base(&proto.Leave{ID: 2, Room: "r1"}, nil)},
		{"chat", "r1", base(&proto.Chat{ID: 3, Room: "r1", Text: "hello 弾幕", Color: 0xff0000, Mode: proto.ModeTop, ClientTS: 99}, nil)},
		{"like", "r1", base(&proto.Like{ID: 4, Room: "r1", Count: 7}, nil)},
		{"gift", "r1", base(&proto.Gift{ID: 5, Room: "r1", Gift: "rocket", Count: 2, Key: "k-1", ClientTS: 5}, nil)},
		{"resume", "r1", base(&proto.Resume{ID: 6, Room: "r1", Epoch: "ep", Seq: 10}, nil)},
		{"publish", "room_2", &manager.Inbound{Node: "api", Session: apiSession | 9, Role: proto.RoleSystem,
			Publish: &manager.Publish{Entry: proto.Entry{Kind: proto.KindGift, User: "u9", Gift: "car", Count: 1}, Key: "order-77"}}},
		{"notice no key", "r", &manager.Inbound{Node: "n", Session: internalSession, Role: proto.RoleSystem,
			Publish: &manager.Publish{Entry: proto.Entry{Kind: proto.KindNotice, Text: "hi", Level: "info"}}}},
	}
}

func TestRequestRoundTrip(t *testing.T) {
	for _, tc := range sampleRequests() {
		t.Run(tc.name, func(t *testing.T) {
			room, got, err := decodeRequest(encodeRequest(tc.room, tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if room != tc.room || !reflect.DeepEqual(got, tc.in) {
				t.Fatalf("round trip:\n got %q %+v\nwant %q %+v", room, got, tc.room, tc.in)
			}
		})
	}
}

func TestRequestRejects(t *testing.T) {
	ok := &manager.Inbound{Node: "n1", Session: 1, Role: proto.RoleViewer, Msg: &proto.Chat{ID: 1, Room: "r1", Text: "x"}}
	mutate := func(f func(in *manager.Inbound)) *manager.Inbound {
		c := *ok
		f(&c)
		return &c
	}
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"not an array", []byte{0x80}},
		{"too few fields", func() []byte { var w proto.Writer; w.ArrayLen(2); w.Uint(1); w.Str("r1"); return w.B }()},
		{"bad room", encodeRequest("bad.room", ok)},
		{"msg for another room", encodeRequest("r2", ok)},
		{"bad node", encodeRequest("r1", mutate(func(in *manager.Inbound) { in.Node = "a.b" }))},
		{"bad role", encodeRequest("r1", mutate(func(in *manager.Inbound) { in.Role = "god" }))},
		{"long user", encodeRequest("r1", mutate(func(in *manager.Inbound) { in.User = string(make([]byte, 300)) }))},
		{"neither msg nor entry", encodeRequest("r1", mutate(func(in *manager.Inbound) { in.Msg = nil }))},
		{"both msg and entry", encodeRequest("r1", mutate(func(in *manager.Inbound) {
			in.Publish = &manager.Publish{Entry: proto.Entry{Kind: proto.KindGift}}
		}))},
		{"lossy entry", encodeRequest("r1", mutate(func(in *manager.Inbound) {
			in.Msg, in.Publish = nil, &manager.Publish{Entry: proto.Entry{Kind: proto.KindChat}}
		}))},
		{"server message", encodeRequest("r1", mutate(func(in *manager.Inbound) { in.Msg = &proto.Ack{ID: 1} }))},
		{"invalid gift", encodeRequest("r1", mutate(func(in *manager.Inbound) {
			in.Msg = &proto.Gift{ID: 1, Room: "r1", Gift: "g", Count: 0, Key: "k"}
		}))},
		{"trailing bytes", append(encodeRequest("r1", ok), 0xc0)},
		{"wrong version", func() []byte { b := encodeRequest("r1", ok); b[1] = 2; return b }()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := decodeRequest(tc.b); !errors.Is(err, errEnvelope) {
				t.Fatalf("decodeRequest = %v, want errEnvelope", err)
			}
		})
	}
}

// A newer node may append fields: older decoders skip them.
func TestEnvelopeExtraFieldsSkipped(t *testing.T) {
	in := sampleRequests()[2].in
	b := encodeRequest("r1", in)
	b[0]++                                                // fixarray of 11 → 12
	b = append(b, 0x82, 0xa1, 'x', 1, 0xa1, 'y', 0x91, 2) // one more field: a map
	if _, got, err := decodeRequest(b); err != nil || !reflect.DeepEqual(got, in) {
		t.Fatalf("decodeRequest with an extra field = %+v, %v", got, err)
	}
}

func TestBatchRoundTrip(t *testing.T) {
	body := proto.Encode(&proto.Batch{Room: "r1", Tick: 9, Lossy: []proto.Entry{{Kind: proto.KindChat, Text: "a"}}})
	cases := []*manager.Emitted{
		{Room: "r1", Tick: 9, Body: body, Online: -1, At: time.Now().UnixNano()},
		{Room: "r-2", Tick: 1 << 40, Body: body, Reliable: true, FirstSeq: 5, LastSeq: 9, Online: 123456, At: 1},
	}
	for _, e := range cases {
		var w proto.Writer
		appendBatch(&w, "node-a", e)
		origin, got, err := decodeBatch(w.B)
		if err != nil || origin != "node-a" || !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip: %q %+v %v, want %+v", origin, got, err, e)
		}
	}
	var w proto.Writer
	appendBatch(&w, "node-a", &manager.Emitted{Room: "r1", Body: body, FirstSeq: 9, LastSeq: 5})
	if _, _, err := decodeBatch(w.B); !errors.Is(err, errEnvelope) {
		t.Fatalf("last < first seq accepted: %v", err)
	}
	w.B = w.B[:0]
	appendBatch(&w, "node-a", &manager.Emitted{Room: "r1"})
	if _, _, err := decodeBatch(w.B); !errors.Is(err, errEnvelope) {
		t.Fatalf("empty body accepted: %v", err)
	}
}

func TestReplyRoundTrip(t *testing.T) {
	r := manager.Reply{Node: "n", Session: 1<<63 | 5, Body: proto.Encode(&proto.Ack{ID: 3, Seq: 7})}
	var w proto.Writer
	appendReply(&w, r)
	session, body, err := decodeReply(w.B)
	if err != nil || session != r.Session || string(body) != string(r.Body) {
		t.Fatalf("round trip: %d %x %v", session, body, err)
	}
}

func TestCountsRoundTrip(t *testing.T) {
	counts := []roomCount{{"r1", 10}, {"r2", 0}, {"big", 1 << 40}}
	var w proto.Writer
	appendCounts(&w, "n1", counts)
	node, got, err := decodeCounts(w.B)
	if err != nil || node != "n1" || !reflect.DeepEqual(got, counts) {
		t.Fatalf("round trip: %q %+v %v", node, got, err)
	}
	w.B = w.B[:0]
	appendCounts(&w, "n1", []roomCount{{"r1", -1}})
	if _, _, err := decodeCounts(w.B); !errors.Is(err, errEnvelope) {
		t.Fatalf("negative count accepted: %v", err)
	}
}

func sampleControls() []ControlEvent {
	return []ControlEvent{
		{Kind: ControlSanction, Room: "r1", User: "u1", Until: time.UnixMilli(1700000000000)},
		{Kind: ControlSanction, User: "u2", Ban: true, Lifted: true},
		{Kind: ControlPolicy, Room: "r1", Policy: manager.Policy{Title: "Final", Budget: 50, Tick: 100 * time.Millisecond,
			SlowMode: 3 * time.Second, VIPOnly: true, Closed: true}},
		{Kind: ControlKick, User: "u3"},
		{Kind: ControlNotice, Text: "maintenance at 3am", Level: "warn"},
		{Kind: ControlDrain, Node: "node-2"},
	}
}

func TestControlRoundTrip(t *testing.T) {
	for _, ev := range sampleControls() {
		t.Run(ev.Kind.String(), func(t *testing.T) {
			var w proto.Writer
			appendControl(&w, "origin", &ev)
			origin, got, err := decodeControl(w.B)
			if err != nil || origin != "origin" || !reflect.DeepEqual(*got, ev) {
				t.Fatalf("round trip: %q %+v %v\nwant %+v", origin, got, err, ev)
			}
		})
	}
}

func TestControlValidate(t *testing.T) {
	bad := []ControlEvent{
		{Kind: 0},
		{Kind: 99},
		{Kind: ControlSanction}, // no user
		{Kind: ControlSanction, User: "u", Room: "bad room"}, // bad room
		{Kind: ControlPolicy, Policy: manager.Policy{}},      // no room
		{Kind: ControlPolicy, Room: "r", Policy: manager.Policy{Budget: -1}},
		{Kind: ControlKick},
		{Kind: ControlNotice, Level: "info"},
		{Kind: ControlNotice, Text: "x", Level: "loud"},
		{Kind: ControlNotice, Text: "line\nbreak", Level: "info"},
		{Kind: ControlDrain, Node: "a.b"},
	}
	for _, ev := range bad {
		if err := ev.Validate(); !errors.Is(err, proto.CodeBadRequest) {
			t.Errorf("Validate(%+v) = %v, want bad_request", ev, err)
		}
		var w proto.Writer
		appendControl(&w, "o", &ev)
		if _, _, err := decodeControl(w.B); !errors.Is(err, errEnvelope) {
			t.Errorf("decodeControl accepted invalid %+v", ev)
		}
	}
}

func BenchmarkBatchEnvelope(b *testing.B) {
	body := make([]byte, 4<<10)
	e := &manager.Emitted{Room: "room-1", Tick: 1, Body: body, Online: 1000, At: 1}
	w := proto.Writer{B: make([]byte, 0, 8<<10)}
	b.ReportAllocs()
	for b.Loop() {
		w.B = w.B[:0]
		appendBatch(&w, "node-1", e)
		if _, _, err := decodeBatch(w.B); err != nil {
			b.Fatal(err)
		}
	}
}
