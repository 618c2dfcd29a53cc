package edge

import (
	"errors"
	"net/netip"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"github.com/danmaku/danmaku/edge/wsframe"
	"github.com/danmaku/danmaku/room/proto"
)

type phase uint8

const (
	phaseSniff  phase = iota // waiting for the first bytes
	phaseHTTP                // reading the WebSocket upgrade request
	phaseHello               // framing established, waiting for hello
	phaseReady               // hello answered
	phaseClosed              // OnClose ran
)

// conn is one client connection: gnet's Context. Only its loop touches it.
// It stays pointer-light — a million of them must fit in memory.
type conn struct {
	gc        gnet.Conn
	session   uint64
	ip        netip.Addr
	opened    int64 // Unix ms
	seen      int64 // Unix ms of the last complete frame
	listIdx   int32 // position in loop.list
	phase     phase
	ws        bool
	wsState   ws.State
	reason    closeReason // why we close it (closePeer until we decide)
	missedAny bool        // some slot has missed > 0
	scanned   uint16      // upgrade request bytes already searched for its end
	user      string
	name      string
	role      proto.Role
	allowed   []string // token's room allow-list; nil = any room
	rooms     []roomSlot
	frag      []byte // WebSocket fragments of one message, while it is incomplete
	tokens    float32
	tokAt     int64 // Unix ms of the last refill
	excess    uint32
	excessAt  int64
}

// readInput consumes every complete unit (preamble, upgrade, frame) that
// arrived and leaves partial ones in gnet's buffer for the next call. It
// never waits. It returns gnet.Close when the connection must end.
func (l *loop) readInput(c *conn, now int64) gnet.Action {
	buf, _ := c.gc.Peek(-1)
	off := 0
	act := gnet.None
	for act == gnet.None && off < len(buf) && c.phase != phaseClosed {
		before := c.phase
		var n int
		switch c.phase {
		case phaseSniff:
			n, act = l.sniffConn(c, buf[off:])
		case phaseHTTP:
			n, act = l.upgrade(c, buf[off:])
		default:
			if c.ws {
				n, act = l.readWS(c, buf[off:], now)
			} else {
				n, act = l.readTCP(c, buf[off:], now)
			}
		}
		off += n
		if n == 0 && c.phase == before {
			break // incomplete: wait for more bytes
		}
	}
	if c.phase == phaseClosed {
		return gnet.None // a failed write closed it already
	}
	if off > 0 && act == gnet.None {
		_, _ = c.gc.Discard(off)
	}
	return act
}

func (l *loop) sniffConn(c *conn, b []byte) (int, gnet.Action) {
	switch sniff(b) {
	case sniffMore:
		return 0, gnet.None
	case sniffHTTP:
		c.phase, c.ws = phaseHTTP, true
		l.srv.connsPending.Add(-1)
		l.srv.connsWS.Add(1)
		return 0, gnet.None
	case sniffTCP:
		c.phase = phaseHello
		l.srv.connsPending.Add(-1)
		l.srv.connsTCP.Add(1)
		if err := proto.CheckPreamble(b); err != nil {
			return len(proto.Preamble), l.reject(c, 0, proto.CodeBadVersion, closeProtocol)
		}
		return len(proto.Preamble), gnet.None
	}
	c.reason = closeBadPreamble
	return 0, gnet.Close
}

func (l *loop) upgrade(c *conn, b []byte) (int, gnet.Action) {
	resp, n, next, err := l.hs.Upgrade(l.out[:0], b, int(c.scanned))
	if resp == nil {
		c.scanned = uint16(min(next, maxHTTPHead))
		return 0, gnet.None
	}
	l.out = resp[:0]
	l.write(c, resp)
	if err != nil {
		c.reason = closeBadHTTP
		if errors.Is(err, wsframe.ErrHeaderTooLarge) {
			c.reason = closeHeaderTooLarge
		}
		return 0, gnet.Close
	}
	c.phase, c.wsState, c.scanned = phaseHello, ws.StateServerSide, 0
	return n, gnet.None
}

func (l *loop) readTCP(c *conn, b []byte, now int64) (int, gnet.Action) {
	body, n, err := proto.ParseFrame(b, l.srv.cfg.MaxClientFrame)
	if err != nil {
		return 0, l.reject(c, 0, codeOf(err), closeProtocol)
	}
	if n == 0 {
		return 0, gnet.None
	}
	c.seen = now
	return n, l.handleBody(c, body, now)
}

func (l *loop) readWS(c *conn, b []byte, now int64) (int, gnet.Action) {
	max := l.srv.cfg.MaxClientFrame
	f, n, err := l.wsp.Parse(b, max, c.wsState)
	switch {
	case errors.Is(err, wsframe.ErrTooLarge):
		return 0, l.reject(c, 0, proto.CodeTooLarge, closeProtocol)
	case errors.Is(err, ws.ErrProtocolMaskRequired):
		return 0, l.reject(c, 0, proto.CodeBadFrame, closeWSUnmasked)
	case err != nil:
		return 0, l.reject(c, 0, proto.CodeBadFrame, closeWSProtocol)
	case n == 0:
		return 0, gnet.None
	}
	c.seen = now
	switch f.Header.OpCode {
	case ws.OpBinary:
		if f.Header.Fin {
			return n, l.handleBody(c, f.Payload, now)
		}
		c.frag = append(c.frag[:0], f.Payload...)
		c.wsState = c.wsState.Set(ws.StateFragmented)
	case ws.OpContinuation:
		if len(c.frag)+len(f.Payload) > max {
			return 0, l.reject(c, 0, proto.CodeTooLarge, closeProtocol)
		}
		c.frag = append(c.frag, f.Payload...)
		if f.Header.Fin {
			body := c.frag
			c.frag, c.wsState = nil, c.wsState.Clear(ws.StateFragmented)
			return n, l.handleBody(c, body, now)
		}
	case ws.OpText:
		return 0, l.reject(c, 0, proto.CodeBadFrame, closeWSText)
	case ws.OpPing: // answered, within the same request budget as messages
		if ok, abuse := c.takeToken(now, &l.srv.cfg); !ok {
			l.ctr.badCode(proto.CodeRateLimited)
			if abuse {
				return 0, l.reject(c, 0, proto.CodeRateLimited, closeRateLimited)
			}
			return n, gnet.None
		}
		l.out = wsframe.AppendFrame(l.out[:0], ws.OpPong, f.Payload)
		l.write(c, l.out)
	case ws.OpClose:
		status := ws.StatusNormalClosure // echo the client's status when it is one a peer may send
		if len(f.Payload) >= 2 {
			if st := ws.StatusCode(uint16(f.Payload[0])<<8 | uint16(f.Payload[1])); ws.CheckCloseFrameData(st, "") == nil {
				status = st
			}
		}
		l.out = wsframe.AppendClose(l.out[:0], status, "")
		l.write(c, l.out)
		c.reason = closeWSClose
		return n, gnet.Close
	}
	return n, gnet.None // pong: liveness only
}

// handleBody decodes one frame body and acts on it.
func (l *loop) handleBody(c *conn, body []byte, now int64) gnet.Action {
	m, err := l.dec.Decode(body)
	code := proto.CodeOK
	if err != nil {
		code = codeOf(err)
		if code != proto.CodeUnknownType || c.phase != phaseReady {
			if code == proto.CodeUnknownType {
				code = proto.CodeHelloFirst
			}
			return l.reject(c, 0, code, closeProtocol)
		}
	}
	if c.phase == phaseHello {
		l.ctr.frameIn(m.Type())
		h, ok := m.(*proto.Hello)
		if !ok {
			return l.reject(c, requestID(m), proto.CodeHelloFirst, closeProtocol)
		}
		return l.hello(c, h, now)
	}
	hdr, _ := proto.PeekHeader(body) // decoded already: cannot fail
	l.ctr.frameIn(hdr.Type)
	// Every frame after hello costs a token, whatever it is: a flood gets
	// rate_limited answers (nothing forwarded), then the connection closes.
	if ok, abuse := c.takeToken(now, &l.srv.cfg); !ok {
		if abuse {
			return l.reject(c, hdr.ID, proto.CodeRateLimited, closeRateLimited)
		}
		l.ctr.badCode(proto.CodeRateLimited)
		l.refuse(c, m, hdr.ID, proto.CodeRateLimited)
		return gnet.None
	}
	if _, ok := m.(proto.Request); !ok {
		// An unknown type (the connection stays) or a server → client type.
		if code == proto.CodeOK {
			code = proto.CodeBadRequest
		}
		l.ctr.badCode(code)
		l.sendError(c, hdr.ID, code, "")
		return gnet.None
	}
	return l.request(c, m, now)
}

// codeOf maps a decode or framing error to its wire code.
func codeOf(err error) proto.Code {
	for _, c := range []proto.Code{proto.CodeTooLarge, proto.CodeInvalidText, proto.CodeUnknownType} {
		if errors.Is(err, c) {
			return c
		}
	}
	return proto.CodeBadFrame
}

func requestID(m proto.Message) uint32 {
	if r, ok := m.(proto.Request); ok {
		return r.RequestID()
	}
	return 0
}

// write hands bytes to gnet (copied into its buffer if the socket is full).
// A failed write makes gnet close the connection at once (OnClose runs).
func (l *loop) write(c *conn, b []byte) bool {
	if _, err := c.gc.Write(b); err != nil {
		return false
	}
	l.ctr.bytesOut.Add(uint64(len(b)))
	return c.phase != phaseClosed
}

// sendBody frames a message body for c's transport and writes it.
func (l *loop) sendBody(c *conn, body []byte) bool {
	if c.ws {
		l.out = wsframe.AppendFrame(l.out[:0], ws.OpBinary, body)
	} else {
		l.out = proto.AppendFrame(l.out[:0], body)
	}
	return l.write(c, l.out)
}

// send encodes m in the loop's scratch and writes it.
func (l *loop) send(c *conn, m proto.Message) bool {
	l.w.B = l.w.B[:0]
	m.AppendTo(&l.w)
	return l.sendBody(c, l.w.B)
}

func (l *loop) sendError(c *conn, id uint32, code proto.Code, room string) bool {
	l.errMsg = proto.Error{ID: id, Code: code, Room: room}
	return l.send(c, &l.errMsg)
}

func (l *loop) sendAck(c *conn, id uint32, code proto.Code) bool {
	l.ack = proto.Ack{ID: id, Code: code}
	if code == proto.CodeRateLimited || code == proto.CodeUnavailable {
		l.ack.RetryAfter = retryAfterMs
	}
	return l.send(c, &l.ack)
}

// retryAfterMs is what a client is told to wait after rate_limited or
// unavailable from the edge itself: a token refills in 1/ConnRate s (50 ms
// by default); a second also lets a full forward queue drain.
const retryAfterMs = 1000

// reject ends a connection with a reason, from inside OnTraffic (which then
// returns gnet.Close): an Error frame where the framing is known, a
// WebSocket close frame after it, gnet flushes what it can and closes.
func (l *loop) reject(c *conn, id uint32, code proto.Code, reason closeReason) gnet.Action {
	if reason.input() {
		l.ctr.badCode(code)
	}
	l.errMsg = proto.Error{ID: id, Code: code}
	return l.farewell(c, &l.errMsg, code, reason)
}

// farewell writes m (an Error or Reconnect) where the framing is known and,
// on WebSocket, a close frame; the caller closes.
func (l *loop) farewell(c *conn, m proto.Message, code proto.Code, reason closeReason) gnet.Action {
	c.reason = reason
	if c.phase >= phaseHello && c.phase != phaseClosed && l.send(c, m) && c.ws {
		l.out = wsframe.AppendClose(l.out[:0], wsStatus(code, reason), string(code))
		l.write(c, l.out)
	}
	return gnet.Close
}

// kill is reject from a loop task (scan, fan-out, control): it closes the
// connection itself. OnClose runs before kill returns.
func (l *loop) kill(c *conn, id uint32, code proto.Code, reason closeReason) {
	if c.phase == phaseClosed {
		return
	}
	l.reject(c, id, code, reason)
	l.closeNow(c)
}

// closeNow closes c from a loop task; OnClose runs before it returns (gnet
// first writes what it can of c's outbound buffer, without waiting).
func (l *loop) closeNow(c *conn) {
	if c.phase != phaseClosed {
		_ = l.el.Close(c.gc)
	}
}

// wsStatus is the WebSocket close status that goes with a wire code.
func wsStatus(code proto.Code, reason closeReason) ws.StatusCode {
	if reason == closeWSText {
		return ws.StatusUnsupportedData
	}
	switch code {
	case proto.CodeBadFrame, proto.CodeHelloFirst, proto.CodeBadVersion:
		return ws.StatusProtocolError
	case proto.CodeTooLarge:
		return ws.StatusMessageTooBig
	case proto.CodeInvalidText:
		return ws.StatusInvalidFramePayloadData
	case proto.CodeShutdown:
		return ws.StatusGoingAway
	}
	return ws.StatusPolicyViolation
}
