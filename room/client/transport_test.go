package client

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/danmaku/danmaku/room/proto"
)

// chunked returns at most k bytes per Read, like a slow socket.
type chunked struct {
	b []byte
	k int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.k)], c.b)
	c.b = c.b[n:]
	return n, nil
}

func newFrameReader(r io.Reader, size int) *frameReader {
	return &frameReader{r: r, size: size, buf: make([]byte, size)}
}

// checkFrames reads stream and checks every body is the next frame of it.
func checkFrames(t *testing.T, fr *frameReader, stream []byte) (frames int, err error) {
	off := 0
	for {
		body, err := fr.next()
		if err != nil {
			return frames, err
		}
		n := int(binary.BigEndian.Uint32(stream[off:]))
		if n != len(body) || !bytes.Equal(body, stream[off+4:off+4+n]) {
			t.Fatalf("frame %d at %d: got %d bytes, want %d", frames, off, len(body), n)
		}
		off += 4 + n
		frames++
	}
}

func TestFrameReader(t *testing.T) {
	big := bytes.Repeat([]byte{0xc0}, maxKeptMessage+10)
	var stream []byte
	for _, body := range [][]byte{{0x80}, bytes.Repeat([]byte{1}, 700), big, {0x80}, {0x81, 0xa1, 't', 1}} {
		stream = proto.AppendFrame(stream, body)
	}
	for _, k := range []int{1, 3, 512, 1 << 20} {
		fr := newFrameReader(&chunked{b: stream, k: k}, 512)
		n, err := checkFrames(t, fr, stream)
		if n != 5 || err != io.EOF {
			t.Fatalf("chunk %d: %d frames, %v", k, n, err)
		}
		if len(fr.buf) > maxKeptMessage {
			t.Fatalf("chunk %d: buffer kept at %d bytes after the large frame", k, len(fr.buf))
		}
	}
	cases := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"truncated body", []byte{0, 0, 0, 5, 1, 2}, io.ErrUnexpectedEOF},
		{"empty frame", []byte{0, 0, 0, 0}, proto.CodeBadFrame},
		{"too large", []byte{0, 0x20, 0, 0}, proto.CodeTooLarge},
		{"clean end", nil, io.EOF},
	}
	for _, tc := range cases {
		if _, err := checkFrames(t, newFrameReader(&chunked{b: tc.stream, k: 2}, 512), tc.stream); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func FuzzFrameReader(f *testing.F) {
	f.Add(proto.AppendFrame(proto.AppendFrame(nil, []byte{0x80}), []byte{0x81, 0xa1, 't', 1}), uint8(3), uint16(16))
	f.Add([]byte{0, 0, 0, 9, 1}, uint8(1), uint16(600))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8, size uint16) {
		fr := newFrameReader(&chunked{b: stream, k: int(chunk)%64 + 1}, max(int(size)%4096, 16))
		_, _ = checkFrames(t, fr, stream) // bodies are exactly the stream's frames; never a panic
	})
}
