// Package client is the Go SDK of the danmaku room protocol: what an app, the
// `danmaku listen` and `danmaku send` commands and the bench use to talk to
// an edge over TCP (tcp://host:port) or WebSocket (ws://host:port/ws).
//
// A viewer in ten lines:
//
//	c, err := client.Dial(ctx, "ws://127.0.0.1:7000/ws", token)
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	if _, err := c.Join(ctx, "lobby"); err != nil {
//		return err
//	}
//	for ev := range c.Events() {
//		if ev.Kind == client.EventBatch {
//			for _, e := range ev.Batch.Reliable { // gifts, notices: each exactly once
//				fmt.Printf("%s sent %d %s %s\n", e.Name, e.Count, e.Gift, e.Text)
//			}
//			for _, e := range ev.Batch.Lossy { // chat
//				fmt.Printf("%s: %s\n", e.Name, e.Text)
//			}
//		}
//	}
//
// What the SDK does for the app:
//
//   - Hello/welcome with the token (or a fresh one from Config.TokenSource on
//     every connection), pings at the server's heartbeat, and a connection
//     that stays silent for two intervals is treated as dead.
//   - Reconnects with exponential backoff and full jitter (and after the
//     delay a draining server asks for), then resumes every joined room from
//     the last reliable seq it delivered.
//   - Reliable entries (gifts, notices, moderation, state) reach the app
//     exactly once and in seq order per room: duplicates are dropped, gaps are
//     held and filled by a resume, batches that arrive before the join answer
//     are applied after it. A resume that cannot recover is reported as an
//     EventState with Rejoined set: the app missed history and redraws.
//     Lossy entries (chat) are delivered as they come.
//   - Gifts carry an idempotency key and are retried with the same key until
//     acked (Config.GiftDeadline), so a gift is never lost silently nor
//     doubled.
//   - Every blocking call takes a context; Close stops every goroutine.
//
// Events are never dropped by the SDK: an app that stops reading Events
// stalls the connection, and the server eventually disconnects it as a slow
// consumer (the SDK then reconnects and resumes).
//
// The package imports room/proto and nothing else from this module: it must
// not import the edge, the room manager, fanout or any server-side package,
// so apps embed it without the server.
package client
