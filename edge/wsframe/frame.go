package wsframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"

	"github.com/gobwas/ws"
)

// ErrTooLarge is returned for a data frame whose declared payload exceeds the
// caller's limit; it is decided from the header, before the payload arrives.
var ErrTooLarge = errors.New("wsframe: frame above the size limit")

// Frame is one complete client frame.
type Frame struct {
	Header ws.Header
	// Payload is the unmasked payload, a sub-slice of the parsed input: valid
	// until the caller consumes (Discards) the input.
	Payload []byte
}

// Parser parses client frames without allocating. The zero value is ready;
// keep one per event loop (it is not safe for concurrent use).
type Parser struct {
	r   bytes.Reader
	hdr [ws.MaxHeaderSize - 2]byte // ws.ReadHeaderBuffer's scratch
}

// Parse finds one complete client frame at the start of b. It returns the
// frame and the number of bytes it took, or n == 0 and a nil error when b holds
// only part of a frame. state carries ws.StateServerSide and, between the
// fragments of a message, ws.StateFragmented. Errors: ErrTooLarge when a data
// frame declares more than max payload bytes, a ws.ProtocolError when the
// header breaks RFC 6455 (unmasked, reserved bits or opcode, a fragmented or
// oversized control frame, a continuation out of place), or
// ws.ErrHeaderLengthMSB/ErrHeaderLengthUnexpected for a malformed length.
//
// The payload is unmasked in place, so b must be writable and the frame must
// be consumed after a successful Parse (parsing the same bytes twice would
// unmask them twice).
func (p *Parser) Parse(b []byte, max int, state ws.State) (Frame, int, error) {
	p.r.Reset(b)
	h, err := ws.ReadHeaderBuffer(&p.r, p.hdr[:])
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return Frame{}, 0, nil
	case err != nil:
		return Frame{}, 0, err
	}
	if err := ws.CheckHeader(h, state); err != nil {
		return Frame{}, 0, err
	}
	if !h.OpCode.IsControl() && h.Length > int64(max) {
		return Frame{}, 0, ErrTooLarge
	}
	hsize := len(b) - p.r.Len()
	total := hsize + int(h.Length) // h.Length ≤ max or ≤ 125 here: no overflow
	if len(b) < total {
		return Frame{}, 0, nil
	}
	payload := b[hsize:total]
	if h.Masked {
		ws.Cipher(payload, h.Mask, 0)
	}
	return Frame{Header: h, Payload: payload}, total, nil
}

// AppendHeader appends the header of an unmasked, final server frame of the
// given opcode and payload length. It writes what ws.WriteHeader writes (the
// tests check it byte for byte) without ws.WriteHeader's per-call allocation:
// the edge calls it for every reply it sends.
func AppendHeader(dst []byte, op ws.OpCode, length int) []byte {
	b0 := 0x80 | byte(op) // FIN, no RSV bits
	switch {
	case length <= 125:
		return append(dst, b0, byte(length))
	case length <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, b0, 126), uint16(length))
	default:
		return binary.BigEndian.AppendUint64(append(dst, b0, 127), uint64(length))
	}
}

// AppendFrame appends a final, unmasked server frame holding payload.
func AppendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	return append(AppendHeader(dst, op, len(payload)), payload...)
}

// AppendClose appends a close frame with a status code and a short reason
// (truncated to fit a control frame's 125 bytes).
func AppendClose(dst []byte, code ws.StatusCode, reason string) []byte {
	if len(reason) > ws.MaxControlFramePayloadSize-2 {
		reason = reason[:ws.MaxControlFramePayloadSize-2]
	}
	dst = AppendHeader(dst, ws.OpClose, 2+len(reason))
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, reason...)
}
