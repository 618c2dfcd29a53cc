package edge

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/danmaku/danmaku/room/proto"
)

// The idle-memory measurement runs its clients in a child process (this
// test binary re-executed), so the heap delta is the server's alone.
const helperEnv = "EDGE_TEST_HELPER_CLIENTS" // "addr n token"

// TestIdleWSMemory measures the server heap per idle WebSocket connection
// (upgraded, hello answered, one room joined) for 5,000 connections.
func TestIdleWSMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 5,000 connections")
	}
	const n = 5000
	s, _ := startServer(t, nil)

	runtime.GC()
	debug.FreeOSMemory()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %s", helperEnv, s.Addr(), n, token(t, "mem", proto.RoleViewer)))
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready\n", line)
	eventually(t, 30*time.Second, func() bool { return s.Stats().Members == n }, "%d members", n)

	runtime.GC()
	runtime.ReadMemStats(&after)
	perConn := float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / n
	t.Logf("idle WebSocket connections: %d, server heap in use +%.0f KiB, %.2f KiB per connection",
		n, float64(int64(after.HeapInuse)-int64(before.HeapInuse))/1024, perConn/1024)
	require.Less(t, perConn, 4096.0, "an idle connection should cost well under 4 KiB of heap")

	stdin.Close()
	require.NoError(t, cmd.Wait())
	eventually(t, 30*time.Second, func() bool { return s.Stats().Conns == 0 }, "clients gone")
}

// helperClientMain runs the child side of TestIdleWSMemory when the helper
// environment variable is set: it opens the connections, says "ready", and
// holds them until stdin closes.
func helperClientMain() bool {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		return false
	}
	f := strings.Fields(spec)
	n, _ := strconv.Atoi(f[1])
	addr, tk := f[0], f[2]
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 64)
		mu   sync.Mutex
		fail error
	)
	conns := make([]io.Closer, 0, n)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conn, err := helperClient(addr, tk, i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fail = err
				return
			}
			conns = append(conns, conn)
		}()
	}
	wg.Wait()
	if fail != nil {
		fmt.Fprintln(os.Stderr, "helper:", fail)
		os.Exit(1)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	os.Exit(0)
	return true
}

func helperClient(addr, tk string, i int) (io.Closer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, "ws://"+addr+"/ws")
	if err != nil {
		return nil, err
	}
	if br == nil {
		br = bufio.NewReader(conn)
	}
	send := func(m proto.Message) error {
		return ws.WriteFrame(conn, ws.MaskFrame(ws.NewBinaryFrame(proto.Encode(m))))
	}
	recv := func() error {
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		h, err := ws.ReadHeader(br)
		if err == nil {
			_, err = io.CopyN(io.Discard, br, h.Length)
		}
		return err
	}
	if err := send(&proto.Hello{ID: 1, Version: proto.Version, Token: tk}); err != nil {
		return nil, err
	}
	if err := recv(); err != nil {
		return nil, err
	}
	if err := send(&proto.Join{ID: 2, Room: "mem-" + strconv.Itoa(i%10)}); err != nil {
		return nil, err
	}
	if err := recv(); err != nil {
		return nil, err
	}
	return conn, nil
}
