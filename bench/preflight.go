package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/danmaku/danmaku/bench/scenario"
	"github.com/danmaku/danmaku/room/auth"
	"github.com/danmaku/danmaku/room/proto"
)

// preflightTimeout bounds the check of one target.
const preflightTimeout = 5 * time.Second

// preflight connects once to each target and says hello with a token minted
// from the scenario's secret: a wrong address or secret is found before any
// worker starts. It returns one error per target (nil = reachable).
func preflight(ctx context.Context, sc *scenario.Scenario, user string) []error {
	errs := make([]error, len(sc.Targets))
	for i, t := range sc.Targets {
		errs[i] = probe(ctx, t, sc.Secret, user)
	}
	return errs
}

func probe(ctx context.Context, target, secret, user string) error {
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	tr, addr, err := scenario.ParseTarget(target)
	if err != nil {
		return err
	}
	tok, err := auth.Sign([]byte(secret), user, "", proto.RoleViewer, nil, time.Minute)
	if err != nil {
		return err
	}
	hello := proto.Encode(&proto.Hello{ID: 1, Version: proto.Version, SDK: "danmaku-bench", SDKVersion: "1", Platform: "bench", Token: tok})
	var c net.Conn
	var read func() ([]byte, error)
	if tr == scenario.TCP {
		var d net.Dialer
		if c, err = d.DialContext(ctx, "tcp", addr); err != nil {
			return fmt.Errorf("%s: %w", target, err)
		}
		defer c.Close()
		if _, err := c.Write(proto.AppendFrame(append([]byte(nil), proto.Preamble[:]...), hello)); err != nil {
			return fmt.Errorf("%s: %w", target, err)
		}
		br := bufio.NewReader(c)
		read = func() ([]byte, error) {
			var h [4]byte
			if _, err := io.ReadFull(br, h[:]); err != nil {
				return nil, err
			}
			n := binary.BigEndian.Uint32(h[:])
			if n == 0 || n > proto.MaxServerFrame {
				return nil, proto.CodeBadFrame
			}
			b := make([]byte, n)
			_, err := io.ReadFull(br, b)
			return b, err
		}
	} else {
		conn, br, _, err := ws.Dialer{}.Dial(ctx, target)
		if err != nil {
			return fmt.Errorf("%s: %w", target, err)
		}
		c = conn
		defer c.Close()
		if err := wsutil.WriteClientBinary(c, hello); err != nil {
			return fmt.Errorf("%s: %w", target, err)
		}
		var r io.Reader = c
		if br != nil { // it read past the upgrade response; it reads on from c
			r = br
		}
		rw := struct {
			io.Reader
			io.Writer
		}{r, c}
		read = func() ([]byte, error) { return wsutil.ReadServerBinary(rw) }
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	for {
		body, err := read()
		if err != nil {
			return fmt.Errorf("%s: no welcome: %w", target, err)
		}
		m, err := proto.Decode(body)
		if err != nil {
			return fmt.Errorf("%s: answer to hello: %w", target, err)
		}
		switch m := m.(type) {
		case *proto.Welcome:
			return nil
		case *proto.Error:
			if m.Code == proto.CodeUnauthorized {
				return fmt.Errorf("%s refused the bench's token (%s): check --secret: %w", target, m.Message, m.Code)
			}
			return fmt.Errorf("%s refused hello: %s: %w", target, m.Message, m.Code)
		}
	}
}
