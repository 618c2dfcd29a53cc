package proto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func sampleEntries() []Entry {
	return []Entry{
		{Kind: KindChat, MsgID: 7, User: "u1", Name: "小明", Role: RoleViewer, Text: "666 主播好", Color: 0xff0000, Mode: ModeTop, ClientTS: 1700000000123, ServerTS: 1700000000130},
		{Kind: KindGift, Seq: 42, MsgID: 43, User: "u2", Name: "Bea", Role: RoleVIP, Gift: "rocket", Count: 3, ClientTS: 1, ServerTS: 2},
		{Kind: KindNotice, Seq: 43, Role: RoleSystem, Text: "welcome", Level: "info", Data: `{"a":1}`},
	}
}

// messages holds one fully populated value of every message type.
func messages() []Message {
	st := RoomState{Title: "final", Live: true, Media: "h264", Online: 12345, Epoch: "e1", Seq: 99, Backlog: sampleEntries()[:1], Budget: 200, SlowMode: 5, VIPOnly: true, Closed: false}
	return []Message{
		&Hello{ID: 1, Version: Version, SDK: "danmaku-go", SDKVersion: "1.0.0", Platform: "linux", Token: "a.b.c"},
		&Welcome{ID: 1, Session: "n1-42", Node: "n1", User: "u1", Name: "N", Role: RoleVIP, Heartbeat: 25000, ServerTime: 1700000000000, Limits: Limits{MaxFrame: 4096, MaxText: 100, ChatPerSec: 3, MaxRooms: 8, ServerFrame: 1 << 20, ResumeWindow: 1000}},
		&Join{ID: 2, Room: "room-1"},
		&Joined{ID: 2, Room: "room-1", State: st},
		&Leave{ID: 3, Room: "room-1"},
		&Chat{ID: 4, Room: "room-1", Text: "hello 世界", Color: 0x00ff00, Mode: ModeBottom, ClientTS: 1700000000001},
		&Like{ID: 5, Room: "room-1", Count: 12},
		&Gift{ID: 6, Room: "room-1", Gift: "rocket", Count: 2, Key: "k-123", ClientTS: 5},
		&Ack{ID: 6, Code: CodeRateLimited, Message: "slow down", MsgID: 9, Seq: 10, Epoch: "e1", SampledOut: true, Duplicate: true, RetryAfter: 500},
		&Resume{ID: 7, Room: "room-1", Epoch: "e1", Seq: 98},
		&Resumed{ID: 7, Room: "room-1", Recovered: false, Epoch: "e2", Seq: 3, Entries: sampleEntries()[1:], State: &st},
		&Ping{ID: 8},
		&Pong{ID: 8, ServerTime: 1700000000000, Online: []RoomCount{{Room: "room-1", Online: 5}, {Room: "b", Online: 0}}},
		&Batch{Room: "room-1", Tick: 1000, ServerTS: 1700000000200, Epoch: "e1", Reliable: sampleEntries()[1:], Lossy: sampleEntries()[:1], Likes: 77, HasOnline: true, Online: 0, Dropped: 12},
		&Notice{Room: "room-1", Text: "maintenance at 3am", Level: "warn"},
		&Error{ID: 9, Code: CodeForbidden, Message: "not your room", Room: "room-2"},
		&Reconnect{Reason: CodeShutdown, RetryAfter: 1234},
		&Missed{Room: "room-1", Batches: 17},
	}
}

func TestRoundTripEveryType(t *testing.T) {
	seen := map[Type]bool{}
	for _, m := range messages() {
		t.Run(m.Type().String(), func(t *testing.T) {
			body := Encode(m)
			got, err := Decode(body)
			if err != nil {
				t.Fatalf("decode %x: %v", body, err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, m)
			}
			// The body is plain msgpack: an independent library reads it as a map.
			var generic map[string]any
			if err := msgpack.Unmarshal(body, &generic); err != nil {
				t.Fatalf("vmihailenco cannot read our body: %v", err)
			}
			if tt, _ := generic["t"].(int8); Type(tt) != m.Type() {
				t.Fatalf("generic t = %v (%T)", generic["t"], generic["t"])
			}
			seen[m.Type()] = true
		})
	}
	for typ := TypeHello; typ <= TypeMissed; typ++ {
		if !seen[typ] {
			t.Errorf("no round-trip case for %v", typ)
		}
	}
}

func TestZeroValuesRoundTrip(t *testing.T) {
	for _, m := range []Message{&Chat{}, &Batch{}, &Ack{}, &Welcome{}, &Joined{}} {
		got, err := Decode(Encode(m))
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("%v: got %#v, %v", m.Type(), got, err)
		}
	}
}

// A client written with a generic msgpack library (keys in any order, ints of
// any width, extra keys) must be understood.
func TestGenericLibraryInput(t *testing.T) {
	in := map[string]any{
		"future": []any{1, "x", map[string]any{"deep": true}},
		"x":      "hi",
		"ct":     int64(1700000000000),
		"r":      "lobby",
		"id":     uint16(300),
		"m":      int8(1),
		"t":      uint64(TypeChat),
		"c":      uint32(0xffffff),
		"f":      3.5,
	}
	body, err := msgpack.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	want := &Chat{ID: 300, Room: "lobby", Text: "hi", Color: 0xffffff, Mode: ModeTop, ClientTS: 1700000000000}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v want %#v", got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	mp := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	chat := Encode(&Chat{ID: 1, Room: "r", Text: "hello"})
	cases := []struct {
		name string
		body []byte
		want Code
	}{
		{"empty", nil, CodeBadFrame},
		{"garbage", []byte("GET / HTTP/1.1\r\n"), CodeBadFrame},
		{"not a map", mp([]int{1, 2}), CodeBadFrame},
		{"no type", mp(map[string]any{"id": 1}), CodeBadFrame},
		{"type zero", mp(map[string]any{"t": 0}), CodeBadFrame},
		{"type not int", mp(map[string]any{"t": "chat"}), CodeBadFrame},
		{"unknown type", mp(map[string]any{"t": 99, "id": 5}), CodeUnknownType},
		{"truncated", chat[:len(chat)-2], CodeBadFrame},
		{"trailing bytes", append(append([]byte{}, chat...), 0xc0), CodeBadFrame},
		{"wrong field type", mp(map[string]any{"t": 6, "x": 12}), CodeBadFrame},
		{"negative count", mp(map[string]any{"t": 7, "n": -1}), CodeBadFrame},
		{"count overflows uint32", mp(map[string]any{"t": 7, "n": uint64(1) << 40}), CodeBadFrame},
		{"invalid utf8 text", mp(map[string]any{"t": 6, "x": "\xff\xfe"}), CodeInvalidText},
		{"map count lies", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, CodeBadFrame},
		{"deep nesting", append(append([]byte{0x82, 0xa1, 't', 0x06, 0xa1, 'z'}, bytes.Repeat([]byte{0x91}, 100)...), 0xc0), CodeBadFrame},
		{"reserved byte", []byte{0x81, 0xa1, 't', 0xc1}, CodeBadFrame},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.body)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestUnknownTypeKeepsRequestID(t *testing.T) {
	body, _ := msgpack.Marshal(map[string]any{"t": 200, "id": 77, "whatever": "x"})
	if _, err := Decode(body); !errors.Is(err, CodeUnknownType) {
		t.Fatalf("Decode: %v", err)
	}
	h, err := PeekHeader(body)
	if err != nil || h.ID != 77 || h.Type != 200 {
		t.Fatalf("PeekHeader = %+v, %v", h, err)
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", MaxKeyLen+1)
	cases := []struct {
		m    Message
		want error
	}{
		{&Join{Room: "ok_room-1"}, nil},
		{&Join{Room: ""}, CodeBadRequest},
		{&Join{Room: "a.b"}, CodeBadRequest},
		{&Join{Room: "a*"}, CodeBadRequest},
		{&Join{Room: strings.Repeat("r", MaxRoomLen+1)}, CodeBadRequest},
		{&Chat{Room: "r", Text: "x", Mode: 3}, CodeBadRequest},
		{&Chat{Room: "r", Text: "x", Color: 0x1000000}, CodeBadRequest},
		{&Like{Room: "r", Count: 0}, CodeBadRequest},
		{&Like{Room: "r", Count: MaxLikeCount + 1}, CodeBadRequest},
		{&Like{Room: "r", Count: 5}, nil},
		{&Gift{Room: "r", Gift: "g", Count: 1, Key: "k"}, nil},
		{&Gift{Room: "r", Gift: "g", Count: 1, Key: ""}, CodeBadRequest},
		{&Gift{Room: "r", Gift: "g", Count: 1, Key: long}, CodeBadRequest},
		{&Gift{Room: "r", Gift: "", Count: 1, Key: "k"}, CodeBadRequest},
		{&Gift{Room: "r", Gift: "g", Count: MaxGiftCount + 1, Key: "k"}, CodeBadRequest},
		{&Ping{}, nil},
	}
	for _, tc := range cases {
		if err := Validate(tc.m); err != tc.want {
			t.Errorf("Validate(%#v) = %v, want %v", tc.m, err, tc.want)
		}
	}
}

func TestCheckText(t *testing.T) {
	cases := []struct {
		text string
		max  int
		want error
	}{
		{"hello", 100, nil},
		{"你好世界", 4, nil},
		{"你好世界!", 4, CodeTooLong},
		{"", 100, CodeInvalidText},
		{"a\nb", 100, CodeInvalidText},
		{"a\x00b", 100, CodeInvalidText},
		{"bad \xff", 100, CodeInvalidText},
		{"line\u2028sep", 100, CodeInvalidText},
		{"emoji 🎉", 7, nil},
	}
	for _, tc := range cases {
		if err := CheckText(tc.text, tc.max); err != tc.want {
			t.Errorf("CheckText(%q, %d) = %v, want %v", tc.text, tc.max, err, tc.want)
		}
	}
}

func TestParseFrame(t *testing.T) {
	body := Encode(&Ping{ID: 1})
	frame := AppendFrame(nil, body)
	two := append(append([]byte{}, frame...), frame...)
	cases := []struct {
		name    string
		in      []byte
		max     int
		body    []byte
		n       int
		wantErr error
	}{
		{"complete", frame, 64, body, len(frame), nil},
		{"two frames, first returned", two, 64, body, len(frame), nil},
		{"header only", frame[:4], 64, nil, 0, nil},
		{"partial header", frame[:2], 64, nil, 0, nil},
		{"partial body", frame[:len(frame)-1], 64, nil, 0, nil},
		{"empty frame", []byte{0, 0, 0, 0}, 64, nil, 0, CodeBadFrame},
		{"oversize decided from header", []byte{0, 0, 0x10, 0x01}, MaxClientFrame, nil, 0, CodeTooLarge},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff}, MaxServerFrame, nil, 0, CodeTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, n, err := ParseFrame(tc.in, tc.max)
			if err != tc.wantErr || n != tc.n || !bytes.Equal(b, tc.body) {
				t.Fatalf("ParseFrame = %x, %d, %v; want %x, %d, %v", b, n, err, tc.body, tc.n, tc.wantErr)
			}
		})
	}
}

func TestPreamble(t *testing.T) {
	if err := CheckPreamble(Preamble[:]); err != nil {
		t.Fatal(err)
	}
	if err := CheckPreamble([]byte("DMK\x09")); err != CodeBadVersion {
		t.Fatalf("version 9: %v", err)
	}
	if err := CheckPreamble([]byte("GET ")); err != CodeBadFrame {
		t.Fatalf("GET: %v", err)
	}
}

func TestFrameReader(t *testing.T) {
	var stream []byte
	for _, m := range messages() {
		stream = AppendMessageFrame(stream, m)
	}
	fr := NewFrameReader(bytes.NewReader(stream), MaxServerFrame)
	for i, want := range messages() {
		body, err := fr.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		got, err := Decode(body)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("frame %d: %#v %v", i, got, err)
		}
	}
	if _, err := fr.Next(); err != io.EOF {
		t.Fatalf("after last frame: %v", err)
	}
	fr = NewFrameReader(bytes.NewReader(stream[:len(stream)-1]), MaxServerFrame)
	var err error
	for err == nil {
		_, err = fr.Next()
	}
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated stream: %v", err)
	}
	fr = NewFrameReader(bytes.NewReader([]byte{0, 0x10, 0, 0}), MaxClientFrame)
	if _, err := fr.Next(); !errors.Is(err, CodeTooLarge) {
		t.Fatalf("oversize: %v", err)
	}
}

func TestEntryEncodingDoesNotAllocate(t *testing.T) {
	b := benchBatch(200)
	w := Writer{B: make([]byte, 0, 64<<10)}
	allocs := testing.AllocsPerRun(50, func() {
		w.B = w.B[:0]
		b.AppendTo(&w)
	})
	if allocs != 0 {
		t.Fatalf("batch encode allocates %.1f times", allocs)
	}
}

// TestProtocolDocExample keeps the worked example of docs/PROTOCOL.md §6 true.
func TestProtocolDocExample(t *testing.T) {
	want := "00000021" + "85" + "a17406" + "a2696401" + "a172a56c6f626279" + "a178a26869" + "a26374cf0000018bcfe56800"
	got := AppendMessageFrame(nil, &Chat{ID: 1, Room: "lobby", Text: "hi", ClientTS: 1700000000000})
	if hex.EncodeToString(got) != want {
		t.Fatalf("doc example drifted:\n got %x\nwant %s", got, want)
	}
}
