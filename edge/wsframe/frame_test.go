package wsframe

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"
)

func masked(op ws.OpCode, fin bool, payload []byte) []byte {
	var b bytes.Buffer
	f := ws.MaskFrame(ws.NewFrame(op, fin, append([]byte(nil), payload...)))
	if err := ws.WriteFrame(&b, f); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func TestAppendHeaderMatchesGobwas(t *testing.T) {
	for _, op := range []ws.OpCode{ws.OpBinary, ws.OpText, ws.OpClose, ws.OpPing, ws.OpPong} {
		for _, n := range []int{0, 1, 125, 126, 127, 1000, 65535, 65536, 1 << 20} {
			var want bytes.Buffer
			require.NoError(t, ws.WriteHeader(&want, ws.Header{Fin: true, OpCode: op, Length: int64(n)}))
			require.Equal(t, want.Bytes(), AppendHeader(nil, op, n), "op %v length %d", op, n)
		}
	}
	require.Zero(t, testing.AllocsPerRun(100, func() { _ = AppendHeader(make([]byte, 0, 16)[:0], ws.OpBinary, 300) }))
}

func TestAppendClose(t *testing.T) {
	b := AppendClose(nil, ws.StatusPolicyViolation, strings.Repeat("x", 200))
	f, err := ws.ReadFrame(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, ws.OpClose, f.Header.OpCode)
	require.Len(t, f.Payload, ws.MaxControlFramePayloadSize)
	code, _ := ws.ParseCloseFrameData(f.Payload)
	require.Equal(t, ws.StatusPolicyViolation, code)
}

func TestParse(t *testing.T) {
	hello := []byte("hello, world")
	server := ws.StateServerSide
	var p Parser

	t.Run("complete, then every prefix is incomplete", func(t *testing.T) {
		frame := masked(ws.OpBinary, true, hello)
		for i := 0; i < len(frame); i++ {
			_, n, err := p.Parse(append([]byte(nil), frame[:i]...), 4096, server)
			require.NoError(t, err, "prefix %d", i)
			require.Zero(t, n, "prefix %d", i)
		}
		two := append(append([]byte(nil), frame...), masked(ws.OpPing, true, nil)...)
		f, n, err := p.Parse(two, 4096, server)
		require.NoError(t, err)
		require.Equal(t, len(frame), n)
		require.Equal(t, hello, f.Payload)
		require.True(t, f.Header.Fin)
		f, m, err := p.Parse(two[n:], 4096, server)
		require.NoError(t, err)
		require.Equal(t, len(two)-n, m)
		require.Equal(t, ws.OpPing, f.Header.OpCode)
	})
	t.Run("extended lengths", func(t *testing.T) {
		for _, size := range []int{126, 65535, 65536} {
			payload := bytes.Repeat([]byte{7}, size)
			f, n, err := p.Parse(masked(ws.OpBinary, true, payload), 1<<20, server)
			require.NoError(t, err)
			require.Equal(t, payload, f.Payload)
			require.Positive(t, n)
		}
	})
	cases := []struct {
		name  string
		in    []byte
		state ws.State
		want  error
	}{
		{"unmasked", func() []byte {
			var b bytes.Buffer
			_ = ws.WriteFrame(&b, ws.NewBinaryFrame(hello))
			return b.Bytes()
		}(), server, ws.ErrProtocolMaskRequired},
		{"too large, from the header alone", masked(ws.OpBinary, true, make([]byte, 5000))[:8], server, ErrTooLarge},
		{"64-bit length with the top bit", []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, server, ws.ErrHeaderLengthMSB},
		{"control frame too long", masked(ws.OpPing, true, make([]byte, 126)), server, ws.ErrProtocolControlPayloadOverflow},
		{"fragmented control frame", masked(ws.OpPing, false, nil), server, ws.ErrProtocolControlNotFinal},
		{"continuation out of place", masked(ws.OpContinuation, true, hello), server, ws.ErrProtocolContinuationUnexpected},
		{"new message inside a fragmented one", masked(ws.OpBinary, true, hello), server.Set(ws.StateFragmented), ws.ErrProtocolContinuationExpected},
		{"reserved opcode", masked(ws.OpCode(3), true, hello), server, ws.ErrProtocolOpCodeReserved},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, n, err := p.Parse(tc.in, 4096, tc.state)
			require.ErrorIs(t, err, tc.want)
			require.Zero(t, n)
		})
	}
	t.Run("no allocation", func(t *testing.T) {
		frame := masked(ws.OpBinary, true, hello)
		buf := make([]byte, len(frame))
		require.Zero(t, testing.AllocsPerRun(100, func() {
			copy(buf, frame)
			_, _, _ = p.Parse(buf, 4096, server)
		}))
	})
}

func FuzzParse(f *testing.F) {
	f.Add(masked(ws.OpBinary, true, []byte("hi")), uint8(0))
	f.Add(masked(ws.OpContinuation, true, []byte("hi")), uint8(ws.StateFragmented))
	f.Add(masked(ws.OpClose, true, []byte{3, 232}), uint8(0))
	f.Add(masked(ws.OpBinary, true, make([]byte, 300)), uint8(0))
	f.Add([]byte{0x82, 0xff, 0, 0, 0, 0, 0, 0, 0x10, 0}, uint8(0))
	f.Add([]byte{0x82}, uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, st uint8) {
		const max = 1024
		state := ws.StateServerSide | ws.State(st)&ws.StateFragmented
		var p Parser
		fr, n, err := p.Parse(append([]byte(nil), b...), max, state)
		if err != nil || n == 0 {
			require.Zero(t, n)
			return
		}
		require.LessOrEqual(t, n, len(b))
		require.LessOrEqual(t, len(fr.Payload), max)
		if fr.Header.OpCode.IsControl() {
			require.LessOrEqual(t, len(fr.Payload), ws.MaxControlFramePayloadSize)
		}
		// The same bytes cut short are incomplete, never a different frame.
		for _, cut := range []int{n - 1, n / 2} {
			_, m, err := p.Parse(append([]byte(nil), b[:cut]...), max, state)
			if err == nil {
				require.Zero(t, m, "a prefix of a frame parsed as a frame")
			} else if !errors.Is(err, ErrTooLarge) {
				require.Fail(t, "prefix error differs", "%v", err)
			}
		}
	})
}
