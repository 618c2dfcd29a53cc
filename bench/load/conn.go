package load

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/danmaku/danmaku/bench/scenario"
	"github.com/danmaku/danmaku/room/proto"
)

// readBufSize is a viewer's read buffer: a batch of a few dozen entries fits,
// so most frames are read in place (bigger ones borrow a pooled buffer). At
// ~19,000 viewers per worker a bigger buffer would cost RSS for nothing.
const readBufSize = 4 << 10

// SourceAddrs is how many loopback source addresses a worker spreads over:
// 127.0.0.2 through 127.0.0.254 (127.0.0.1 is left to whatever else runs).
const SourceAddrs = 253

// SourceAddr returns the local address viewer i binds to before dialing a
// loopback target, so connections spread over 127.0.0.2–127.0.0.254 and each
// source address uses few ephemeral ports (28,000 per address here); the zero
// Addr (let the kernel choose) for other targets or when spreading is off.
func SourceAddr(target netip.Addr, i int, spread bool) netip.Addr {
	if !spread || !target.Is4() || !target.IsLoopback() {
		return netip.Addr{}
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i%SourceAddrs)})
}

// endpoint is one target as a worker dials it.
type endpoint struct {
	url       string
	transport scenario.Transport
	addr      string     // host:port
	ip        netip.Addr // the host when it is a literal IP (zero otherwise)
}

func newEndpoint(target string) (endpoint, error) {
	tr, addr, err := scenario.ParseTarget(target)
	if err != nil {
		return endpoint{}, err
	}
	e := endpoint{url: target, transport: tr, addr: addr}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil {
			e.ip = ip
		} else if host == "localhost" {
			e.ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
	}
	return e, nil
}

// dial opens a transport connection from src (zero = any) and returns it
// with the reader to read frames from.
func (e endpoint) dial(ctx context.Context, src netip.Addr, timeout time.Duration) (*frameConn, error) {
	nd := net.Dialer{Timeout: timeout}
	if src.IsValid() {
		nd.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	if e.transport == scenario.TCP {
		c, err := nd.DialContext(ctx, "tcp", e.addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", e.addr, err)
		}
		if _, err := c.Write(proto.Preamble[:]); err != nil {
			c.Close()
			return nil, fmt.Errorf("write preamble: %w", err)
		}
		return newFrameConn(c, nil, false), nil
	}
	d := ws.Dialer{
		Timeout:         timeout,
		ReadBufferSize:  readBufSize,
		WriteBufferSize: 1 << 10, // the upgrade request only
		NetDial:         nd.DialContext,
	}
	c, br, _, err := d.Dial(ctx, e.url)
	if err != nil {
		return nil, fmt.Errorf("websocket %s: %w", e.url, err)
	}
	return newFrameConn(c, br, true), nil
}

// frameConn reads and writes protocol frames over TCP or WebSocket.
// Reading is the owner goroutine's; writing is serialised by the caller.
type frameConn struct {
	c        net.Conn
	br       *bufio.Reader
	ws       bool
	discard  int     // bytes of the previous frame still in br
	big      *[]byte // pooled buffer holding the previous frame, if any
	frag     []byte  // a fragmented WebSocket message being assembled
	hdr      [ws.MaxHeaderSize]byte
	onPingWS func(payload []byte) // answers a WebSocket ping
}

func newFrameConn(c net.Conn, br *bufio.Reader, isWS bool) *frameConn {
	if br == nil {
		br = bufio.NewReaderSize(c, readBufSize)
	}
	return &frameConn{c: c, br: br, ws: isWS}
}

// bigPool holds buffers for frames larger than the read buffer.
var bigPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// errServerClosed is a WebSocket close frame from the server.
var errServerClosed = errors.New("server closed the websocket")

// release returns what the previous frame held.
func (fc *frameConn) release() {
	if fc.discard > 0 {
		_, _ = fc.br.Discard(fc.discard)
		fc.discard = 0
	}
	if fc.big != nil {
		bigPool.Put(fc.big)
		fc.big = nil
	}
}

// Next returns the next frame body, valid until the next call.
func (fc *frameConn) Next() ([]byte, error) {
	fc.release()
	if fc.ws {
		return fc.nextWS()
	}
	return fc.nextTCP()
}

func (fc *frameConn) nextTCP() ([]byte, error) {
	h, err := fc.br.Peek(proto.FrameHeaderLen)
	if err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(h)
	if size == 0 {
		return nil, proto.CodeBadFrame
	}
	if size > proto.MaxServerFrame {
		return nil, fmt.Errorf("frame of %d bytes: %w", size, proto.CodeTooLarge)
	}
	return fc.payload(proto.FrameHeaderLen, int(size))
}

// payload returns n bytes after skip bytes of header: in place when they fit
// the read buffer, else copied into a pooled buffer.
func (fc *frameConn) payload(skip, n int) ([]byte, error) {
	if skip+n <= fc.br.Size() {
		p, err := fc.br.Peek(skip + n)
		if err != nil {
			return nil, unexpected(err)
		}
		fc.discard = skip + n
		return p[skip:], nil
	}
	if _, err := fc.br.Discard(skip); err != nil {
		return nil, unexpected(err)
	}
	bp := bigPool.Get().(*[]byte)
	if cap(*bp) < n {
		*bp = make([]byte, n)
	}
	b := (*bp)[:n]
	if _, err := io.ReadFull(fc.br, b); err != nil {
		bigPool.Put(bp)
		return nil, unexpected(err)
	}
	fc.big = bp
	return b, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (fc *frameConn) nextWS() ([]byte, error) {
	for {
		h, err := ws.ReadHeaderBuffer(fc.br, fc.hdr[:2:len(fc.hdr)])
		if err != nil {
			return nil, err
		}
		if h.Length > proto.MaxServerFrame || (h.OpCode.IsControl() && h.Length > 125) {
			return nil, fmt.Errorf("websocket frame of %d bytes: %w", h.Length, proto.CodeTooLarge)
		}
		p, err := fc.payload(0, int(h.Length))
		if err != nil {
			return nil, err
		}
		if h.Masked { // servers must not mask; unmask rather than misread
			ws.Cipher(p, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpBinary, ws.OpContinuation:
			if h.OpCode == ws.OpBinary && h.Fin && fc.frag == nil {
				return p, nil
			}
			if h.OpCode == ws.OpBinary && fc.frag != nil {
				return nil, fmt.Errorf("websocket: new message inside a fragmented one: %w", proto.CodeBadFrame)
			}
			if h.OpCode == ws.OpContinuation && fc.frag == nil {
				return nil, fmt.Errorf("websocket: continuation without a start: %w", proto.CodeBadFrame)
			}
			if len(fc.frag)+len(p) > proto.MaxServerFrame {
				return nil, fmt.Errorf("fragmented websocket message: %w", proto.CodeTooLarge)
			}
			fc.frag = append(fc.frag, p...)
			if !h.Fin {
				continue
			}
			msg := fc.frag
			fc.frag = nil
			return msg, nil
		case ws.OpPing:
			if fc.onPingWS != nil {
				fc.onPingWS(p)
			}
		case ws.OpPong:
		case ws.OpClose:
			return nil, errServerClosed
		default: // text and reserved opcodes are not this protocol
			return nil, fmt.Errorf("websocket opcode %d: %w", h.OpCode, proto.CodeBadFrame)
		}
		fc.release()
	}
}

// writeMsg encodes m as one frame and writes it with a deadline. The caller
// serialises writes (the viewer's mutex).
func (fc *frameConn) writeMsg(m proto.Message, deadline time.Time) error {
	bp := writePool.Get().(*[]byte)
	defer writePool.Put(bp)
	var b []byte
	off := 0
	if fc.ws {
		b, off = appendWSFrame((*bp)[:0], ws.OpBinary, func(w *proto.Writer) { m.AppendTo(w) })
	} else {
		b = proto.AppendMessageFrame((*bp)[:0], m)
	}
	*bp = b[:0]
	return fc.write(b[off:], deadline)
}

func (fc *frameConn) write(b []byte, deadline time.Time) error {
	_ = fc.c.SetWriteDeadline(deadline)
	_, err := fc.c.Write(b)
	return err
}

// writeControl writes a WebSocket control frame (pong, close).
func (fc *frameConn) writeControl(op ws.OpCode, payload []byte, deadline time.Time) error {
	bp := writePool.Get().(*[]byte)
	defer writePool.Put(bp)
	b, off := appendWSFrame((*bp)[:0], op, func(w *proto.Writer) { w.B = append(w.B, payload...) })
	*bp = b[:0]
	return fc.write(b[off:], deadline)
}

var writePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// appendWSFrame appends a masked client frame whose payload fill writes,
// with the shortest length form (RFC 6455 requires it): the payload is
// written after room for the longest header, and the header then goes
// right before it: the frame is buf[off:].
func appendWSFrame(dst []byte, op ws.OpCode, fill func(w *proto.Writer)) (buf []byte, off int) {
	start := len(dst)
	dst = append(dst, make([]byte, ws.MaxHeaderSize)...)
	w := proto.Writer{B: dst}
	fill(&w)
	dst = w.B
	body := start + ws.MaxHeaderSize
	n := len(dst) - body
	hl := 2 + 4 // first two bytes and the mask key
	switch {
	case n > 0xffff:
		hl += 8
	case n > 125:
		hl += 2
	}
	h := dst[body-hl : body]
	h[0] = 0x80 | byte(op) // FIN
	switch {
	case n > 0xffff:
		h[1] = 0x80 | 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	case n > 125:
		h[1] = 0x80 | 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
	default:
		h[1] = 0x80 | byte(n)
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	copy(h[hl-4:], mask[:])
	ws.Cipher(dst[body:], mask, 0)
	return dst, body - hl
}

// writeFrame encodes m as one frame and writes it to a polled socket
// (its viewer's mu is held).
func writeFrame(pc *pconn, isWS bool, m proto.Message) error {
	bp := writePool.Get().(*[]byte)
	defer writePool.Put(bp)
	var b []byte
	off := 0
	if isWS {
		b, off = appendWSFrame((*bp)[:0], ws.OpBinary, func(w *proto.Writer) { m.AppendTo(w) })
	} else {
		b = proto.AppendMessageFrame((*bp)[:0], m)
	}
	*bp = b[:0]
	return pc.write(b[off:])
}

// nextFrame finds one complete frame at the start of b, raw bytes read from
// the connection: its WebSocket opcode (binary for TCP), whether it is the
// last fragment, its payload and the bytes it took — n == 0 when b holds
// only part of a frame. A masked server frame is unmasked in place.
//
// Hot path: must not allocate.
func nextFrame(b []byte, isWS bool) (op ws.OpCode, fin bool, body []byte, n int, err error) {
	if !isWS {
		body, n, err = proto.ParseFrame(b, proto.MaxServerFrame)
		return ws.OpBinary, true, body, n, err
	}
	if len(b) < 2 {
		return 0, false, nil, 0, nil
	}
	fin, op = b[0]&0x80 != 0, ws.OpCode(b[0]&0x0f)
	if b[0]&0x70 != 0 {
		return 0, false, nil, 0, fmt.Errorf("websocket extension bits set: %w", proto.CodeBadFrame)
	}
	masked := b[1]&0x80 != 0
	size := uint64(b[1] & 0x7f)
	hl := 2
	switch size {
	case 126:
		if len(b) < 4 {
			return 0, false, nil, 0, nil
		}
		size, hl = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, false, nil, 0, nil
		}
		size, hl = binary.BigEndian.Uint64(b[2:]), 10
	}
	if size > proto.MaxServerFrame || (op.IsControl() && size > 125) {
		return 0, false, nil, 0, fmt.Errorf("websocket frame of %d bytes: %w", size, proto.CodeTooLarge)
	}
	var mask [4]byte
	if masked {
		if len(b) < hl+4 {
			return 0, false, nil, 0, nil
		}
		copy(mask[:], b[hl:hl+4])
		hl += 4
	}
	if uint64(len(b)-hl) < size {
		return 0, false, nil, 0, nil
	}
	body = b[hl : hl+int(size)]
	if masked { // servers must not mask; unmask rather than misread
		ws.Cipher(body, mask, 0)
	}
	return op, fin, body, hl + int(size), nil
}

// Close closes the connection.
func (fc *frameConn) Close() error { return fc.c.Close() }
