package fanout

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// Sessions with apiSession set are Broadcast calls waiting on this node, not
// edge sessions (the edge numbers its sessions from 1 and never reaches
// 2^63). internalSession is a publish nobody waits for (cluster-wide
// notices).
const (
	apiSession      = uint64(1) << 63
	internalSession = apiSession
)

// waiters are the Broadcast calls waiting for their ack, bounded.
type waiters struct {
	mu   sync.Mutex
	next uint64
	max  int
	m    map[uint64]chan []byte
}

func (w *waiters) init(max int) {
	w.max = max
	w.m = make(map[uint64]chan []byte)
}

// add registers a waiter; false when MaxBroadcasts are already waiting.
func (w *waiters) add() (uint64, chan []byte, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.m) >= w.max {
		return 0, nil, false
	}
	w.next++
	id := apiSession | w.next&^apiSession
	if id == internalSession {
		w.next++
		id = apiSession | w.next&^apiSession
	}
	ch := make(chan []byte, 1)
	w.m[id] = ch
	return id, ch, true
}

func (w *waiters) remove(id uint64) {
	w.mu.Lock()
	delete(w.m, id)
	w.mu.Unlock()
}

// deliver hands body to the waiter id; false when nobody waits.
func (w *waiters) deliver(id uint64, body []byte) bool {
	w.mu.Lock()
	ch := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	if ch == nil {
		return false
	}
	ch <- body // buffered, and removed above: never blocks
	return true
}

// Broadcast puts one entry in a room's reliable lane through the room's
// owner, wherever it runs, and returns the owner's ack (the backend API's
// gift events and system notices). While no owner can be reached it retries
// (every RetryAfter) until ctx is done, or BroadcastTimeout when ctx has no
// deadline: a request that got "unavailable" was not applied, so retrying
// is safe even without an idempotency key. An ack with an error code is
// returned with that code as the error.
func (n *Node) Broadcast(ctx context.Context, room string, p manager.Publish) (*proto.Ack, error) {
	if !proto.ValidRoom(room) {
		return nil, fmt.Errorf("broadcast to room %q: %w", room, proto.CodeBadRequest)
	}
	if !p.Entry.Kind.Reliable() || len(p.Key) > proto.MaxKeyLen {
		return nil, fmt.Errorf("broadcast to room %q: entry kind %q not reliable or key too long: %w",
			room, p.Entry.Kind, proto.CodeBadRequest)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.BroadcastTimeout)
		defer cancel()
	}
	for {
		ack, err := n.broadcastOnce(ctx, room, &p)
		if err != nil {
			return nil, err
		}
		if ack.Code != proto.CodeUnavailable {
			if ack.Code != proto.CodeOK {
				return ack, fmt.Errorf("broadcast to room %q: %w", room, ack.Code)
			}
			return ack, nil
		}
		wait := n.cfg.RetryAfter
		if ack.RetryAfter > 0 {
			wait = time.Duration(ack.RetryAfter) * time.Millisecond
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ack, fmt.Errorf("broadcast to room %q: %w (%w)", room, ack.Code, ctx.Err())
		}
	}
}

// broadcastOnce sends the publish once and waits for its answer.
func (n *Node) broadcastOnce(ctx context.Context, room string, p *manager.Publish) (*proto.Ack, error) {
	id, ch, ok := n.api.add()
	if !ok {
		return nil, fmt.Errorf("broadcast to room %q: %d calls waiting: %w", room, n.cfg.MaxBroadcasts, proto.CodeUnavailable)
	}
	defer n.api.remove(id)
	in := &manager.Inbound{Node: n.id, Session: id, Role: proto.RoleSystem, Publish: p, Received: time.Now().UnixMilli()}
	if err := n.forward(room, in); err != nil {
		// Not sent (NATS refused it): as good as unavailable.
		return &proto.Ack{Code: proto.CodeUnavailable, Message: err.Error()}, nil
	}
	select {
	case body := <-ch:
		m, err := proto.Decode(body)
		if err != nil {
			return nil, fmt.Errorf("broadcast to room %q: undecodable answer: %w", room, proto.CodeInternal)
		}
		switch m := m.(type) {
		case *proto.Ack:
			return m, nil
		case *proto.Error:
			return &proto.Ack{ID: m.ID, Code: m.Code, Message: m.Message}, nil
		}
		return nil, fmt.Errorf("broadcast to room %q: answer of type %v: %w", room, m.Type(), proto.CodeInternal)
	case <-ctx.Done():
		return nil, fmt.Errorf("broadcast to room %q: no answer: %w", room, ctx.Err())
	}
}
