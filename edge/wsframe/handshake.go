package wsframe

import (
	"bytes"
	"errors"
	"io"

	"github.com/gobwas/ws"
)

// ErrHeaderTooLarge is returned when the request head exceeds the limit
// before its end (the blank line) arrived; the response is a 431.
var ErrHeaderTooLarge = errors.New("wsframe: HTTP request head above the size limit")

var headEnd = []byte("\r\n\r\n")

// Handshake parses HTTP upgrade requests from bytes that already arrived.
// The zero value is not ready: use NewHandshake.
type Handshake struct {
	max int
	up  ws.Upgrader
	in  bytes.Reader
	out appender
}

// NewHandshake returns a handshake parser accepting request heads of at most
// maxHead bytes (request line, headers and the blank line).
func NewHandshake(maxHead int) *Handshake {
	return &Handshake{max: maxHead, up: ws.Upgrader{ReadBufferSize: maxHead}}
}

// Upgrade looks for a complete request head at the start of b; scanned is how
// many bytes of b an earlier call already searched (so a head trickling in one
// byte at a time is searched once, not quadratically).
//
// It returns:
//   - n == 0, resp == nil, err == nil: the head is incomplete; call again with
//     more bytes and next as scanned.
//   - err == nil: the head was a valid upgrade; resp (appended to dst) is the
//     101 response and n the head's length (bytes after it are WebSocket frames).
//   - err != nil: resp is an HTTP error response (400, 426, 431…) to write
//     before closing.
func (h *Handshake) Upgrade(dst, b []byte, scanned int) (resp []byte, n, next int, err error) {
	from := max(0, scanned-len(headEnd)+1)
	end := -1
	if from < len(b) {
		if i := bytes.Index(b[from:], headEnd); i >= 0 {
			end = from + i + len(headEnd)
		}
	}
	if end < 0 || end > h.max {
		if end > h.max || len(b) >= h.max {
			return append(dst, resp431...), 0, len(b), ErrHeaderTooLarge
		}
		return nil, 0, len(b), nil
	}
	h.in.Reset(b[:end])
	h.out.b = dst
	_, err = h.up.Upgrade(readWriter{&h.in, &h.out})
	resp, h.out.b = h.out.b, nil
	if err != nil && len(resp) == len(dst) {
		// gobwas answers every rejection it decides itself; a request line it
		// cannot parse returns before writing anything.
		resp = append(resp, resp400...)
	}
	return resp, end, end, err
}

var (
	resp400 = []byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
	resp431 = []byte("HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
)

type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

type readWriter struct {
	io.Reader
	io.Writer
}
