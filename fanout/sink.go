package fanout

import (
	"fmt"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// outMsg is one batch or reply waiting for the publisher goroutine.
type outMsg struct {
	k       kind
	subject string
	w       *proto.Writer // pooled; holds the envelope
	rs      *roomState    // the batch's room (Pending), nil for replies
}

// Publish implements manager.Sink: one of this node's rooms emitted a batch.
// The local edge gets it directly when the room has members here; NATS
// carries one copy to every other node with members (invariant 4).
//
// Hot path: once per room per tick, on the room's goroutine. It must not
// block or do I/O (the NATS publish is queued) and allocates nothing per
// recipient: the envelope is encoded once into a pooled buffer.
func (n *Node) Publish(e *manager.Emitted) {
	rs := n.lookup(e.Room)
	if rs != nil && rs.watched.Load() {
		if w := n.wired.Load(); w != nil {
			w.edge.DeliverBatch(e)
			n.met.localBatch.Inc()
		}
	}
	if n.solo {
		return // nobody else can be listening
	}
	subject := ""
	if rs != nil {
		subject = rs.outSubj
	} else {
		subject = n.subj.Out(e.Room)
	}
	w := n.getWriter()
	appendBatch(w, n.id, e)
	n.enqueue(outMsg{k: kindOut, subject: subject, w: w, rs: rs})
}

// Reply implements manager.Sink: an answer for a session on r.Node.
func (n *Node) Reply(r manager.Reply) {
	if r.Node == n.id {
		n.met.localReply.Inc()
		n.deliverReply(r)
		return
	}
	if !validID(r.Node) {
		n.met.drop(kindReply, reasonBadReply)
		return
	}
	w := n.getWriter()
	appendReply(w, r)
	n.enqueue(outMsg{k: kindReply, subject: n.subj.Reply(r.Node), w: w})
}

// Pending implements manager.Backpressure: the room's previous batch still
// waits for NATS, or (when the edge reports it) for local sockets.
func (n *Node) Pending(room string) bool {
	if rs := n.lookup(room); rs != nil && rs.pending.Load() > 0 {
		return true
	}
	if w := n.wired.Load(); w != nil && w.pend != nil {
		return w.pend.Pending(room)
	}
	return false
}

// enqueue hands m to the publisher without blocking; a full queue drops it
// (counted): its receivers miss one batch, which resume recovers.
func (n *Node) enqueue(m outMsg) {
	if m.rs != nil {
		m.rs.pending.Add(1)
	}
	select {
	case n.outq <- m:
	default:
		n.met.drop(m.k, reasonQueueFull)
		n.done(m)
	}
}

func (n *Node) done(m outMsg) {
	if m.rs != nil {
		m.rs.pending.Add(-1)
	}
	n.putWriter(m.w)
}

// publishLoop is the publisher goroutine: it serialises the node's batches
// and replies onto NATS in order.
func (n *Node) publishLoop() {
	for {
		select {
		case m := <-n.outq:
			_ = n.publish(m.k, m.subject, "", m.w.B) // counted inside
			n.done(m)
		case <-n.ctx.Done():
			return
		}
	}
}

// publish sends one message (nats.go copies data before returning). A
// refusal (reconnect buffer full, closed, too large) is counted as a drop.
func (n *Node) publish(k kind, subject, reply string, data []byte) error {
	var err error
	if reply == "" {
		err = n.nc.Publish(subject, data)
	} else {
		err = n.nc.PublishRequest(subject, reply, data)
	}
	if err != nil {
		n.met.drop(k, reasonPublish)
		return fmt.Errorf("publish %s: %w: %w", subject, proto.CodeUnavailable, err)
	}
	n.met.out(k, len(data))
	return nil
}

// deliverReply hands an answer to its local receiver: a Broadcast call
// waiting on this node, or a session of the edge.
func (n *Node) deliverReply(r manager.Reply) {
	if r.Session&apiSession != 0 {
		if !n.api.deliver(r.Session, r.Body) && r.Session != internalSession {
			n.met.drop(kindReply, reasonNoReceiver)
		}
		return
	}
	if w := n.wired.Load(); w != nil {
		w.edge.DeliverReply(r)
	}
}

// unavailable is the answer to a request no owner could take: an ack with
// RetryAfter for acked requests, an error for join and resume.
func unavailable(node string, ref requestRef, room string, retryMs int) manager.Reply {
	var m proto.Message
	switch ref.Type {
	case proto.TypeJoin, proto.TypeResume:
		m = &proto.Error{ID: ref.ID, Code: proto.CodeUnavailable, Room: room, Message: "room owner unavailable, retry"}
	default:
		m = &proto.Ack{ID: ref.ID, Code: proto.CodeUnavailable, RetryAfter: retryMs, Message: "room owner unavailable"}
	}
	return manager.Reply{Node: node, Session: ref.Session, Body: proto.Encode(m)}
}

// refOf is what a request's reply subject carries.
func refOf(in *manager.Inbound) requestRef {
	ref := requestRef{Session: in.Session}
	if r, ok := in.Msg.(proto.Request); ok {
		ref.Type, ref.ID = r.Type(), r.RequestID()
	}
	return ref
}
