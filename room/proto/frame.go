package proto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Preamble opens every TCP connection, client → server, once: "DMK" and the
// protocol version. WebSocket connections have no preamble.
var Preamble = [4]byte{'D', 'M', 'K', Version}

// FrameHeaderLen is the size of a TCP frame's length prefix (big-endian uint32,
// counting the body only).
const FrameHeaderLen = 4

// CheckPreamble validates the first four bytes of a TCP connection.
func CheckPreamble(b []byte) error {
	if len(b) < len(Preamble) || b[0] != 'D' || b[1] != 'M' || b[2] != 'K' {
		return CodeBadFrame
	}
	if b[3] != Version {
		return CodeBadVersion
	}
	return nil
}

// AppendFrame appends body as one TCP frame.
func AppendFrame(dst, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

// AppendMessageFrame encodes m straight into a TCP frame after dst.
func AppendMessageFrame(dst []byte, m Message) []byte {
	start := len(dst)
	w := Writer{B: append(dst, 0, 0, 0, 0)}
	m.AppendTo(&w)
	binary.BigEndian.PutUint32(w.B[start:], uint32(len(w.B)-start-FrameHeaderLen))
	return w.B
}

// ParseFrame finds one complete TCP frame at the start of b. It returns the body
// (a sub-slice of b) and the number of bytes the frame took; (nil, 0, nil) when b
// holds only part of a frame. A body longer than max is CodeTooLarge — decided
// from the header alone, before the body arrives — and an empty one CodeBadFrame.
func ParseFrame(b []byte, max int) (body []byte, n int, err error) {
	if len(b) < FrameHeaderLen {
		return nil, 0, nil
	}
	size := binary.BigEndian.Uint32(b)
	if size == 0 {
		return nil, 0, CodeBadFrame
	}
	if uint64(size) > uint64(max) {
		return nil, 0, CodeTooLarge
	}
	n = FrameHeaderLen + int(size)
	if len(b) < n {
		return nil, 0, nil
	}
	return b[FrameHeaderLen:n], n, nil
}

// FrameReader reads TCP frames from a stream (the client side).
type FrameReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// NewFrameReader reads frames of at most max bytes from r.
func NewFrameReader(r io.Reader, max int) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Next returns the next frame body. The slice is valid until the next call.
func (fr *FrameReader) Next() ([]byte, error) {
	var hdr [FrameHeaderLen]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size == 0 {
		return nil, CodeBadFrame
	}
	if uint64(size) > uint64(fr.max) {
		return nil, fmt.Errorf("frame of %d bytes, limit %d: %w", size, fr.max, CodeTooLarge)
	}
	if cap(fr.buf) < int(size) {
		fr.buf = make([]byte, size)
	}
	fr.buf = fr.buf[:size]
	if _, err := io.ReadFull(fr.r, fr.buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return fr.buf, nil
}
