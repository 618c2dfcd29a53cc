package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/danmaku/danmaku/room/client"
	"github.com/danmaku/danmaku/room/proto"
)

// natsProc is a nats-server process of the test's own (Debian's package or
// any nats-server on PATH), on a free port, that the test may kill and start
// again on the same port.
type natsProc struct {
	t    *testing.T
	addr string
	conf string
	cmd  *exec.Cmd
}

func startNATSProc(t *testing.T) *natsProc {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Skip("nats-server not installed")
	}
	n := &natsProc{t: t, addr: freeAddr(t), conf: filepath.Join(t.TempDir(), "nats.conf")}
	host, port, _ := net.SplitHostPort(n.addr)
	// max_payload: a batch may be 1 MiB plus its envelope (docs/OPERATIONS.md).
	if err := os.WriteFile(n.conf, []byte(fmt.Sprintf("host: %s\nport: %s\nmax_payload: 2MB\n", host, port)), 0o600); err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(bin, "-c", n.conf)
	n.start()
	t.Cleanup(n.kill)
	return n
}

func (n *natsProc) url() string { return "nats://" + n.addr }

func (n *natsProc) start() {
	n.t.Helper()
	n.cmd = exec.Command(n.cmd.Path, "-c", n.conf)
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	waitListening(n.t, n.addr, "nats-server")
}

func (n *natsProc) kill() {
	if n.cmd != nil && n.cmd.Process != nil && n.cmd.ProcessState == nil {
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		_ = n.cmd.Wait()
	}
}

// tcpProxy forwards a listener to a target; cut closes every connection and
// refuses new ones until heal (a node cut off from NATS, then brought back).
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cutOff bool
	conns  map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cutOff {
				p.mu.Unlock()
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns[c], p.conns[u] = true, true
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close(); c.Close() }()
			go func() { _, _ = io.Copy(c, u); u.Close(); c.Close() }()
		}
	}()
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutOff = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *tcpProxy) heal() {
	p.mu.Lock()
	p.cutOff = false
	p.mu.Unlock()
}

// giftRun sends gifts from one SDK client until stop, recording acked seqs.
type giftRun struct {
	mu    sync.Mutex
	acked map[uint64]string
	done  chan struct{}
}

func (g *giftRun) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.acked)
}

func sendGifts(t *testing.T, ctx context.Context, c *client.Client, room, prefix string, stop <-chan struct{}) *giftRun {
	g := &giftRun{acked: map[uint64]string{}, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			key := fmt.Sprintf("%s-%d", prefix, i)
			a, err := c.GiftWithKey(ctx, room, "rose", 1, key)
			if err != nil {
				t.Errorf("gift %s: %v", key, err)
				return
			}
			g.mu.Lock()
			if prev, dup := g.acked[a.Seq]; dup {
				t.Errorf("seq %d acked for %s and %s", a.Seq, prev, key)
			}
			g.acked[a.Seq] = key
			g.mu.Unlock()
			time.Sleep(30 * time.Millisecond) // pacing
		}
	}()
	return g
}

// checkExactlyOnce: every watcher saw exactly the acked seqs, in order.
func checkExactlyOnce(t *testing.T, g *giftRun, watchers ...*giftWatcher) {
	t.Helper()
	g.mu.Lock()
	var want []uint64
	for s := range g.acked {
		want = append(want, s)
	}
	g.mu.Unlock()
	slices.Sort(want)
	for i, w := range watchers {
		waitFor(t, 30*time.Second, fmt.Sprintf("watcher %d to see %d gifts", i, len(want)), func() bool { return len(w.snapshot()) >= len(want) })
		got := w.snapshot()
		if len(got) != len(want) {
			t.Fatalf("watcher %d saw %d gifts, want %d", i, len(got), len(want))
		}
		for j := range got {
			if got[j] != want[j] {
				t.Fatalf("watcher %d: gift %d has seq %d, want %d", i, j, got[j], want[j])
			}
		}
	}
}

// metric reads one sample of a node's /metrics whose line starts with prefix
// (name plus labels), 0 when absent.
func metric(t *testing.T, s *server, prefix string) float64 {
	t.Helper()
	resp, err := httpGet("http://" + s.http + "/metrics")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(resp, "\n") {
		if strings.HasPrefix(line, prefix+" ") {
			var v float64
			fmt.Sscan(strings.TrimPrefix(line, prefix+" "), &v)
			return v
		}
	}
	return 0
}

// TestNATSKilledAndRestarted (issue 11): two nodes on an external
// nats-server; it is SIGKILLed mid-stream and started again. The nodes
// reconnect by themselves, gifts resume, none is lost or doubled, and the
// NATS events are counted.
func TestNATSKilledAndRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("server processes")
	}
	nats := startNATSProc(t)
	rd := startPrivateRedis(t)
	prefix := fmt.Sprintf("natsout%d", rand.Uint64())
	var nodes []*server
	for i := range 2 {
		nodes = append(nodes, startServe(t, "--node-id", fmt.Sprintf("n%d", i+1), "--nats", nats.url(),
			"--redis", rd.url(), "--redis-prefix", prefix))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w1 := watch(t, ctx, "tcp://"+nodes[0].edge, mint(t, nodes[0].secret, "w1", proto.RoleViewer), "natsroom", fixedDialer(nodes[0].edge))
	w2 := watch(t, ctx, "tcp://"+nodes[1].edge, mint(t, nodes[0].secret, "w2", proto.RoleViewer), "natsroom", fixedDialer(nodes[1].edge))
	payer, err := client.Dial(ctx, "tcp://"+nodes[1].edge, mint(t, nodes[0].secret, "payer", proto.RoleViewer), client.WithGiftDeadline(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer payer.Close()
	if _, err := join(ctx, payer, "natsroom"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	g := sendGifts(t, ctx, payer, "natsroom", "nats", stop)
	waitFor(t, 20*time.Second, "gifts before the outage", func() bool { return g.count() >= 20 })
	nats.kill()
	waitFor(t, 10*time.Second, "the nodes to see NATS go", func() bool {
		return metric(t, nodes[0], `danmaku_fanout_nats_events_total{event="disconnected"}`) >= 1 &&
			metric(t, nodes[1], `danmaku_fanout_nats_events_total{event="disconnected"}`) >= 1
	})
	down := g.count()
	nats.start()
	waitFor(t, 30*time.Second, "gifts after NATS is back", func() bool { return g.count() >= down+20 })
	close(stop)
	<-g.done
	for _, n := range nodes {
		if metric(t, n, `danmaku_fanout_nats_events_total{event="reconnected"}`) < 1 {
			t.Errorf("node %s: no reconnect counted", n.http)
		}
	}
	checkExactlyOnce(t, g, w1, w2)
	t.Logf("%d gifts exactly once through a NATS SIGKILL and restart", g.count())
}

// TestNodeCutOff (issue 11): one node's NATS connection is cut (a TCP proxy
// in between closes everything and refuses reconnects) while the owner node keeps
// sending gifts, then healed.
// Its viewers, which missed batches meanwhile, recover every gift exactly
// once (the SDK resumes the gap); the node's drops are counted.
func TestNodeCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("server processes")
	}
	nats := startNATSProc(t)
	rd := startPrivateRedis(t)
	proxy := startProxy(t, nats.addr)
	prefix := fmt.Sprintf("cut%d", rand.Uint64())
	n1 := startServe(t, "--node-id", "n1", "--nats", nats.url(), "--redis", rd.url(), "--redis-prefix", prefix)
	n2 := startServe(t, "--node-id", "n2", "--nats", "nats://"+proxy.addr(), "--redis", rd.url(), "--redis-prefix", prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The payer on n1 joins first: n1 owns the room, n2 only watches it.
	payer, err := client.Dial(ctx, "tcp://"+n1.edge, mint(t, n1.secret, "payer", proto.RoleViewer), client.WithGiftDeadline(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer payer.Close()
	if _, err := join(ctx, payer, "cutroom"); err != nil {
		t.Fatal(err)
	}
	w1 := watch(t, ctx, "tcp://"+n1.edge, mint(t, n1.secret, "w1", proto.RoleViewer), "cutroom", fixedDialer(n1.edge))
	w2 := watch(t, ctx, "tcp://"+n2.edge, mint(t, n1.secret, "w2", proto.RoleViewer), "cutroom", fixedDialer(n2.edge))
	stop := make(chan struct{})
	g := sendGifts(t, ctx, payer, "cutroom", "cut", stop)
	waitFor(t, 20*time.Second, "gifts before the cut", func() bool { return g.count() >= 20 })
	proxy.cut()
	waitFor(t, 10*time.Second, "n2 to see NATS go", func() bool {
		return metric(t, n2, `danmaku_fanout_nats_events_total{event="disconnected"}`) >= 1
	})
	during := g.count()
	waitFor(t, 20*time.Second, "gifts on n1 while n2 is cut off", func() bool { return g.count() >= during+30 })
	proxy.heal()
	waitFor(t, 20*time.Second, "n2 back on NATS", func() bool {
		return metric(t, n2, `danmaku_fanout_nats_events_total{event="reconnected"}`) >= 1
	})
	after := g.count()
	waitFor(t, 20*time.Second, "gifts after the heal", func() bool { return g.count() >= after+20 })
	close(stop)
	<-g.done
	checkExactlyOnce(t, g, w1, w2)
	t.Logf("%d gifts exactly once at both nodes through a cut of n2 from NATS", g.count())
}

func httpGet(url string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
