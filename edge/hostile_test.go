package edge

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/danmaku/danmaku/room/auth"
	"github.com/danmaku/danmaku/room/proto"
)

const upgradeRequest = "GET /ws HTTP/1.1\r\nHost: edge\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

func rawConn(t *testing.T, s *Server) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readHTTPHead reads a response head from br.
func readHTTPHead(t *testing.T, conn net.Conn, br *bufio.Reader) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
	var head strings.Builder
	for !strings.HasSuffix(head.String(), "\r\n\r\n") {
		line, err := br.ReadString('\n')
		require.NoError(t, err, "response so far: %q", head.String())
		head.WriteString(line)
	}
	return head.String()
}

// rawWS upgrades a raw connection by hand and returns a client over it.
func rawWS(t *testing.T, s *Server) *client {
	t.Helper()
	conn := rawConn(t, s)
	_, err := conn.Write([]byte(upgradeRequest))
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	head := readHTTPHead(t, conn, br)
	require.True(t, strings.HasPrefix(head, "HTTP/1.1 101 "), head)
	return &client{t: t, conn: conn, br: br, ws: true}
}

// expectCloseStatus reads until the server's WebSocket close frame.
func (c *client) expectCloseStatus(want ws.StatusCode) {
	c.t.Helper()
	for {
		_, err := c.readBody()
		var cl errClosedByServer
		if errors.As(err, &cl) {
			require.Equal(c.t, want, cl.status)
			return
		}
		require.NoError(c.t, err, "no close frame")
	}
}

func signed(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tk, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return tk
}

func TestBadTokens(t *testing.T) {
	s, _ := startServer(t, nil)
	now := time.Now()
	cases := []struct {
		name  string
		token string
		code  proto.Code
	}{
		{"alg none", signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType,
			jwt.MapClaims{"sub": "u", "exp": now.Add(time.Hour).Unix()}), proto.CodeUnauthorized},
		{"wrong key", func() string {
			tk, err := auth.Sign([]byte("another key"), "u", "", proto.RoleViewer, nil, time.Hour)
			require.NoError(t, err)
			return tk
		}(), proto.CodeUnauthorized},
		{"expired", signed(t, jwt.SigningMethodHS256, testSecret,
			jwt.MapClaims{"sub": "u", "exp": now.Add(-time.Hour).Unix()}), proto.CodeTokenExpired},
		{"HS512", signed(t, jwt.SigningMethodHS512, testSecret, jwt.MapClaims{"sub": "u"}), proto.CodeUnauthorized},
		{"garbage", "not.a.jwt", proto.CodeUnauthorized},
		{"unknown role", signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "u", "role": "god"}), proto.CodeUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			transports(t, func(t *testing.T, useWS bool) {
				c := dial(t, s, useWS)
				c.send(&proto.Hello{ID: 9, Version: proto.Version, Token: tc.token})
				e := c.expectError(tc.code, true)
				require.Equal(t, uint32(9), e.ID)
			})
		})
	}
}

func TestProtocolErrors(t *testing.T) {
	s, _ := startServer(t, nil)
	good := token(t, "u", proto.RoleViewer)
	oversize := bytes.Repeat([]byte{0}, proto.MaxClientFrame+1)
	cases := []struct {
		name   string
		hello  bool   // send a valid hello first
		body   []byte // frame body to send
		code   proto.Code
		fatal  bool
		status ws.StatusCode // WebSocket close status when fatal
	}{
		{"message before hello", false, proto.Encode(&proto.Join{ID: 1, Room: "r"}), proto.CodeHelloFirst, true, ws.StatusProtocolError},
		{"unknown type before hello", false, []byte{0x82, 0xa1, 't', 99, 0xa2, 'i', 'd', 4}, proto.CodeHelloFirst, true, ws.StatusProtocolError},
		{"bad version", false, proto.Encode(&proto.Hello{ID: 1, Version: 2, Token: good}), proto.CodeBadVersion, true, ws.StatusProtocolError},
		{"malformed msgpack", false, []byte{0xc1, 0xc1}, proto.CodeBadFrame, true, ws.StatusProtocolError},
		{"invalid utf-8", false, proto.Encode(&proto.Hello{ID: 1, Version: 1, SDK: "\xff\xfe"}), proto.CodeInvalidText, true, ws.StatusInvalidFramePayloadData},
		{"too large", false, oversize, proto.CodeTooLarge, true, ws.StatusMessageTooBig},
		{"second hello", true, proto.Encode(&proto.Hello{ID: 1, Version: 1, Token: good}), proto.CodeHelloFirst, true, ws.StatusProtocolError},
		{"unknown type keeps the connection", true, []byte{0x82, 0xa1, 't', 99, 0xa2, 'i', 'd', 4}, proto.CodeUnknownType, false, 0},
		{"server type from a client", true, proto.Encode(&proto.Pong{ID: 4}), proto.CodeBadRequest, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			transports(t, func(t *testing.T, useWS bool) {
				c := dial(t, s, useWS)
				if tc.hello {
					c.hello(good)
				}
				require.NoError(t, c.sendBody(tc.body))
				e := expect[*proto.Error](c)
				require.Equal(t, tc.code, e.Code)
				if !tc.fatal {
					require.Equal(t, uint32(4), e.ID, "the error carries the request id")
					c.send(&proto.Ping{ID: 77})
					require.Equal(t, uint32(77), expect[*proto.Pong](c).ID, "still served after the error")
					return
				}
				if useWS {
					c.expectCloseStatus(tc.status)
				}
				c.expectClosed()
			})
		})
	}
	st := s.Stats()
	require.NotZero(t, st.BadInput["too_large"])
	require.NotZero(t, st.BadInput["invalid_text"])
	require.NotZero(t, st.BadInput["unknown_type"])
}

func TestTCPFraming(t *testing.T) {
	s, _ := startServer(t, nil)
	t.Run("bad preamble version", func(t *testing.T) {
		conn := rawConn(t, s)
		_, err := conn.Write([]byte{'D', 'M', 'K', 2})
		require.NoError(t, err)
		c := &client{t: t, conn: conn, fr: proto.NewFrameReader(conn, proto.MaxServerFrame)}
		c.expectError(proto.CodeBadVersion, true)
	})
	t.Run("empty frame", func(t *testing.T) {
		c := dialTCP(t, s)
		_, err := c.conn.Write([]byte{0, 0, 0, 0})
		require.NoError(t, err)
		c.expectError(proto.CodeBadFrame, true)
	})
	t.Run("oversize header alone", func(t *testing.T) {
		c := dialTCP(t, s)
		_, err := c.conn.Write([]byte{0, 0x10, 0, 0}) // 1 MiB announced, nothing sent
		require.NoError(t, err)
		c.expectError(proto.CodeTooLarge, true)
	})
	t.Run("garbage first bytes", func(t *testing.T) {
		before := s.Stats().Closes["bad_preamble"]
		conn := rawConn(t, s)
		_, err := conn.Write([]byte("\x16\x03\x01 TLS hello?"))
		require.NoError(t, err)
		_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
		_, err = io.ReadAll(conn)
		require.NoError(t, err, "closed without a reply")
		eventually(t, 5*time.Second, func() bool { return s.Stats().Closes["bad_preamble"] == before+1 }, "counted")
	})
	t.Run("split across segments and coalesced", func(t *testing.T) {
		c := dialTCP(t, s)
		hello := proto.AppendFrame(nil, proto.Encode(&proto.Hello{ID: 1, Version: 1, Token: token(t, "u", proto.RoleViewer)}))
		for i := range hello {
			_, err := c.conn.Write(hello[i : i+1])
			require.NoError(t, err)
		}
		expect[*proto.Welcome](c)
		// Two pings in one write, the second split with a third.
		var b []byte
		for id := uint32(1); id <= 3; id++ {
			b = proto.AppendFrame(b, proto.Encode(&proto.Ping{ID: id}))
		}
		cut := len(b) - 3
		_, err := c.conn.Write(b[:cut])
		require.NoError(t, err)
		for id := uint32(1); id <= 2; id++ {
			require.Equal(t, id, expect[*proto.Pong](c).ID)
		}
		_, err = c.conn.Write(b[cut:])
		require.NoError(t, err)
		require.Equal(t, uint32(3), expect[*proto.Pong](c).ID)
	})
}

func TestWebSocketProtocol(t *testing.T) {
	s, _ := startServer(t, nil)
	hello := proto.Encode(&proto.Hello{ID: 1, Version: 1, Token: token(t, "u", proto.RoleViewer)})
	t.Run("unmasked frame", func(t *testing.T) {
		before := s.Stats().Closes["ws_unmasked"]
		c := rawWS(t, s)
		require.NoError(t, ws.WriteFrame(c.conn, ws.NewBinaryFrame(hello)))
		c.expectError(proto.CodeBadFrame, false)
		c.expectCloseStatus(ws.StatusProtocolError)
		c.expectClosed()
		eventually(t, 5*time.Second, func() bool { return s.Stats().Closes["ws_unmasked"] == before+1 }, "counted")
	})
	t.Run("text frame", func(t *testing.T) {
		c := rawWS(t, s)
		require.NoError(t, ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewTextFrame([]byte(`{"t":1}`)))))
		c.expectError(proto.CodeBadFrame, false)
		c.expectCloseStatus(ws.StatusUnsupportedData)
	})
	t.Run("reserved bits", func(t *testing.T) {
		c := rawWS(t, s)
		f := ws.MaskFrame(ws.NewBinaryFrame(hello))
		f.Header.Rsv = ws.Rsv(true, false, false)
		require.NoError(t, ws.WriteFrame(c.conn, f))
		c.expectError(proto.CodeBadFrame, false)
		c.expectCloseStatus(ws.StatusProtocolError)
	})
	t.Run("fragmented hello with a ping between fragments", func(t *testing.T) {
		c := rawWS(t, s)
		parts := [][]byte{hello[:5], hello[5:20], hello[20:]}
		frames := []ws.Frame{
			ws.NewFrame(ws.OpBinary, false, parts[0]),
			ws.NewPingFrame([]byte("still there?")),
			ws.NewFrame(ws.OpContinuation, false, parts[1]),
			ws.NewFrame(ws.OpContinuation, true, parts[2]),
		}
		for _, f := range frames {
			require.NoError(t, ws.WriteFrame(c.conn, ws.MaskFrame(f)))
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(readTimeout))
		h, err := ws.ReadHeader(c.br)
		require.NoError(t, err)
		require.Equal(t, ws.OpPong, h.OpCode)
		p := make([]byte, h.Length)
		_, err = io.ReadFull(c.br, p)
		require.NoError(t, err)
		require.Equal(t, "still there?", string(p))
		expect[*proto.Welcome](c)
	})
	t.Run("fragments above the frame limit", func(t *testing.T) {
		c := rawWS(t, s)
		c.hello(token(t, "u", proto.RoleViewer))
		chunk := bytes.Repeat([]byte{0x90}, proto.MaxClientFrame/2+1)
		require.NoError(t, ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewFrame(ws.OpBinary, false, chunk))))
		require.NoError(t, ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewFrame(ws.OpContinuation, true, chunk))))
		c.expectError(proto.CodeTooLarge, false)
		c.expectCloseStatus(ws.StatusMessageTooBig)
	})
	t.Run("client close", func(t *testing.T) {
		c := rawWS(t, s)
		require.NoError(t, ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "bye")))))
		c.expectCloseStatus(ws.StatusGoingAway)
		c.expectClosed()
	})
	t.Run("HTTP request that is not an upgrade", func(t *testing.T) {
		conn := rawConn(t, s)
		_, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: edge\r\n\r\n"))
		require.NoError(t, err)
		head := readHTTPHead(t, conn, bufio.NewReader(conn))
		require.True(t, strings.HasPrefix(head, "HTTP/1.1 400 "), head)
	})
	t.Run("malformed request line", func(t *testing.T) {
		conn := rawConn(t, s)
		_, err := conn.Write([]byte("GET \r\n\r\n"))
		require.NoError(t, err)
		head := readHTTPHead(t, conn, bufio.NewReader(conn))
		require.True(t, strings.HasPrefix(head, "HTTP/1.1 400 "), head)
	})
	t.Run("10 MB of headers", func(t *testing.T) {
		before := s.Stats().Closes["header_too_large"]
		conn := rawConn(t, s)
		written := make(chan error, 1)
		go func() {
			line := []byte("X-Padding: " + strings.Repeat("a", 1000) + "\r\n")
			_, err := conn.Write([]byte("GET /ws HTTP/1.1\r\n"))
			for n := 0; err == nil && n < 10<<20; n += len(line) {
				_, err = conn.Write(line)
			}
			written <- err
		}()
		// The server answers 431 and closes; the client may see the answer or,
		// with its 10 MB still unread by the server, a reset.
		_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
		resp, err := io.ReadAll(conn)
		if err == nil {
			require.True(t, bytes.HasPrefix(resp, []byte("HTTP/1.1 431 ")), "%q", resp)
		} else {
			var ne net.Error
			require.False(t, errors.As(err, &ne) && ne.Timeout(), "not closed: %v", err)
		}
		require.Error(t, <-written, "the server stopped reading long before 10 MB")
		eventually(t, 5*time.Second, func() bool { return s.Stats().Closes["header_too_large"] == before+1 }, "counted")
	})
}

// TestTrickledHandshakeDoesNotBlock sends a WebSocket upgrade and the hello
// one byte at a time on a server with ONE event loop; between any two bytes
// another client on the same loop completes a ping round trip.
func TestTrickledHandshakeDoesNotBlock(t *testing.T) {
	s, _ := startServer(t, func(c *Config) {
		c.Loops = 1
		c.ConnRate, c.ConnBurst = 1e6, 1e6 // hundreds of pings in a row are the point here
	})
	other := dialTCP(t, s)
	other.hello(token(t, "other", proto.RoleViewer))
	pings := 0
	roundTrip := func() {
		pings++
		other.send(&proto.Ping{ID: uint32(pings)})
		require.Equal(t, uint32(pings), expect[*proto.Pong](other).ID)
	}
	conn := rawConn(t, s)
	for _, b := range []byte(upgradeRequest) {
		_, err := conn.Write([]byte{b})
		require.NoError(t, err)
		roundTrip()
	}
	br := bufio.NewReader(conn)
	require.True(t, strings.HasPrefix(readHTTPHead(t, conn, br), "HTTP/1.1 101 "))
	var frame bytes.Buffer
	require.NoError(t, ws.WriteFrame(&frame, ws.MaskFrame(ws.NewBinaryFrame(
		proto.Encode(&proto.Hello{ID: 1, Version: 1, Token: token(t, "slow", proto.RoleViewer)})))))
	for _, b := range frame.Bytes() {
		_, err := conn.Write([]byte{b})
		require.NoError(t, err)
		roundTrip()
	}
	c := &client{t: t, conn: conn, br: br, ws: true}
	require.Equal(t, "slow", expect[*proto.Welcome](c).User)
	t.Logf("%d ping round trips served while one handshake trickled in", pings)
}
