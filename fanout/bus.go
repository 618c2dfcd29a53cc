package fanout

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// Watch implements edge.Bus: the room got its first member on this node.
// The node subscribes to the room's batches and makes sure the room has an
// owner (acquiring it if nobody does).
func (n *Node) Watch(room string) error {
	if !proto.ValidRoom(room) {
		return fmt.Errorf("watch room %q: %w", room, proto.CodeBadRequest)
	}
	if n.closed.Load() {
		return fmt.Errorf("watch room %q: node closed: %w", room, proto.CodeUnavailable)
	}
	n.mu.Lock()
	rs := n.roomLocked(room)
	if rs.watched.Load() {
		n.mu.Unlock()
		return nil
	}
	if !n.solo {
		sub, err := n.subscribe(kindOut, rs.outSubj, "", n.cfg.OutPending, n.onBatch)
		if err != nil {
			n.mu.Unlock()
			return fmt.Errorf("watch room %q: %w: %w", room, proto.CodeUnavailable, err)
		}
		rs.outSub = sub
	}
	rs.watched.Store(true)
	n.mu.Unlock()
	if !rs.owned.Load() {
		n.requestAcquire(room)
	}
	return nil
}

// Unwatch implements edge.Bus: the room's last member on this node left.
// Ownership is not affected: other nodes may have members.
func (n *Node) Unwatch(room string) {
	n.mu.Lock()
	rs := n.rooms[room]
	if rs == nil || !rs.watched.Load() {
		n.mu.Unlock()
		return
	}
	rs.watched.Store(false)
	sub := rs.outSub
	rs.outSub = nil
	n.mu.Unlock()
	n.unsubscribe(sub)
}

// Forward implements edge.Bus: send a client's request to its room's owner.
// A room this node owns is served in-process; a room with no known owner is
// acquired first (one Redis round trip, at most LeaseOpTimeout). The answer
// comes back through Edge.DeliverReply; when no owner receives the request,
// the answer is proto.CodeUnavailable with RetryAfter.
func (n *Node) Forward(in *manager.Inbound) error {
	if in == nil || in.Msg == nil {
		return fmt.Errorf("forward: no message: %w", proto.CodeBadRequest)
	}
	room := proto.RoomOf(in.Msg)
	if !proto.ValidRoom(room) {
		return fmt.Errorf("forward to room %q: %w", room, proto.CodeBadRequest)
	}
	return n.forward(room, in)
}

// forward routes in (a client request or a Publish) for room.
func (n *Node) forward(room string, in *manager.Inbound) error {
	w := n.wired.Load()
	if w == nil || n.closed.Load() {
		return fmt.Errorf("forward to room %q: node not running: %w", room, proto.CodeUnavailable)
	}
	if n.submitIfOwned(room, in) {
		n.met.localRequest.Inc()
		return nil
	}
	owner := ""
	n.mu.RLock()
	if rs := n.rooms[room]; rs != nil && time.Since(rs.ownerSeen) < n.cfg.OwnerCacheTTL {
		owner = rs.owner
	}
	n.mu.RUnlock()
	if owner == "" && n.tryAcquire(room) && n.submitIfOwned(room, in) {
		n.met.localRequest.Inc()
		return nil
	}
	return n.sendRequest(room, in)
}

// sendRequest publishes a request envelope to the room's owner, with a reply
// subject on which the server reports "no responders".
func (n *Node) sendRequest(room string, in *manager.Inbound) error {
	wr := n.getWriter()
	appendRequest(wr, room, in)
	err := n.publish(kindIn, n.subj.In(room), n.subj.ReplyTo(n.id, refOf(in)), wr.B)
	n.putWriter(wr)
	if err != nil {
		return fmt.Errorf("forward to room %q: %w", room, err)
	}
	return nil
}

// onRequest receives a request for a room this node owns.
func (n *Node) onRequest(m *nats.Msg) {
	n.met.in(kindIn, len(m.Data))
	room, in, err := decodeRequest(m.Data)
	if err == nil && m.Subject[len(n.subj.in):] != room {
		err = badEnvelope("room differs from subject", nil)
	}
	if err != nil {
		n.badEnvelope(kindIn, m.Subject, err)
		return
	}
	if !n.submitIfOwned(room, in) {
		// Given up while the request was queued: the sender retries and
		// reaches the next owner.
		n.met.drop(kindIn, reasonNotOwner)
		n.Reply(unavailable(in.Node, refOf(in), room, n.retryMs()))
	}
}

// onBatch receives a batch of a room this node watches.
func (n *Node) onBatch(m *nats.Msg) {
	n.met.in(kindOut, len(m.Data))
	origin, e, err := decodeBatch(m.Data)
	if err == nil && m.Subject[len(n.subj.out):] != e.Room {
		err = badEnvelope("room differs from subject", nil)
	}
	if err != nil {
		n.badEnvelope(kindOut, m.Subject, err)
		return
	}
	if origin == n.id {
		return // our own (NoEcho makes this unreachable)
	}
	w := n.wired.Load()
	if rs := n.lookup(e.Room); w == nil || rs == nil || !rs.watched.Load() {
		return // unwatched while queued
	}
	w.edge.DeliverBatch(e)
}

// onReply receives an answer from a remote owner for a local session.
func (n *Node) onReply(m *nats.Msg) {
	n.met.in(kindReply, len(m.Data))
	session, body, err := decodeReply(m.Data)
	if err != nil {
		n.badEnvelope(kindReply, m.Subject, err)
		return
	}
	n.deliverReply(manager.Reply{Node: n.id, Session: session, Body: body})
}

// onNoResponders receives the server's 503 for a request that reached no
// owner: answer the session "unavailable", forget the room's owner and try
// to take the room over.
func (n *Node) onNoResponders(m *nats.Msg) {
	n.met.in(kindNoResp, len(m.Data))
	ref, ok := n.subj.ParseReplyTo(n.id, m.Subject)
	room, ok2 := n.subj.RoomOfIn(m.Header.Get(subjectHeader))
	if !ok || !ok2 || m.Header.Get(statusHeader) != noRespondersStatus {
		n.badEnvelope(kindNoResp, m.Subject, badEnvelope("not a no-responders status", nil))
		return
	}
	n.met.noResponders.Inc()
	n.forgetOwner(room)
	n.requestAcquire(room)
	n.deliverReply(unavailable(n.id, ref, room, n.retryMs()))
}

// The server's no-responders answer: a header-only message with status 503
// and the request's subject (nats-server client.go).
const (
	statusHeader       = "Status"
	noRespondersStatus = "503"
	subjectHeader      = "Nats-Subject"
)

func (n *Node) retryMs() int { return int(n.cfg.RetryAfter.Milliseconds()) }

func (n *Node) badEnvelope(k kind, subject string, err error) {
	n.met.drop(k, reasonBadEnvelope)
	n.log.Warn("dropped malformed NATS message", "subject", subject, "err", err)
}
