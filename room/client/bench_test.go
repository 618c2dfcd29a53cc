package client_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/danmaku/danmaku/room/client"
	"github.com/danmaku/danmaku/room/proto"
)

// BenchmarkReceive measures the SDK's receive path over a real socket: read a
// frame, decode it, run the room's tracker, hand the event to the app. One
// batch carries one reliable entry and 20 chats, a busy room's tick.
func BenchmarkReceive(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) {
			s, err := startServer(25000)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			c, err := client.Dial(context.Background(), s.url(tr), "tok", client.WithLogger(quiet))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Join(context.Background(), "lobby"); err != nil {
				b.Fatal(err)
			}
			conn := s.onlyConn()
			lossy := make([]proto.Entry, 20)
			for i := range lossy {
				lossy[i] = proto.Entry{Kind: proto.KindChat, User: fmt.Sprint("u", i), Name: "viewer", Text: "the quick brown fox jumps"}
			}
			b.ReportAllocs()
			b.ResetTimer()
			go func() {
				batch := &proto.Batch{Room: "lobby", Epoch: "e1", Lossy: lossy, Reliable: make([]proto.Entry, 1)}
				for i := range b.N {
					batch.Tick = uint64(i)
					batch.Reliable[0] = proto.Entry{Kind: proto.KindGift, Seq: uint64(i + 1), Gift: "rose", Count: 1}
					if conn.send(batch) != nil {
						return
					}
				}
			}()
			for n := 0; n < b.N; {
				ev := <-c.Events()
				if ev.Kind == client.EventBatch {
					n++
				}
			}
			b.StopTimer()
			if st := c.Stats(); st.Reliable != uint64(b.N) {
				b.Fatalf("delivered %d of %d", st.Reliable, b.N)
			}
		})
	}
}
