package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/danmaku/danmaku/room/manager"
)

// Ownership timing constants, with their reasons.
const (
	// acquireBackoff spaces a node's attempts to acquire a room after one
	// failed (another node holds it, or Redis did not answer): while a dead
	// owner's lease runs out, or Redis is down, every request for the room
	// would otherwise cost a Redis round trip (or a timeout).
	acquireBackoff = 100 * time.Millisecond
	// handoverParallel is how many rooms Drain hands over at once: each
	// waits for a NATS round trip and a manager flush.
	handoverParallel = 16
)

// leaseLoop is the ownership goroutine: every LeaseRenew it renews owned
// rooms' leases, checks the owners of watched rooms (acquiring those nobody
// owns: a dead owner is replaced within TTL + LeaseRenew), forgets stale
// rooms and counts slow-consumer drops; in between it acquires rooms a
// no-responders status pointed at.
func (n *Node) leaseLoop() {
	t := time.NewTicker(n.cfg.LeaseRenew)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case room := <-n.acquireq:
			n.tryAcquire(room)
		case <-t.C:
			n.renew()
			n.checkOwners()
			n.prune(time.Now())
			n.collectDrops()
		}
	}
}

// requestAcquire asks the lease goroutine to try to acquire room.
func (n *Node) requestAcquire(room string) {
	if n.draining.Load() {
		return
	}
	select {
	case n.acquireq <- room:
	default: // full: the next lease check catches up
	}
}

// tryAcquire makes this node the room's owner if nobody is, and reports
// whether it is the owner afterwards. Concurrent calls for one room share
// one attempt; after a failed one, attempts are spaced by acquireBackoff.
func (n *Node) tryAcquire(room string) bool {
	if n.draining.Load() || n.closed.Load() {
		return false
	}
	n.mu.Lock()
	rs := n.roomLocked(room)
	switch {
	case rs.owned.Load():
		n.mu.Unlock()
		return true
	case rs.releasing || time.Since(rs.refused) < acquireBackoff:
		n.mu.Unlock()
		return false
	case rs.acquiring != nil:
		ch := rs.acquiring
		n.mu.Unlock()
		<-ch // the attempt in flight ends within LeaseOpTimeout
		return rs.owned.Load()
	}
	ch := make(chan struct{})
	rs.acquiring = ch
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		rs.acquiring = nil
		n.mu.Unlock()
		close(ch)
	}()

	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.LeaseOpTimeout)
	lease, err := n.own.Acquire(ctx, room)
	cancel()
	if err != nil || lease.Owner != n.id {
		if err != nil {
			n.leaseError("acquire", room, err)
		} else {
			n.noteOwner(room, lease.Owner)
		}
		n.mu.Lock()
		rs.refused = time.Now()
		n.mu.Unlock()
		return false
	}
	return n.becomeOwner(room, lease)
}

// becomeOwner starts serving a room whose lease this node holds: requests
// from other nodes arrive on P.in.<room>; the manager activates the room on
// its first request. It reports whether the node owns the room: a node that
// started draining meanwhile gives the lease straight back.
func (n *Node) becomeOwner(room string, lease Lease) bool {
	n.mu.Lock()
	if n.draining.Load() {
		n.mu.Unlock()
		n.releaseLease(room)
		return false
	}
	rs := n.roomLocked(room)
	prev := rs.owner
	rs.owner, rs.ownerSeen, rs.until = n.id, time.Now(), lease.Until
	if rs.owned.Load() {
		n.mu.Unlock()
		return true
	}
	rs.owned.Store(true)
	rs.idleSince = time.Time{}
	sub, err := n.subscribe(kindIn, rs.inSubj, ownerQueue, n.cfg.InPending, n.onRequest)
	rs.inSub = sub
	n.mu.Unlock()
	if err != nil {
		// Local members are still served; remote requests get 503 and retry.
		n.log.Error("cannot subscribe to an owned room's requests", "room", room, "err", err)
	}
	n.flush() // interest reaches the server before others read the lease and send
	n.met.ownership.WithLabelValues(ownAcquired).Inc()
	if prev != "" && prev != n.id {
		n.met.ownership.WithLabelValues(ownChanged).Inc()
		n.log.Info("took over room", "room", room, "previous_owner", prev)
	}
	if w := n.wired.Load(); w != nil {
		w.mgr.SetOnline(room, n.online.total(room))
	}
	return true
}

// submitIfOwned hands in to the manager if this node owns room. The read
// lock is held across SubmitTo (which never blocks) so a handover cannot
// call Manager.Release between the check and the submit. SubmitTo, not
// Submit: a Publish carries no room of its own.
func (n *Node) submitIfOwned(room string, in *manager.Inbound) bool {
	w := n.wired.Load()
	n.mu.RLock()
	defer n.mu.RUnlock()
	rs := n.rooms[room]
	if w == nil || rs == nil || !rs.owned.Load() {
		return false
	}
	w.mgr.SubmitTo(room, in)
	return true
}

// renew extends the leases of owned rooms and gives up those another node
// holds. When the store is unreachable the rooms are kept (chat keeps
// flowing, the store fences reliable appends) unless StrictLease.
func (n *Node) renew() {
	rooms := n.roomsWhere(isOwned)
	if len(rooms) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.LeaseOpTimeout)
	leases, err := n.own.Renew(ctx, rooms)
	cancel()
	if err != nil {
		if !n.renewFailing {
			n.log.Warn("cannot renew room leases", "rooms", len(rooms), "err", err,
				"keeping_rooms", !n.cfg.StrictLease)
		}
		n.renewFailing = true
		n.leaseError("renew", "", err)
		if n.cfg.StrictLease {
			n.giveUpExpiring(rooms, time.Now().Add(n.cfg.LeaseMargin))
		}
		return
	}
	if n.renewFailing {
		n.log.Info("room leases renewed again", "rooms", len(rooms))
		n.renewFailing = false
	}
	for i, room := range rooms {
		if l := leases[i]; l.Owner != n.id {
			n.giveUp(room, l.Owner)
		} else if !n.setUntil(room, l.Until) {
			// Handed over while the renewal ran, which took the freed
			// lease again: free it.
			n.releaseLease(room)
		}
	}
}

// giveUpExpiring gives up the rooms whose lease ends before deadline.
func (n *Node) giveUpExpiring(rooms []string, deadline time.Time) {
	for _, room := range rooms {
		n.mu.RLock()
		until := time.Time{}
		if rs := n.rooms[room]; rs != nil {
			until = rs.until
		}
		n.mu.RUnlock()
		if !until.IsZero() && deadline.After(until) {
			n.giveUp(room, "")
		}
	}
}

// setUntil records a renewed lease; false when the room is no longer owned.
func (n *Node) setUntil(room string, until time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	rs := n.rooms[room]
	if rs == nil || (!rs.owned.Load() && !rs.releasing) {
		return false
	}
	rs.until = until
	return true
}

// checkOwners looks up the owners of watched rooms this node does not own
// and acquires those nobody owns.
func (n *Node) checkOwners() {
	if n.draining.Load() {
		return
	}
	rooms := n.roomsWhere(func(rs *roomState) bool { return rs.watched.Load() && !rs.owned.Load() && !rs.releasing })
	if len(rooms) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.LeaseOpTimeout)
	owners, err := n.own.Owners(ctx, rooms)
	cancel()
	if err != nil {
		n.leaseError("owners", "", err)
		return
	}
	for i, room := range rooms {
		n.noteOwner(room, owners[i])
		if owners[i] == "" {
			n.tryAcquire(room)
		}
	}
}

// noteOwner records who owns room, counting a change of owner.
func (n *Node) noteOwner(room, owner string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	rs := n.roomLocked(room)
	if rs.owner != "" && owner != "" && owner != rs.owner {
		n.met.ownership.WithLabelValues(ownChanged).Inc()
	}
	rs.owner, rs.ownerSeen = owner, time.Now()
}

// forgetOwner drops the cached owner of room: the next request for it tries
// to acquire it.
func (n *Node) forgetOwner(room string) {
	n.mu.Lock()
	if rs := n.rooms[room]; rs != nil {
		rs.owner = ""
	}
	n.mu.Unlock()
}

// giveUp stops owning a room whose lease is gone (another node holds it, or
// StrictLease expired it): no handover, the manager flushes and stops.
func (n *Node) giveUp(room, newOwner string) {
	n.mu.Lock()
	rs := n.rooms[room]
	if rs == nil || !rs.owned.Load() || rs.releasing {
		n.mu.Unlock()
		return
	}
	rs.owned.Store(false)
	sub := rs.inSub
	rs.inSub, rs.until = nil, time.Time{}
	rs.owner, rs.ownerSeen = newOwner, time.Now()
	n.mu.Unlock()
	n.unsubscribe(sub)
	if w := n.wired.Load(); w != nil {
		w.mgr.Release(room)
	}
	n.met.ownership.WithLabelValues(ownLost).Inc()
	n.log.Warn("lost room ownership", "room", room, "new_owner", newOwner)
}

// handOver gives an owned room up gracefully: requests already delivered
// are submitted (the subscription is drained), the manager flushes them and
// stops the room, then the lease is deleted so the next node takes it at
// once. Requests sent meanwhile get "unavailable" and are retried.
func (n *Node) handOver(ctx context.Context, room string) error {
	n.mu.Lock()
	rs := n.rooms[room]
	if rs == nil || !rs.owned.Load() || rs.releasing {
		n.mu.Unlock()
		return nil
	}
	rs.releasing = true
	sub := rs.inSub
	rs.inSub = nil
	n.mu.Unlock()

	n.drainSub(ctx, sub)
	n.mu.Lock() // waits for Submits in flight (submitIfOwned)
	rs.owned.Store(false)
	rs.until, rs.owner = time.Time{}, ""
	n.mu.Unlock()
	if w := n.wired.Load(); w != nil {
		w.mgr.Release(room)
	}
	err := n.own.Release(ctx, room)
	n.mu.Lock()
	rs.releasing = false
	n.mu.Unlock()
	n.met.ownership.WithLabelValues(ownReleased).Inc()
	if err != nil {
		n.leaseError("release", room, err)
		return fmt.Errorf("hand over room %q: %w", room, err)
	}
	return nil
}

// drainSub unsubscribes s after its pending messages were handled.
func (n *Node) drainSub(ctx context.Context, s *subscription) {
	if s == nil {
		return
	}
	n.subsMu.Lock()
	n.countDrops(s)
	delete(n.subs, s)
	n.subsMu.Unlock()
	closed := s.sub.StatusChanged(nats.SubscriptionClosed)
	if err := s.sub.Drain(); err != nil {
		_ = s.sub.Unsubscribe()
		return
	}
	select {
	case <-closed:
	case <-ctx.Done():
		_ = s.sub.Unsubscribe()
	}
}

// releaseLease deletes this node's lease of a room it no longer owns.
func (n *Node) releaseLease(room string) {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.LeaseOpTimeout)
	defer cancel()
	if err := n.own.Release(ctx, room); err != nil {
		n.leaseError("release", room, err)
	}
}

// Drain hands every owned room over (see handOver) and stops acquiring
// rooms; the node keeps delivering batches to its members. Call it before
// Close on a graceful shutdown; a ControlDrain event calls it too.
func (n *Node) Drain(ctx context.Context) error {
	n.mu.Lock() // an acquisition either completed (listed below) or sees draining
	n.draining.Store(true)
	n.mu.Unlock()
	rooms := n.roomsWhere(isOwned)
	errs := make([]error, len(rooms))
	sem := make(chan struct{}, handoverParallel)
	var wg sync.WaitGroup
	for i, room := range rooms {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			errs[i] = n.handOver(ctx, room)
			<-sem
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("drain node %s: %w", n.id, err)
	}
	return nil
}

func (n *Node) leaseError(op, room string, err error) {
	n.met.leaseErrors.WithLabelValues(op).Inc()
	n.log.Debug("ownership call failed", "op", op, "room", room, "err", err)
}
