package load

import (
	"bytes"
	"testing"

	"github.com/danmaku/danmaku/room/proto"
)

func sampleBatch() *proto.Batch {
	return &proto.Batch{
		Room: "hot", Tick: 42, ServerTS: 1700000000123, Epoch: "ep1",
		Reliable: []proto.Entry{
			{Kind: proto.KindGift, Seq: 7, User: "u1", Name: "Ann", Gift: "rose", Count: 3, ClientTS: 1700000000001},
			{Kind: proto.KindNotice, Seq: 8, Text: "hello", Level: "info"},
		},
		Lossy: []proto.Entry{
			{Kind: proto.KindChat, MsgID: 9, User: "u2", Text: "hi 弹幕", ClientTS: 1700000000050, ServerTS: 1700000000060},
			{Kind: proto.KindEnter, User: "u3"},
		},
		Likes: 12, HasOnline: true, Online: 1000, Dropped: 17,
	}
}

// viewOf scans body and collects its entries the way a viewer does.
func viewOf(body []byte) (batchView, []entryView, []entryView, error) {
	var b batchView
	if err := scanBatch(body, &b); err != nil {
		return b, nil, nil, err
	}
	collect := func(raw []byte) ([]entryView, error) {
		var it entryIter
		if err := it.init(raw); err != nil {
			return nil, err
		}
		var out []entryView
		for {
			var e entryView
			ok, err := it.next(&e)
			if err != nil {
				return nil, err
			}
			if !ok {
				return out, nil
			}
			out = append(out, e)
		}
	}
	rel, err := collect(b.rel)
	if err != nil {
		return b, nil, nil, err
	}
	los, err := collect(b.los)
	return b, rel, los, err
}

func TestScanBatch(t *testing.T) {
	body := proto.Encode(sampleBatch())
	b, rel, los, err := viewOf(body)
	if err != nil {
		t.Fatal(err)
	}
	if string(b.Room) != "hot" || string(b.Epoch) != "ep1" || b.Tick != 42 || b.Likes != 12 || b.Dropped != 17 || b.ServerTS != 1700000000123 {
		t.Fatalf("top level %+v", b)
	}
	if len(rel) != 2 || rel[0].Seq != 7 || string(rel[0].Kind) != "gift" || string(rel[0].User) != "u1" || rel[0].ClientTS != 1700000000001 || rel[1].Seq != 8 {
		t.Fatalf("reliable %+v", rel)
	}
	if len(los) != 2 || string(los[0].Kind) != "chat" || los[0].ClientTS != 1700000000050 || string(los[1].Kind) != "enter" {
		t.Fatalf("lossy %+v", los)
	}
	// An empty batch and a batch with keys in another order and unknown keys.
	if _, rel, los, err := viewOf(proto.Encode(&proto.Batch{Room: "r"})); err != nil || rel != nil || los != nil {
		t.Fatalf("empty batch: %v %v %v", rel, los, err)
	}
	w := proto.Writer{}
	m := w.Map()
	w.Str("dr")
	w.Uint(3)
	w.Str("zz")
	w.ArrayLen(1)
	w.Str("unknown")
	w.Str("r")
	w.Str("x")
	w.Str("t")
	w.Uint(uint64(proto.TypeBatch))
	w.EndMap(m, 4)
	if b, _, _, err := viewOf(w.B); err != nil || b.Dropped != 3 || string(b.Room) != "x" {
		t.Fatalf("reordered batch: %+v %v", b, err)
	}
	for _, bad := range [][]byte{nil, {0x81}, append(body, 0), body[:len(body)-3], {0x81, 0xa3, 'r', 'e', 'l', 0x91, 0x05}} {
		if _, _, _, err := viewOf(bad); err == nil {
			t.Errorf("scan of % x succeeded", bad)
		}
	}
}

func TestScanBatchAllocs(t *testing.T) {
	body := proto.Encode(sampleBatch())
	allocs := testing.AllocsPerRun(100, func() {
		var b batchView
		if err := scanBatch(body, &b); err != nil {
			t.Fatal(err)
		}
		var it entryIter
		var e entryView
		for _, raw := range [][]byte{b.rel, b.los} {
			_ = it.init(raw)
			for ok, _ := it.next(&e); ok; ok, _ = it.next(&e) {
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("scan allocates %v times per batch", allocs)
	}
}

// FuzzScanBatch: the scanner never panics, and on every body proto.Decode
// accepts as a batch it agrees with proto.Decode.
func FuzzScanBatch(f *testing.F) {
	f.Add(proto.Encode(sampleBatch()))
	f.Add(proto.Encode(&proto.Batch{Room: "r", Epoch: "e", Dropped: 1}))
	f.Add([]byte{0x81, 0xa3, 'r', 'e', 'l', 0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		b, rel, los, err := viewOf(body)
		m, derr := proto.Decode(body)
		want, ok := m.(*proto.Batch)
		if derr != nil || !ok {
			return
		}
		if err != nil {
			t.Fatalf("proto.Decode accepts the batch, the scanner says %v", err)
		}
		if !bytes.Equal(b.Room, []byte(want.Room)) || !bytes.Equal(b.Epoch, []byte(want.Epoch)) ||
			b.Dropped != want.Dropped || b.Likes != want.Likes || b.Tick != want.Tick {
			t.Fatalf("top level differs: %+v vs %+v", b, want)
		}
		same := func(got []entryView, want []proto.Entry) {
			if len(got) != len(want) {
				t.Fatalf("%d entries, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i].Seq != want[i].Seq || got[i].ClientTS != want[i].ClientTS ||
					string(got[i].Kind) != string(want[i].Kind) || string(got[i].User) != want[i].User {
					t.Fatalf("entry %d: %+v vs %+v", i, got[i], want[i])
				}
			}
		}
		same(rel, want.Reliable)
		same(los, want.Lossy)
	})
}

func BenchmarkScanBatch(b *testing.B) {
	body := proto.Encode(sampleBatch())
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		var v batchView
		_ = scanBatch(body, &v)
		var it entryIter
		var e entryView
		for _, raw := range [][]byte{v.rel, v.los} {
			_ = it.init(raw)
			for ok, _ := it.next(&e); ok; ok, _ = it.next(&e) {
			}
		}
	}
}

func TestFastType(t *testing.T) {
	for _, m := range []proto.Message{sampleBatch(), &proto.Ping{ID: 1}, &proto.Ack{ID: 3}, &proto.Welcome{}} {
		body := proto.Encode(m)
		got, ok := fastType(body)
		if !ok || got != m.Type() {
			t.Errorf("%T: fastType = %v %v", m, got, ok)
		}
	}
	for _, b := range [][]byte{nil, {0x81}, {0x81, 0xa1, 'x', 1}, {0x81, 0xa1, 't', 0xcc}, {0x91, 0xa1, 't', 1}} {
		if _, ok := fastType(b); ok {
			t.Errorf("fastType(% x) accepted", b)
		}
	}
}
