package edge

import (
	"errors"
	"strconv"

	"github.com/panjf2000/gnet/v2"

	"github.com/danmaku/danmaku/room/auth"
	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// hello authenticates the connection (locally: no network call) and answers
// welcome. Any failure is an Error frame and close.
func (l *loop) hello(c *conn, h *proto.Hello, now int64) gnet.Action {
	cfg := &l.srv.cfg
	if h.Version != proto.Version {
		return l.reject(c, h.ID, proto.CodeBadVersion, closeProtocol)
	}
	switch {
	case h.Token == "" && cfg.Guests:
		c.user = "guest-" + strconv.FormatUint(c.session, 10)
		c.name, c.role = c.user, proto.RoleGuest
	case h.Token == "" || len(cfg.Secret) == 0:
		return l.reject(c, h.ID, proto.CodeUnauthorized, closeAuth)
	default:
		claims, err := auth.Verify(cfg.Secret, h.Token)
		if err != nil {
			code := proto.CodeUnauthorized
			if errors.Is(err, proto.CodeTokenExpired) {
				code = proto.CodeTokenExpired
			}
			return l.reject(c, h.ID, code, closeAuth)
		}
		c.user, c.name, c.role, c.allowed = claims.User(), claims.Name, claims.Role, claims.Rooms
	}
	c.phase = phaseReady
	c.tokens, c.tokAt = float32(cfg.ConnBurst), now
	l.send(c, &proto.Welcome{
		ID:         h.ID,
		Session:    l.srv.sessionName(c.session),
		Node:       cfg.NodeID,
		User:       c.user,
		Name:       c.name,
		Role:       c.role,
		Heartbeat:  int(cfg.Heartbeat.Milliseconds()),
		ServerTime: now,
		Limits: proto.Limits{
			MaxFrame:    cfg.MaxClientFrame,
			MaxText:     proto.MaxTextRunes,
			ChatPerSec:  int(cfg.ConnRate),
			MaxRooms:    cfg.MaxRoomsPerConn,
			ServerFrame: proto.MaxServerFrame,
		},
	})
	return gnet.None
}

// request handles one client request after hello (already rate-checked).
func (l *loop) request(c *conn, m proto.Message, now int64) gnet.Action {
	switch m := m.(type) {
	case *proto.Ping:
		l.pongTo(c, m.ID, now)
	case *proto.Join, *proto.Resume:
		l.join(c, m, now)
	case *proto.Leave:
		l.leave(c, m)
	case *proto.Chat, *proto.Like, *proto.Gift:
		l.publish(c, m, now)
	case *proto.Hello:
		return l.reject(c, m.ID, proto.CodeHelloFirst, closeProtocol)
	}
	return gnet.None
}

// refuse answers a request that was not carried out: Ack for the acked
// types (leave, chat, like, gift), Error for the others (m may be nil: an
// unknown type).
func (l *loop) refuse(c *conn, m proto.Message, id uint32, code proto.Code) {
	switch m.(type) {
	case *proto.Leave, *proto.Chat, *proto.Like, *proto.Gift:
		l.sendAck(c, id, code)
	default:
		room := ""
		if m != nil {
			room = proto.RoomOf(m)
		}
		l.sendError(c, id, code, room)
	}
}

func (l *loop) pongTo(c *conn, id uint32, now int64) {
	l.onlineBuf = l.onlineBuf[:0]
	for i := range c.rooms {
		ri := c.rooms[i].lr.info
		l.onlineBuf = append(l.onlineBuf, proto.RoomCount{Room: ri.name, Online: max(ri.online.Load(), 0)})
	}
	l.pong = proto.Pong{ID: id, ServerTime: now, Online: l.onlineBuf}
	l.send(c, &l.pong)
}

// join handles join and resume: the member is added to the loop's room index
// BEFORE the request is forwarded (the forwarder watches the room before
// forwarding), so no batch emitted after the owner's answer can be missed.
// An Error answer from the owner removes the membership again (reply).
func (l *loop) join(c *conn, m proto.Message, now int64) {
	id, room := requestID(m), proto.RoomOf(m)
	if err := proto.Validate(m); err != nil {
		l.ctr.badCode(proto.CodeBadRequest)
		l.sendError(c, id, proto.CodeBadRequest, room)
		return
	}
	if !c.allows(room) {
		l.ctr.badCode(proto.CodeForbidden)
		l.sendError(c, id, proto.CodeForbidden, room)
		return
	}
	i := c.slotIndex(room)
	added := i < 0
	if added {
		if len(c.rooms) >= l.srv.cfg.MaxRoomsPerConn {
			l.ctr.badCode(proto.CodeBadRequest)
			l.send(c, &proto.Error{ID: id, Code: proto.CodeBadRequest, Room: room, Message: "too many rooms on one connection"})
			return
		}
		c.rooms = append(c.rooms, l.addMember(c, room))
		i = len(c.rooms) - 1
	}
	c.rooms[i].joinID, c.rooms[i].joining = id, true
	if !l.forward(c, m, room, now) {
		if added {
			l.removeSlot(c, i)
		}
		l.sendError(c, id, proto.CodeUnavailable, room)
	}
}

func (l *loop) leave(c *conn, m *proto.Leave) {
	if err := proto.Validate(m); err != nil {
		l.ctr.badCode(proto.CodeBadRequest)
		l.sendAck(c, m.ID, proto.CodeBadRequest)
		return
	}
	i := c.slotIndex(m.Room)
	if i < 0 {
		l.sendAck(c, m.ID, proto.CodeNotJoined)
		return
	}
	l.removeSlot(c, i)
	l.sendAck(c, m.ID, proto.CodeOK)
}

// publish handles chat, like and gift: local checks, then the owner decides
// and acks (the ack comes back through DeliverReply).
func (l *loop) publish(c *conn, m proto.Message, now int64) {
	code := proto.CodeOK
	switch {
	case proto.Validate(m) != nil:
		code = proto.CodeBadRequest
	case c.slotIndex(proto.RoomOf(m)) < 0:
		code = proto.CodeNotJoined
	case c.role == proto.RoleGuest:
		code = proto.CodeForbidden
	case !l.forward(c, m, proto.RoomOf(m), now):
		code = proto.CodeUnavailable
	}
	if code != proto.CodeOK {
		if code != proto.CodeUnavailable {
			l.ctr.badCode(code)
		}
		l.sendAck(c, requestID(m), code)
	}
}

// forward queues the request for the forwarder goroutines; false when the
// queue is full (counted there).
func (l *loop) forward(c *conn, m proto.Message, room string, now int64) bool {
	in := &manager.Inbound{
		Node:     l.srv.cfg.NodeID,
		Session:  c.session,
		User:     c.user,
		Name:     c.name,
		Role:     c.role,
		Msg:      m,
		Received: now,
	}
	switch m.(type) {
	case *proto.Join, *proto.Resume:
		return l.srv.fwd.push(fwdOp{room: room, in: in, watch: true})
	}
	return l.srv.fwd.push(fwdOp{room: room, in: in})
}

func (c *conn) allows(room string) bool {
	if c.allowed == nil {
		return true
	}
	for _, r := range c.allowed {
		if r == room {
			return true
		}
	}
	return false
}

// takeToken takes a token from the connection's request bucket (ConnRate,
// ConnBurst). It reports whether the request may proceed, and whether the
// client is flooding: more than ConnAbuse × ConnRate refusals in a second.
func (c *conn) takeToken(now int64, cfg *Config) (ok, abuse bool) {
	if elapsed := now - c.tokAt; elapsed > 0 {
		c.tokens = min(float32(cfg.ConnBurst), c.tokens+float32(float64(elapsed)*cfg.ConnRate/1000))
		c.tokAt = now
	}
	if c.tokens >= 1 {
		c.tokens--
		return true, false
	}
	if now-c.excessAt >= 1000 {
		c.excessAt, c.excess = now, 0
	}
	c.excess++
	return false, cfg.ConnAbuse > 0 && float64(c.excess) > cfg.ConnAbuse*cfg.ConnRate
}
