package client_test

import (
	"context"
	"fmt"

	"github.com/danmaku/danmaku/room/client"
	"github.com/danmaku/danmaku/room/proto"
)

// startExample stands in for `danmaku serve`: a server that greets every
// joiner with a reliable notice.
func startExample() *server {
	s, err := startServer(25000)
	if err != nil {
		panic(err)
	}
	s.setHook(func(c *sconn, m proto.Message) bool {
		if j, ok := m.(*proto.Join); ok {
			s.handle(c, m)
			s.announce(j.Room, "welcome to the "+j.Room)
			return true
		}
		return false
	})
	return s
}

// A viewer: connect, join, print what arrives.
func Example() {
	srv := startExample()
	defer srv.Close()
	url := srv.url("ws") // e.g. "ws://127.0.0.1:7000/ws" or "tcp://127.0.0.1:7000"

	ctx := context.Background()
	c, err := client.Dial(ctx, url, "token from your backend")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	if _, err := c.Join(ctx, "lobby"); err != nil {
		fmt.Println(err)
		return
	}
	for ev := range c.Events() {
		if ev.Kind == client.EventBatch {
			for _, e := range ev.Batch.Reliable { // gifts, notices: each exactly once
				fmt.Printf("%s #%d: %s\n", e.Kind, e.Seq, e.Text)
			}
			for _, e := range ev.Batch.Lossy { // chat
				fmt.Printf("%s: %s\n", e.Name, e.Text)
			}
			return
		}
	}
	// Output: notice #1: welcome to the lobby
}
