package fanout

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// controlFlushTimeout bounds Control's wait for the NATS server to confirm
// it has the event (one round trip; seconds mean the connection is down).
const controlFlushTimeout = 2 * time.Second

// Control makes an operator action effective on every node (the admin API).
// A sanction or policy is stored first (WithState), so an owner that takes
// the room later loads it; then every node applies the event: owners at
// once in admission, every edge for kicks. A notice for one room goes
// through the room's reliable lane (Broadcast). An error after the event was
// stored and applied here means other nodes may not have received it (NATS
// down): they see it when they next load the room.
func (n *Node) Control(ctx context.Context, ev ControlEvent) error {
	if err := ev.Validate(); err != nil {
		return err
	}
	if ev.Kind == ControlNotice && ev.Room != "" {
		_, err := n.Broadcast(ctx, ev.Room, manager.Publish{Entry: ev.noticeEntry()})
		return err
	}
	if err := n.persist(ctx, &ev); err != nil {
		return fmt.Errorf("control %v: %w", ev.Kind, err)
	}
	var sendErr error
	if !n.solo {
		w := n.getWriter()
		appendControl(w, n.id, &ev)
		sendErr = n.publish(kindCtl, n.subj.ctl, "", w.B)
		n.putWriter(w)
	}
	n.applyControl(&ev) // our own publish does not come back (NoEcho)
	if sendErr == nil && !n.solo {
		// Once the server has it, every connected node gets it.
		fctx, cancel := context.WithTimeout(ctx, controlFlushTimeout)
		sendErr = n.nc.FlushWithContext(fctx)
		cancel()
	}
	if sendErr != nil {
		return fmt.Errorf("control %v: stored and applied here, not sent to the cluster: %w", ev.Kind, sendErr)
	}
	return nil
}

// persist stores a sanction or policy in the shared state.
func (n *Node) persist(ctx context.Context, ev *ControlEvent) error {
	if n.state == nil {
		return nil
	}
	switch ev.Kind {
	case ControlSanction:
		if ev.Lifted {
			return n.state.LiftSanction(ctx, ev.Room, ev.User, ev.Ban)
		}
		return n.state.SetSanction(ctx, ev.Sanction())
	case ControlPolicy:
		return n.state.SetPolicy(ctx, ev.Room, ev.Policy)
	}
	return nil
}

// onControl receives another node's control event.
func (n *Node) onControl(m *nats.Msg) {
	n.met.in(kindCtl, len(m.Data))
	origin, ev, err := decodeControl(m.Data)
	if err != nil {
		n.badEnvelope(kindCtl, m.Subject, err)
		return
	}
	n.log.Debug("control event", "kind", ev.Kind, "origin", origin, "room", ev.Room)
	n.applyControl(ev)
}

// applyControl applies an event on this node. The manager applies
// sanctions and policies to the rooms it owns and ignores the others.
func (n *Node) applyControl(ev *ControlEvent) {
	w := n.wired.Load()
	if w == nil {
		return
	}
	switch ev.Kind {
	case ControlSanction:
		w.mgr.ApplySanction(ev.Sanction(), ev.Lifted)
		if ev.Ban && !ev.Lifted {
			w.edge.Kick(ev.User, ev.Room, proto.CodeBanned)
		}
	case ControlPolicy:
		w.mgr.ApplyPolicy(ev.Room, ev.Policy)
		if ev.Policy.Closed {
			w.edge.Kick("", ev.Room, proto.CodeRoomClosed)
		}
	case ControlKick:
		w.edge.Kick(ev.User, ev.Room, proto.CodeKicked)
	case ControlNotice: // every room (a one-room notice never gets here)
		entry := ev.noticeEntry()
		now := time.Now().UnixMilli()
		for _, room := range n.roomsWhere(isOwned) {
			n.submitIfOwned(room, &manager.Inbound{Node: n.id, Session: internalSession, Role: proto.RoleSystem,
				Publish: &manager.Publish{Entry: entry}, Received: now})
		}
	case ControlDrain:
		if ev.Node == n.id {
			n.spawn(n.drainAll)
		}
	}
}

// drainAll is a drain ordered by a control event: rooms first (their new
// owners exist before the members reconnect elsewhere), then connections.
func (n *Node) drainAll() {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.DrainTimeout)
	defer cancel()
	n.log.Info("draining on operator request")
	if err := n.Drain(ctx); err != nil {
		n.log.Warn("drain: rooms not all handed over", "err", err)
	}
	if w := n.wired.Load(); w != nil {
		if err := w.edge.Drain(ctx); err != nil {
			n.log.Warn("drain: connections", "err", err)
		}
	}
}
