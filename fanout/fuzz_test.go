package fanout

import (
	"reflect"
	"testing"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// Every decoder: no panic on any input, and whatever it accepts encodes back
// to something it decodes to the same value.

func FuzzDecodeRequest(f *testing.F) {
	for _, tc := range sampleRequests() {
		f.Add(encodeRequest(tc.room, tc.in))
	}
	f.Add([]byte{0x9b, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		room, in, err := decodeRequest(b)
		if err != nil {
			return
		}
		room2, in2, err := decodeRequest(encodeRequest(room, in))
		if err != nil || room2 != room || !reflect.DeepEqual(in2, in) {
			t.Fatalf("re-encoded request differs: %v\n%+v\n%+v", err, in, in2)
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	var w proto.Writer
	appendBatch(&w, "n1", &manager.Emitted{Room: "r1", Tick: 3, Body: []byte{0x80}, Reliable: true, FirstSeq: 1, LastSeq: 2, Online: -1})
	f.Add(w.B)
	f.Fuzz(func(t *testing.T, b []byte) {
		origin, e, err := decodeBatch(b)
		if err != nil {
			return
		}
		var w proto.Writer
		appendBatch(&w, origin, e)
		origin2, e2, err := decodeBatch(w.B)
		if err != nil || origin2 != origin || !reflect.DeepEqual(e2, e) {
			t.Fatalf("re-encoded batch differs: %v", err)
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	var w proto.Writer
	appendReply(&w, manager.Reply{Session: 7, Body: proto.Encode(&proto.Ack{ID: 1})})
	f.Add(w.B)
	f.Fuzz(func(t *testing.T, b []byte) {
		session, body, err := decodeReply(b)
		if err != nil {
			return
		}
		var w proto.Writer
		appendReply(&w, manager.Reply{Session: session, Body: body})
		s2, b2, err := decodeReply(w.B)
		if err != nil || s2 != session || string(b2) != string(body) {
			t.Fatalf("re-encoded reply differs: %v", err)
		}
	})
}

func FuzzDecodeCounts(f *testing.F) {
	var w proto.Writer
	appendCounts(&w, "n1", []roomCount{{"r1", 3}, {"r2", 0}})
	f.Add(w.B)
	f.Fuzz(func(t *testing.T, b []byte) {
		node, counts, err := decodeCounts(b)
		if err != nil {
			return
		}
		var w proto.Writer
		appendCounts(&w, node, counts)
		n2, c2, err := decodeCounts(w.B)
		if err != nil || n2 != node || !reflect.DeepEqual(c2, counts) {
			t.Fatalf("re-encoded counts differ: %v", err)
		}
	})
}

func FuzzDecodeControl(f *testing.F) {
	for _, ev := range sampleControls() {
		var w proto.Writer
		appendControl(&w, "o", &ev)
		f.Add(w.B)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		origin, ev, err := decodeControl(b)
		if err != nil {
			return
		}
		var w proto.Writer
		appendControl(&w, origin, ev)
		o2, ev2, err := decodeControl(w.B)
		if err != nil || o2 != origin || !reflect.DeepEqual(ev2, ev) {
			t.Fatalf("re-encoded control differs: %v\n%+v\n%+v", err, ev, ev2)
		}
	})
}
