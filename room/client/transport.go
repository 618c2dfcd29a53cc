package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/danmaku/danmaku/room/proto"
)

// Buffer sizes of one connection (the read buffer is Config.ReadBuffer).
const (
	// wsWriteBuffer holds one client frame with its header: client bodies are
	// at most proto.MaxClientFrame (4 KiB), so every frame is one write.
	wsWriteBuffer = proto.MaxClientFrame + ws.MaxHeaderSize
	// maxKeptMessage: a buffer grown past this by a large frame (a resume
	// replay) is released instead of kept for the connection's lifetime.
	maxKeptMessage = 256 << 10
)

// wire is one connection to an edge, TCP or WebSocket: it writes protocol
// messages as frames (safe for concurrent use) and reads frame bodies (from
// one reader goroutine only).
type wire struct {
	nc           net.Conn
	writeTimeout time.Duration
	isWS         bool

	mu       sync.Mutex    // serialises writes
	buf      []byte        // encoding buffer, under mu
	preamble []byte        // TCP: sent in front of the first frame, under mu
	bw       *bufio.Writer // WebSocket: a frame is flushed in one write, under mu

	fr   *frameReader   // TCP
	wr   *wsutil.Reader // WebSocket
	ctrl wsutil.FrameHandlerFunc
	msg  bytes.Buffer
}

// parseURL accepts tcp://host:port and ws(s)://host:port/path.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse url: %w", err)
	}
	switch u.Scheme {
	case "tcp", "ws", "wss":
	default:
		return nil, fmt.Errorf("url %q: scheme must be tcp, ws or wss", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("url %q: no host", raw)
	}
	return u, nil
}

// dialWire opens the connection (TCP connect, or TCP/TLS plus the WebSocket
// upgrade). ctx bounds the whole dial.
func dialWire(ctx context.Context, u *url.URL, cfg *Config) (*wire, error) {
	netDial := cfg.NetDial
	if netDial == nil {
		var d net.Dialer
		netDial = d.DialContext
	}
	w := &wire{writeTimeout: cfg.WriteTimeout}
	if u.Scheme == "tcp" {
		nc, err := netDial(ctx, "tcp", u.Host)
		if err != nil {
			return nil, err
		}
		w.nc = nc
		w.preamble = proto.Preamble[:]
		w.fr = &frameReader{r: nc, size: cfg.ReadBuffer, buf: make([]byte, cfg.ReadBuffer)}
		return w, nil
	}
	d := ws.Dialer{NetDial: netDial, TLSConfig: cfg.TLSConfig}
	nc, br, _, err := d.Dial(ctx, u.String())
	if err != nil {
		return nil, err
	}
	if br == nil { // nothing arrived with the handshake response
		br = bufio.NewReaderSize(nc, cfg.ReadBuffer)
	}
	w.nc, w.isWS = nc, true
	w.bw = bufio.NewWriterSize(nc, wsWriteBuffer)
	w.ctrl = wsutil.ControlFrameHandler(lockedWriter{w}, ws.StateClientSide)
	w.wr = &wsutil.Reader{
		Source:         br,
		State:          ws.StateClientSide,
		MaxFrameSize:   proto.MaxServerFrame,
		MaxMessageSize: proto.MaxServerFrame,
		OnIntermediate: w.ctrl,
	}
	return w, nil
}

// write encodes m and writes it as one frame.
func (w *wire) write(m proto.Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.nc.SetWriteDeadline(time.Now().Add(w.writeTimeout)); err != nil {
		return err
	}
	if !w.isWS {
		w.buf = proto.AppendMessageFrame(append(w.buf[:0], w.preamble...), m)
		w.preamble = nil
		_, err := w.nc.Write(w.buf)
		return err
	}
	pw := proto.Writer{B: w.buf[:0]}
	m.AppendTo(&pw)
	w.buf = pw.B
	// WriteClientBinary masks w.buf in place: it is ours until the next write.
	if err := wsutil.WriteClientBinary(w.bw, w.buf); err != nil {
		return err
	}
	return w.bw.Flush()
}

// lockedWriter lets the WebSocket control handler answer pings and closes
// between data frames. Each of its Write calls is one whole control frame.
type lockedWriter struct{ w *wire }

func (l lockedWriter) Write(p []byte) (int, error) {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	if err := l.w.nc.SetWriteDeadline(time.Now().Add(l.w.writeTimeout)); err != nil {
		return 0, err
	}
	return l.w.nc.Write(p)
}

// next returns the next frame body, valid until the next call.
func (w *wire) next() ([]byte, error) {
	if !w.isWS {
		return w.fr.next()
	}
	for {
		hdr, err := w.wr.NextFrame()
		if err != nil {
			return nil, err
		}
		if hdr.OpCode.IsControl() {
			if err := w.ctrl(hdr, w.wr); err != nil {
				return nil, err // a close frame ends here, as wsutil.ClosedError
			}
			continue
		}
		if hdr.OpCode != ws.OpBinary { // text is not this protocol: skip it
			if err := w.wr.Discard(); err != nil {
				return nil, err
			}
			continue
		}
		if w.msg.Cap() > maxKeptMessage {
			w.msg = bytes.Buffer{}
		}
		w.msg.Reset()
		if _, err := w.msg.ReadFrom(w.wr); err != nil {
			return nil, err
		}
		return w.msg.Bytes(), nil
	}
}

// frameReader reads TCP frames (proto.ParseFrame) through a buffer of
// Config.ReadBuffer bytes that grows only while a larger frame is read: idle
// connections stay small, which is what lets the bench hold many per process.
type frameReader struct {
	r          io.Reader
	size       int
	buf        []byte
	start, end int // unread bytes: buf[start:end]
}

// next returns the next frame body, valid until the next call.
func (f *frameReader) next() ([]byte, error) {
	for {
		body, n, err := proto.ParseFrame(f.buf[f.start:f.end], proto.MaxServerFrame)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			f.start += n
			return body, nil
		}
		// A partial frame: move it to the front of a buffer that can hold it.
		need := f.size
		if f.end-f.start >= proto.FrameHeaderLen { // ParseFrame checked it against the limit
			need = max(need, proto.FrameHeaderLen+int(binary.BigEndian.Uint32(f.buf[f.start:])))
		}
		if need > len(f.buf) || (len(f.buf) > maxKeptMessage && need <= f.size) {
			nb := make([]byte, need)
			f.end = copy(nb, f.buf[f.start:f.end])
			f.buf, f.start = nb, 0
		} else if f.start > 0 {
			f.end = copy(f.buf, f.buf[f.start:f.end])
			f.start = 0
		}
		m, err := f.r.Read(f.buf[f.end:])
		f.end += m
		if m == 0 && err != nil {
			if err == io.EOF && f.end > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// close closes the connection; on WebSocket it first tries a close frame.
func (w *wire) close() {
	if w.isWS {
		f := ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
		if w.mu.TryLock() { // never wait behind a stuck write to close
			_ = w.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			if b, err := ws.CompileFrame(f); err == nil {
				_, _ = w.nc.Write(b)
			}
			w.mu.Unlock()
		}
	}
	_ = w.nc.Close()
}

// handshake sends hello and waits for welcome. A refusal is returned as an
// error wrapping its proto.Code (errors.Is(err, proto.CodeUnauthorized)).
func handshake(ctx context.Context, w *wire, hello *proto.Hello) (_ *proto.Welcome, err error) {
	if d, ok := ctx.Deadline(); ok {
		_ = w.nc.SetReadDeadline(d)
	}
	// Unblock the read if ctx ends first.
	stop := context.AfterFunc(ctx, func() { _ = w.nc.SetReadDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() && err == nil { // ctx ended at the finish line: the deadline is poisoned
			err = ctx.Err()
		}
		if err == nil {
			err = w.nc.SetReadDeadline(time.Time{})
		}
	}()
	if err := w.write(hello); err != nil {
		return nil, fmt.Errorf("send hello: %w", err)
	}
	var dec proto.Decoder
	for {
		body, err := w.next()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("wait for welcome: %w", err)
		}
		m, err := dec.Decode(body)
		if err != nil {
			return nil, fmt.Errorf("wait for welcome: %w", err)
		}
		switch m := m.(type) {
		case *proto.Welcome:
			return m, nil
		case *proto.Error:
			return nil, fmt.Errorf("hello refused: %w", codeErr(m.Code, m.Message))
		}
		// Nothing else is expected before welcome; ignore it (forward compatible).
	}
}

// codeErr wraps a wire code with the server's detail text.
func codeErr(code proto.Code, msg string) error {
	if code == proto.CodeOK {
		code = proto.CodeInternal // an error without a code is a server bug
	}
	if msg == "" {
		return code
	}
	return fmt.Errorf("%w: %s", code, msg)
}
