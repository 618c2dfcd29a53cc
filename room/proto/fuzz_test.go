package proto

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode: no input panics, every error is a Code, and whatever decodes
// re-encodes to something that decodes to the same message.
func FuzzDecode(f *testing.F) {
	for _, m := range messages() {
		f.Add(Encode(m))
	}
	f.Add([]byte{0x81, 0xa1, 't', 0xcc, 0xff})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Decode(body)
		if err != nil {
			var c Code
			if !errors.As(err, &c) {
				t.Fatalf("error %v is not a Code", err)
			}
			return
		}
		again, err := Decode(Encode(m))
		if err != nil {
			t.Fatalf("re-decode of %#v: %v", m, err)
		}
		if !bytes.Equal(Encode(again), Encode(m)) {
			t.Fatalf("unstable encoding for %#v", m)
		}
	})
}

// FuzzParseFrame: the TCP frame splitter never panics, never returns a body
// over the limit, and never consumes more than it was given.
func FuzzParseFrame(f *testing.F) {
	f.Add(AppendFrame(nil, Encode(&Ping{ID: 1})), 64)
	f.Add([]byte{0, 0, 0, 0}, 64)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1}, MaxClientFrame)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		if max <= 0 || max > MaxServerFrame {
			max = MaxClientFrame
		}
		for len(b) > 0 {
			body, n, err := ParseFrame(b, max)
			if err != nil || n == 0 {
				return
			}
			if n > len(b) || len(body) > max || len(body) != n-FrameHeaderLen {
				t.Fatalf("ParseFrame(%x) = %d bytes body, n=%d", b, len(body), n)
			}
			b = b[n:]
		}
	})
}

// FuzzFrameReader: the client's stream reader handles any byte stream.
func FuzzFrameReader(f *testing.F) {
	var stream []byte
	for _, m := range messages() {
		stream = AppendMessageFrame(stream, m)
	}
	f.Add(stream)
	f.Add([]byte{0, 0, 0, 5, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := NewFrameReader(bytes.NewReader(b), 1<<16)
		for i := 0; i < 1000; i++ {
			body, err := fr.Next()
			if err != nil {
				return
			}
			_, _ = Decode(body)
		}
	})
}
