package edge

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/danmaku/danmaku/edge/wsframe"
	"github.com/danmaku/danmaku/room/proto"
)

func TestSniff(t *testing.T) {
	cases := map[string]sniffResult{
		"":              sniffMore,
		"G":             sniffMore,
		"GET":           sniffMore,
		"GET ":          sniffHTTP,
		"GET /ws":       sniffHTTP,
		"D":             sniffMore,
		"DMK":           sniffMore,
		"DMK\x01":       sniffTCP,
		"DMK\x02":       sniffTCP, // version is checked by proto.CheckPreamble after
		"GEt ":          sniffBad,
		"POST / HTTP/1": sniffBad,
		"\x16\x03\x01":  sniffBad,
		"DX":            sniffBad,
	}
	for in, want := range cases {
		require.Equal(t, want, sniff([]byte(in)), "%q", in)
	}
}

// FuzzFirstBytes drives the detector the way readInput does: sniff, then the
// upgrade or the TCP preamble and framing, on every prefix of the input (as
// if it arrived byte by byte). A decision, once made on a prefix, never
// changes with more bytes, and nothing panics.
func FuzzFirstBytes(f *testing.F) {
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x82\x80abcd"))
	f.Add(append([]byte("DMK\x01"), proto.AppendFrame(nil, proto.Encode(&proto.Hello{ID: 1, Version: 1}))...))
	f.Add([]byte("DMK\x01\x00\x00\x00\x00"))
	f.Add([]byte("GET \r\n\r\n"))
	f.Add([]byte("\x00garbage"))
	hs := wsframe.NewHandshake(maxHTTPHead)
	f.Fuzz(func(t *testing.T, b []byte) {
		decided := sniffMore
		for i := 0; i <= len(b); i++ {
			r := sniff(b[:i])
			if decided != sniffMore {
				require.Equal(t, decided, r, "decision changed at %d bytes", i)
			}
			decided = r
		}
		switch decided {
		case sniffHTTP:
			resp, n, _, err := hs.Upgrade(nil, b, 0)
			require.LessOrEqual(t, n, len(b))
			require.True(t, err == nil || len(resp) > 0)
		case sniffTCP:
			rest := b[len(proto.Preamble):]
			for len(rest) > 0 {
				body, n, err := proto.ParseFrame(rest, proto.MaxClientFrame)
				if err != nil || n == 0 {
					break
				}
				_, _ = proto.Decode(body)
				rest = rest[n:]
			}
		}
	})
}
