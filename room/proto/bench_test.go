package proto

import (
	"strconv"
	"testing"
)

func benchBatch(n int) *Batch {
	b := &Batch{Room: "hot-room", Tick: 123456, ServerTS: 1700000000000, Epoch: "8f3a2c", Likes: 1234, HasOnline: true, Online: 19000, Dropped: 4800}
	for i := 0; i < n; i++ {
		b.Lossy = append(b.Lossy, Entry{
			Kind: KindChat, MsgID: uint64(1000 + i), User: "user-" + strconv.Itoa(i), Name: "viewer " + strconv.Itoa(i),
			Role: RoleViewer, Text: "主播太强了 this play was amazing 666", Color: 0xffffff,
			ClientTS: 1700000000000 + int64(i), ServerTS: 1700000000100,
		})
	}
	return b
}

// BenchmarkDecodeChat: the edge decodes every client chat. Aim: only the
// message itself (struct and its strings) is allocated.
func BenchmarkDecodeChat(b *testing.B) {
	var d Decoder
	body := Encode(&Chat{ID: 17, Room: "hot-room", Text: "主播太强了 this play was amazing 666", Color: 0xff00ff, Mode: ModeScroll, ClientTS: 1700000000000})
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := d.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeBatch200: the room owner encodes one batch per tick. Aim: no
// allocation once the output buffer has grown.
func BenchmarkEncodeBatch200(b *testing.B) {
	batch := benchBatch(200)
	w := Writer{B: make([]byte, 0, 64<<10)}
	b.ReportAllocs()
	for b.Loop() {
		w.B = w.B[:0]
		batch.AppendTo(&w)
	}
	b.SetBytes(int64(len(w.B)))
}

// BenchmarkDecodeBatch200: what a client (SDK, bench worker) pays per batch.
func BenchmarkDecodeBatch200(b *testing.B) {
	body := Encode(benchBatch(200))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}
