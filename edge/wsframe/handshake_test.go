package wsframe

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const upgrade = "GET /ws HTTP/1.1\r\nHost: edge\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

func TestUpgrade(t *testing.T) {
	h := NewHandshake(8 << 10)
	t.Run("valid, with a frame right behind", func(t *testing.T) {
		in := []byte(upgrade + "\x82\x80....")
		resp, n, _, err := h.Upgrade(nil, in, 0)
		require.NoError(t, err)
		require.Equal(t, len(upgrade), n)
		s := string(resp)
		require.True(t, strings.HasPrefix(s, "HTTP/1.1 101 "), s)
		// RFC 6455 §1.3's example key and accept value.
		require.Contains(t, s, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")
	})
	t.Run("trickled: incomplete until the blank line", func(t *testing.T) {
		scanned := 0
		for i := 1; i < len(upgrade); i++ {
			resp, n, next, err := h.Upgrade(nil, []byte(upgrade[:i]), scanned)
			require.NoError(t, err)
			require.Nil(t, resp)
			require.Zero(t, n)
			require.Equal(t, i, next)
			scanned = next
		}
		resp, n, _, err := h.Upgrade(nil, []byte(upgrade), scanned)
		require.NoError(t, err)
		require.Equal(t, len(upgrade), n)
		require.True(t, strings.HasPrefix(string(resp), "HTTP/1.1 101 "))
	})
	cases := []struct {
		name, in, status string
	}{
		{"not an upgrade", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
		{"no host", "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", "400"},
		{"bad request line", "GET \r\n\r\n", "400"},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", "505"},
		{"wrong version", strings.Replace(upgrade, "Version: 13", "Version: 8", 1), "426"},
		{"head too large", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 9000), "431"},
		{"complete but too large", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\n", "431"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, _, _, err := h.Upgrade(nil, []byte(tc.in), 0)
			require.Error(t, err)
			require.True(t, strings.HasPrefix(string(resp), "HTTP/1.1 "+tc.status+" "), "%q", resp)
		})
	}
}

func FuzzUpgrade(f *testing.F) {
	f.Add([]byte(upgrade), 0)
	f.Add([]byte(upgrade[:40]), 10)
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), 0)
	f.Add([]byte("GET \r\n\r\n"), 0)
	f.Add([]byte("GET / HTTP/1.1\r\nSec-WebSocket-Extensions: permessage-deflate;;\r\n\r\n"), 0)
	h := NewHandshake(1024)
	f.Fuzz(func(t *testing.T, b []byte, scanned int) {
		scanned = max(0, min(scanned, len(b)))
		resp, n, next, err := h.Upgrade(nil, b, scanned)
		require.LessOrEqual(t, n, len(b))
		require.LessOrEqual(t, next, len(b))
		switch {
		case err != nil:
			require.True(t, strings.HasPrefix(string(resp), "HTTP/1.1 "), "an error always has a response")
		case resp == nil:
			require.Zero(t, n)
		default:
			require.Positive(t, n)
			require.True(t, strings.HasPrefix(string(resp), "HTTP/1.1 101 "))
		}
	})
}
