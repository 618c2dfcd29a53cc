package load

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/danmaku/danmaku/bench/scenario"
	"github.com/danmaku/danmaku/room/proto"
)

func wsServerFrame(op ws.OpCode, fin bool, payload []byte) []byte {
	var b bytes.Buffer
	_ = ws.WriteHeader(&b, ws.Header{Fin: fin, OpCode: op, Length: int64(len(payload))})
	return append(b.Bytes(), payload...)
}

func TestNextFrame(t *testing.T) {
	body := proto.Encode(sampleBatch())
	big := bytes.Repeat([]byte{0xc0}, 70000) // a 64-bit length header
	for _, c := range []struct {
		name string
		ws   bool
		in   []byte
		want []byte
	}{
		{"tcp", false, proto.AppendFrame(nil, body), body},
		{"ws short", true, wsServerFrame(ws.OpBinary, true, []byte{1, 2, 3}), []byte{1, 2, 3}},
		{"ws 16-bit length", true, wsServerFrame(ws.OpBinary, true, body), body},
		{"ws 64-bit length", true, wsServerFrame(ws.OpBinary, true, big), big},
	} {
		t.Run(c.name, func(t *testing.T) {
			for cut := 0; cut < len(c.in); cut += 1 + len(c.in)/50 { // every prefix is "not yet"
				if _, _, _, n, err := nextFrame(c.in[:cut], c.ws); n != 0 || err != nil {
					t.Fatalf("prefix of %d bytes: n=%d err=%v", cut, n, err)
				}
			}
			op, fin, got, n, err := nextFrame(append(c.in, 0xff), c.ws)
			if err != nil || n != len(c.in) || !fin || op != ws.OpBinary || !bytes.Equal(got, c.want) {
				t.Fatalf("op %v fin %v n %d/%d err %v", op, fin, n, len(c.in), err)
			}
		})
	}
	masked := ws.MaskFrameInPlace(ws.NewBinaryFrame([]byte("hello")))
	var mb bytes.Buffer
	_ = ws.WriteFrame(&mb, masked)
	if _, _, got, _, err := nextFrame(mb.Bytes(), true); err != nil || string(got) != "hello" {
		t.Fatalf("masked frame: %q %v", got, err)
	}
	for _, bad := range [][]byte{
		{0xc2, 0x01, 0x00},                     // RSV1 set
		{0x89, 126, 0x01, 0x00},                // control frame over 125 bytes
		{0x82, 127, 0, 0, 0, 0, 0x10, 0, 0, 0}, // over the server frame limit
		{0, 0, 0, 0},                           // TCP: empty frame (checked with ws=false below)
	} {
		isWS := bad[0] != 0
		if _, _, _, _, err := nextFrame(bad, isWS); err == nil {
			t.Errorf("nextFrame(% x) accepted", bad)
		}
	}
}

// FuzzNextFrame: no input panics, and a frame never claims more bytes
// than it was given or a body outside them.
func FuzzNextFrame(f *testing.F) {
	f.Add(wsServerFrame(ws.OpBinary, true, proto.Encode(sampleBatch())), true)
	f.Add(proto.AppendFrame(nil, proto.Encode(sampleBatch())), false)
	f.Add([]byte{0x82, 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, true)
	f.Fuzz(func(t *testing.T, b []byte, isWS bool) {
		_, _, body, n, err := nextFrame(b, isWS)
		if err != nil {
			return
		}
		if n < 0 || n > len(b) || len(body) > n {
			t.Fatalf("n %d body %d of %d bytes", n, len(body), len(b))
		}
	})
}

// TestConsumeSplitFrames feeds a viewer its frames cut at every point, the
// way reads arrive, and checks every batch is applied once.
func TestConsumeSplitFrames(t *testing.T) {
	v := benchViewer(t)
	var stream []byte
	for i := uint64(1); i <= 20; i++ {
		b := sampleBatch()
		b.Room = v.room.id
		b.Reliable = []proto.Entry{{Kind: proto.KindGift, Seq: i, User: "u", ClientTS: time.Now().UnixMilli()}}
		stream = append(stream, wsServerFrame(ws.OpBinary, true, proto.Encode(b))...)
	}
	stream = append(stream, wsServerFrame(ws.OpPong, true, nil)...)
	for _, chunk := range []int{1, 7, 100, len(stream)} {
		v.seqs.Reset(0)
		var inbuf []byte
		for off := 0; off < len(stream); off += chunk {
			inbuf = append(inbuf, stream[off:min(off+chunk, len(stream))]...)
			used, err := v.consume(inbuf)
			if err != nil {
				t.Fatalf("chunk %d: %v", chunk, err)
			}
			inbuf = append(inbuf[:0], inbuf[used:]...)
		}
		if len(inbuf) != 0 || v.seqs.Last() != 20 || v.wireDups != 0 {
			t.Fatalf("chunk %d: %d bytes left, last seq %d, dups %d", chunk, len(inbuf), v.seqs.Last(), v.wireDups)
		}
	}
}

// benchViewer is one joined WebSocket viewer of a worker that is not
// running: enough to drive the read path by hand.
func benchViewer(tb testing.TB) *viewer {
	tb.Helper()
	sc, err := scenario.Parse("b.yaml", []byte("targets: [ws://127.0.0.1:1/ws]\nduration: 10s\nrooms: [{id: r, viewers: 1}]\n"))
	if err != nil {
		tb.Fatal(err)
	}
	w, err := newWorker(&Plan{Workers: 1, RunID: "b", Prefix: "t-", Scenario: sc, Secret: "s"}, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	v := w.viewers[0]
	v.hasBase, v.epoch, v.ws = true, "ep1", true
	v.joined.Store(true)
	return v
}

// BenchmarkConsume is a viewer reading one batch (10 chats, 1 gift) from
// its socket's bytes: frame, scan, latency and seq bookkeeping.
func BenchmarkConsume(b *testing.B) {
	v := benchViewer(b)
	batch := sampleBatch()
	batch.Room = v.room.id
	for i := 0; i < 9; i++ {
		batch.Lossy = append(batch.Lossy, batch.Lossy[0])
	}
	batch.Reliable = batch.Reliable[:1]
	frames := make([][]byte, 1024)
	for i := range frames {
		batch.Reliable[0].Seq = uint64(i + 1)
		frames[i] = wsServerFrame(ws.OpBinary, true, proto.Encode(batch))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(frames) == 0 {
			v.seqs.Reset(0)
		}
		if _, err := v.consume(frames[i%len(frames)]); err != nil {
			b.Fatal(err)
		}
	}
}
