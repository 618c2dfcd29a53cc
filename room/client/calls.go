package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// ErrAlreadyJoined is returned by Join for a room the client is in.
var ErrAlreadyJoined = errors.New("danmaku client: room already joined")

// Join joins room and returns its state. From then on its batches arrive as
// events (an EventState first), and the SDK resumes the room by itself after
// every reconnect. Errors wrap the server's code: errors.Is(err,
// proto.CodeForbidden).
func (c *Client) Join(ctx context.Context, name string) (*proto.RoomState, error) {
	if !proto.ValidRoom(name) {
		return nil, fmt.Errorf("join room %q: %w", name, proto.CodeBadRequest)
	}
	s, err := c.session()
	if err != nil {
		return nil, fmt.Errorf("join room %q: %w", name, err)
	}
	id := c.newID()
	r := &room{name: name, joinID: id, tr: newTracker(c.cfg.MaxHeld, c.cfg.MaxPreJoin, c.stats.add)}
	c.mu.Lock()
	switch {
	case c.rooms[name] != nil:
		err = ErrAlreadyJoined
	case c.sess != s:
		err = errNotConnected // reconnecting since we looked
	default:
		c.rooms[name] = r
	}
	c.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("join room %q: %w", name, err)
	}
	msg, err := c.call(ctx, s, id, &proto.Join{ID: id, Room: name})
	if err == nil {
		if j, ok := msg.(*proto.Joined); ok {
			st := j.State
			return &st, nil
		}
		err = replyErr(msg)
	}
	c.mu.Lock()
	if c.rooms[name] == r {
		delete(c.rooms, name)
	}
	c.mu.Unlock()
	if ctx.Err() != nil {
		// The server may still join us: take it back (its ack is ignored).
		_ = s.send(&proto.Leave{ID: c.newID(), Room: name})
	}
	return nil, fmt.Errorf("join room %q: %w", name, err)
}

// Leave leaves room: its events stop at once. When the connection is down
// there is nothing to tell the server, and Leave succeeds.
func (c *Client) Leave(ctx context.Context, name string) error {
	c.mu.Lock()
	_, ok := c.rooms[name]
	delete(c.rooms, name)
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("leave room %q: %w", name, proto.CodeNotJoined)
	}
	id := c.newID()
	_, err := c.ack(ctx, "leave", name, id, &proto.Leave{ID: id, Room: name})
	if errors.Is(err, proto.CodeUnavailable) {
		return nil // no connection, no membership
	}
	return err
}

// ChatOption sets an optional field of a chat.
type ChatOption func(*proto.Chat)

// WithColor sets the chat's color, 0xRRGGBB (0 = the viewer app's default).
func WithColor(rgb uint32) ChatOption { return func(m *proto.Chat) { m.Color = rgb } }

// WithMode sets how the chat flies over the video (default proto.ModeScroll).
func WithMode(mode proto.Mode) ChatOption { return func(m *proto.Chat) { m.Mode = mode } }

// Chat sends a danmaku to a joined room. A nil error means accepted; the ack
// says whether it was broadcast (SampledOut: the room was over its budget,
// show it to the sender only). A rejection returns the ack too (RetryAfter)
// with an error wrapping its code, e.g. errors.Is(err, proto.CodeRateLimited).
// Text is checked locally first (proto.CheckText against the server's limit).
func (c *Client) Chat(ctx context.Context, room, text string, opts ...ChatOption) (*proto.Ack, error) {
	m := &proto.Chat{ID: c.newID(), Room: room, Text: text, ClientTS: time.Now().UnixMilli()}
	for _, o := range opts {
		o(m)
	}
	limit := c.Welcome().Limits.MaxText
	if limit <= 0 {
		limit = proto.MaxTextRunes
	}
	if err := proto.Validate(m); err != nil {
		return nil, fmt.Errorf("chat in room %q: %w", room, err)
	}
	if err := proto.CheckText(text, limit); err != nil {
		return nil, fmt.Errorf("chat in room %q: %w", room, err)
	}
	return c.ack(ctx, "chat", room, m.ID, m)
}

// Like sends count likes (merge taps: 1–1000 per call).
func (c *Client) Like(ctx context.Context, room string, count uint32) (*proto.Ack, error) {
	m := &proto.Like{ID: c.newID(), Room: room, Count: count}
	if err := proto.Validate(m); err != nil {
		return nil, fmt.Errorf("like in room %q: %w", room, err)
	}
	return c.ack(ctx, "like", room, m.ID, m)
}

// ack sends a request answered by an ack on the current connection.
func (c *Client) ack(ctx context.Context, op, room string, id uint32, m proto.Message) (*proto.Ack, error) {
	s, err := c.session()
	if err != nil {
		return nil, fmt.Errorf("%s in room %q: %w", op, room, err)
	}
	msg, err := c.call(ctx, s, id, m)
	if err != nil {
		return nil, fmt.Errorf("%s in room %q: %w", op, room, err)
	}
	a, err := ackOf(msg)
	if err != nil {
		return a, fmt.Errorf("%s in room %q: %w", op, room, err)
	}
	return a, nil
}

// ackOf turns an answer into (ack, error wrapping its code).
func ackOf(msg proto.Message) (*proto.Ack, error) {
	if a, ok := msg.(*proto.Ack); ok {
		if a.Code != proto.CodeOK {
			return a, codeErr(a.Code, a.Message)
		}
		return a, nil
	}
	return nil, replyErr(msg)
}

// replyErr is the error an unexpected answer stands for.
func replyErr(msg proto.Message) error {
	if e, ok := msg.(*proto.Error); ok {
		return codeErr(e.Code, e.Message)
	}
	return fmt.Errorf("unexpected %s answer: %w", msg.Type(), proto.CodeInternal)
}

// GiftError is the error of Gift and GiftWithKey. Key identifies the
// purchase: when Ack is nil the outcome is unknown (no ack before the
// deadline), and retrying later with GiftWithKey and this Key can never
// double the gift.
type GiftError struct {
	Key string
	Ack *proto.Ack // the refusal, or nil when no ack arrived
	Err error
}

func (e *GiftError) Error() string { return fmt.Sprintf("gift %s: %v", e.Key, e.Err) }
func (e *GiftError) Unwrap() error { return e.Err }

// Gift sends count of giftID to room with a fresh idempotency key and retries
// it (same key) until the server acks or Config.GiftDeadline passes; see
// GiftWithKey.
func (c *Client) Gift(ctx context.Context, room, giftID string, count uint32) (*proto.Ack, error) {
	return c.GiftWithKey(ctx, room, giftID, count, NewKey())
}

// GiftWithKey sends a gift under the app's own idempotency key (its order id,
// say). It retries with the same key on timeouts (Config.GiftAttemptTimeout),
// on unavailable, rate_limited and other retryable codes (waiting at least
// their RetryAfter) and across reconnects, with jittered backoff, until an
// ack arrives, ctx ends or Config.GiftDeadline passes. The server answers a
// repeat of an accepted gift with the original ack (Duplicate true, same
// Seq), which is returned as is: a gift is never doubled. Errors are
// *GiftError.
func (c *Client) GiftWithKey(ctx context.Context, room, giftID string, count uint32, key string) (*proto.Ack, error) {
	m := &proto.Gift{Room: room, Gift: giftID, Count: count, Key: key, ClientTS: time.Now().UnixMilli()}
	if err := proto.Validate(m); err != nil {
		return nil, &GiftError{Key: key, Err: fmt.Errorf("gift in room %q: %w", room, err)}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.GiftDeadline)
	defer cancel()
	var lastErr error
	var wait time.Duration // the server's RetryAfter
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			c.stats.add(cGiftRetry, 1)
			d := max(wait, backoff(c.cfg.BackoffBase, c.cfg.BackoffMax, attempt-1))
			if err := c.pause(ctx, d); err != nil {
				return nil, c.giftGaveUp(key, room, err, lastErr)
			}
		}
		s, err := c.waitSession(ctx)
		if err != nil {
			return nil, c.giftGaveUp(key, room, err, lastErr)
		}
		m.ID = c.newID()
		actx, acancel := context.WithTimeout(ctx, c.cfg.GiftAttemptTimeout)
		msg, err := c.call(actx, s, m.ID, m)
		acancel()
		if err != nil {
			if errors.Is(err, ErrClosed) || ctx.Err() != nil {
				return nil, c.giftGaveUp(key, room, err, lastErr)
			}
			lastErr, wait = err, 0 // attempt timeout or connection lost: again
			continue
		}
		a, err := ackOf(msg)
		if err == nil {
			return a, nil
		}
		if !c.giftRetryable(err, room) {
			return a, &GiftError{Key: key, Ack: a, Err: fmt.Errorf("gift in room %q: %w", room, err)}
		}
		if a != nil {
			wait = time.Duration(a.RetryAfter) * time.Millisecond
		}
		lastErr = err
	}
}

// giftRetryable: a refusal with a retryable code, or not_joined while the
// room is being resumed after a reconnect.
func (c *Client) giftRetryable(err error, room string) bool {
	var code proto.Code
	if !errors.As(err, &code) {
		return false
	}
	if retryable(code) {
		return true
	}
	if code == proto.CodeNotJoined {
		c.mu.Lock()
		_, joined := c.rooms[room]
		c.mu.Unlock()
		return joined
	}
	return false
}

// giftGaveUp is the error of a gift whose outcome is unknown.
func (c *Client) giftGaveUp(key, room string, err, last error) error {
	if errors.Is(err, context.DeadlineExceeded) && last != nil {
		err = fmt.Errorf("no ack before the deadline (last: %v): %w", last, err)
	}
	return &GiftError{Key: key, Err: fmt.Errorf("gift in room %q: %w", room, err)}
}

// pause waits d, unless ctx ends or the client closes.
func (c *Client) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.closing:
		return ErrClosed
	}
}

// NewKey returns a random idempotency key (32 hex digits, 128 bits).
func NewKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
