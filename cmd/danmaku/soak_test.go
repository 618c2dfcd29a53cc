package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/danmaku/danmaku/fanout/redisstore"
	"github.com/danmaku/danmaku/room/client"
	"github.com/danmaku/danmaku/room/proto"
)

// privateRedis is a redis-server of the test's own on a free port, so the
// test may kill and restart it (never the shared one on 6379). AOF with
// fsync always: an acked gift survives a restart.
type privateRedis struct {
	t    *testing.T
	addr string
	dir  string
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	r := &privateRedis{t: t, addr: freeAddr(t), dir: t.TempDir()}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *privateRedis) url() string { return "redis://" + r.addr + "/0" }

func (r *privateRedis) start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.addr)
	r.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "",
		"--appendonly", "yes", "--appendfsync", "always", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	waitListening(r.t, r.addr, "redis")
}

func (r *privateRedis) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// chaosDialer dials a random live node (whatever URL the SDK was given) and
// remembers its connections so the test can cut them.
type chaosDialer struct {
	mu    sync.Mutex
	live  []string // edge addresses that may be dialed
	conns map[net.Conn]bool
}

func (d *chaosDialer) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	d.mu.Lock()
	addr := d.live[rand.IntN(len(d.live))]
	d.mu.Unlock()
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err == nil {
		d.mu.Lock()
		d.conns[c] = true
		d.mu.Unlock()
	}
	return c, err
}

// fixedDialer dials addr only.
func fixedDialer(addr string) *chaosDialer {
	return &chaosDialer{live: []string{addr}, conns: map[net.Conn]bool{}}
}

// cutOne closes one random open connection.
func (d *chaosDialer) cutOne() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for c := range d.conns {
		c.Close()
		delete(d.conns, c)
		return
	}
}

func (d *chaosDialer) remove(addr string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, a := range d.live {
		if a == addr {
			d.live = append(d.live[:i], d.live[i+1:]...)
			return
		}
	}
}

// giftWatcher is a viewer collecting the room's gifts (the SDK delivers
// reliable entries exactly once, in seq order; the test checks it did).
type giftWatcher struct {
	mu       sync.Mutex
	seqs     []uint64 // gifts
	all      []uint64 // every reliable entry
	epoch    string
	downAt   time.Time     // when the connection dropped, zero while up
	longest  time.Duration // longest disconnected → reconnected
	outages  int
	reconned int
}

func watch(t *testing.T, ctx context.Context, url, tok, room string, d *chaosDialer) *giftWatcher {
	t.Helper()
	c, err := client.Dial(ctx, url, tok, client.WithNetDial(d.dial), client.WithBackoff(50*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	st, err := join(ctx, c, room)
	if err != nil {
		t.Fatal(err)
	}
	w := &giftWatcher{epoch: st.Epoch}
	go func() {
		for ev := range c.Events() {
			switch ev.Kind {
			case client.EventDisconnected:
				w.mu.Lock()
				if w.downAt.IsZero() {
					w.downAt = time.Now()
					w.outages++
				}
				w.mu.Unlock()
				continue
			case client.EventReconnected:
				w.mu.Lock()
				if !w.downAt.IsZero() {
					w.longest = max(w.longest, time.Since(w.downAt))
					w.downAt = time.Time{}
					w.reconned++
				}
				w.mu.Unlock()
				continue
			case client.EventBatch:
			default:
				continue
			}
			w.mu.Lock()
			for _, e := range ev.Batch.Reliable {
				w.all = append(w.all, e.Seq)
				if e.Kind == proto.KindGift {
					w.seqs = append(w.seqs, e.Seq)
				}
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *giftWatcher) snapshotAll() []uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]uint64(nil), w.all...)
}

func (w *giftWatcher) snapshot() []uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]uint64(nil), w.seqs...)
}

// TestGiftSoak (issue 6): 50 clients send 1,000 gifts in total over three
// nodes while the test keeps cutting client connections and SIGKILLs the
// room's owner node once. Then every acked gift is in the Redis history
// exactly once, no key got two seqs, and every listener saw every gift
// exactly once, in seq order.
func TestGiftSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("three server processes, 1,000 gifts")
	}
	const room, senders, perSender = "soak", 50, 20
	rd := startPrivateRedis(t)
	prefix := fmt.Sprintf("soak%d", rand.Uint64())
	seed := freeAddr(t)
	var nodes []*server
	for i := range 3 {
		route := seed
		if i > 0 {
			route = freeAddr(t)
		}
		args := []string{"--node-id", fmt.Sprintf("n%d", i+1), "--redis", rd.url(), "--redis-prefix", prefix, "--nats-cluster", route}
		if i > 0 {
			args = append(args, "--nats-routes", "nats://"+seed)
		}
		nodes = append(nodes, startServe(t, args...))
	}
	d := &chaosDialer{conns: map[net.Conn]bool{}}
	for _, n := range nodes {
		d.live = append(d.live, n.edge)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var watchers []*giftWatcher
	for i := range 3 {
		watchers = append(watchers, watch(t, ctx, "tcp://"+nodes[0].edge, mint(t, nodes[0].secret, fmt.Sprintf("watch%d", i), proto.RoleViewer), room, d))
	}
	var owner string
	waitFor(t, 10*time.Second, "an owner", func() bool { owner = (&cluster{nodes: nodes}).owner(t, nodes[0], room); return owner != "" })

	type acked struct {
		key string
		seq uint64
	}
	var mu sync.Mutex
	var acks []acked
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("payer%d", s)
			c, err := client.Dial(ctx, "tcp://"+nodes[0].edge, mint(t, nodes[0].secret, user, proto.RoleViewer), client.WithNetDial(d.dial),
				client.WithBackoff(50*time.Millisecond, time.Second), client.WithGiftDeadline(90*time.Second),
				client.WithGiftAttemptTimeout(2*time.Second))
			if err != nil {
				t.Errorf("%s: dial: %v", user, err)
				return
			}
			defer c.Close()
			if _, err := join(ctx, c, room); err != nil {
				t.Errorf("%s: join: %v", user, err)
				return
			}
			for g := range perSender {
				key := fmt.Sprintf("%s-%d", user, g)
				a, err := c.GiftWithKey(ctx, room, "rose", 1, key)
				if err != nil {
					t.Errorf("%s: gift %s: %v", user, key, err)
					continue
				}
				mu.Lock()
				acks = append(acks, acked{key, a.Seq})
				mu.Unlock()
			}
		}()
	}
	// Chaos: cut a client connection every 100 ms; SIGKILL the owner once a
	// third of the gifts are acked.
	stop := make(chan struct{})
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		killed := false
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			d.cutOne()
			mu.Lock()
			n := len(acks)
			mu.Unlock()
			if !killed && n >= senders*perSender/3 {
				killed = true
				victim := (&cluster{nodes: nodes}).node(owner)
				d.remove(victim.edge)
				victim.signal(syscall.SIGKILL)
				t.Logf("SIGKILLed owner %s after %d acked gifts", owner, n)
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-chaosDone
	if t.Failed() {
		return
	}
	victim := (&cluster{nodes: nodes}).node(owner)
	select {
	case <-victim.done:
	default:
		t.Fatalf("the owner %s was never killed", owner)
	}
	var survivor *server
	for _, n := range nodes {
		if n != victim {
			survivor = n
		}
	}
	if now := (&cluster{nodes: nodes}).owner(t, survivor, room); now == owner || now == "" {
		t.Fatalf("owner after the kill: %q (was %s)", now, owner)
	}

	// Every acked gift: one seq per key, distinct seqs.
	bySeq := map[uint64]string{}
	for _, a := range acks {
		if prev, dup := bySeq[a.seq]; dup {
			t.Fatalf("seq %d acked for %s and %s", a.seq, prev, a.key)
		}
		bySeq[a.seq] = a.key
	}
	if len(bySeq) != senders*perSender {
		t.Fatalf("%d distinct acked seqs for %d gifts", len(bySeq), senders*perSender)
	}
	// The history in Redis: every acked seq exactly once, nothing else.
	st, err := redisstore.New(redisstore.Config{URL: rd.url(), Prefix: prefix, Retention: 5000, IdempotencyTTL: time.Hour,
		BacklogSize: 50, OpTimeout: 5 * time.Second, DialTimeout: time.Second, Retries: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	head, err := st.Head(ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	var history []proto.Entry
	for after := uint64(0); after < head.Seq; {
		rp, err := st.Since(ctx, room, head.Epoch, after, 0)
		if err != nil || len(rp.Entries) == 0 {
			t.Fatalf("history after %d: %v (%d entries)", after, err, len(rp.Entries))
		}
		history = append(history, rp.Entries...)
		after = rp.Entries[len(rp.Entries)-1].Seq
	}
	inHistory := map[uint64]bool{}
	for _, e := range history {
		if e.Kind != proto.KindGift {
			continue
		}
		if inHistory[e.Seq] {
			t.Fatalf("seq %d twice in history", e.Seq)
		}
		inHistory[e.Seq] = true
		if _, ok := bySeq[e.Seq]; !ok {
			t.Fatalf("gift seq %d in history was never acked", e.Seq)
		}
	}
	if len(inHistory) != len(bySeq) {
		t.Fatalf("history holds %d gifts, %d were acked", len(inHistory), len(bySeq))
	}
	// Every listener: every gift once, in seq order (after its resumes).
	want := make([]uint64, 0, len(bySeq))
	for s := range bySeq {
		want = append(want, s)
	}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	for i, w := range watchers {
		waitFor(t, 30*time.Second, fmt.Sprintf("watcher %d to see %d gifts", i, len(want)), func() bool { return len(w.snapshot()) >= len(want) })
		got := w.snapshot()
		if len(got) != len(want) {
			t.Fatalf("watcher %d saw %d gifts, want %d", i, len(got), len(want))
		}
		for j := range got {
			if got[j] != want[j] {
				t.Fatalf("watcher %d: gift %d has seq %d, want %d (order or duplicate)", i, j, got[j], want[j])
			}
		}
	}
	t.Logf("%d gifts acked exactly once through connection cuts and an owner SIGKILL; epoch %s", len(want), head.Epoch)
}

// TestGiftsAcrossRedisRestart (issue 6): while Redis is down gifts fail fast
// with unavailable and chat keeps flowing; after it is back, gifts succeed
// and a retry of a gift acked before the outage is not doubled.
func TestGiftsAcrossRedisRestart(t *testing.T) {
	rd := startPrivateRedis(t)
	s := startServe(t, "--redis", rd.url(), "--redis-prefix", fmt.Sprintf("rr%d", rand.Uint64()))
	tok := token(t, s.secret, "g", "viewer")
	before, code := send(t, s.tcp(), tok, "rr", "--gift", "rose", "--key", "before-outage")
	if code != exitOK || before.Seq == 0 {
		t.Fatalf("gift before the outage: %d %+v", code, before)
	}
	rd.kill()
	start := time.Now()
	r, code := send(t, s.tcp(), tok, "rr", "--gift", "rose", "--key", "during-outage", "--timeout", "3s")
	if code == exitOK {
		t.Fatalf("gift acked with Redis down: %+v", r)
	}
	t.Logf("gift during the outage: exit %d %+v after %v", code, r, time.Since(start).Round(time.Millisecond))
	if c, code := send(t, s.tcp(), tok, "rr", "chat while redis is down"); code != exitOK || !c.OK {
		t.Fatalf("chat during the outage: %d %+v", code, c)
	}
	rd.start()
	waitFor(t, 20*time.Second, "gifts to work again", func() bool {
		r, code := send(t, s.tcp(), tok, "rr", "--gift", "rose", "--key", "during-outage", "--timeout", "3s")
		return code == exitOK && r.Seq > 0
	})
	again, code := send(t, s.tcp(), tok, "rr", "--gift", "rose", "--key", "before-outage")
	if code != exitOK || again.Seq != before.Seq || !again.Duplicate {
		t.Fatalf("retry of a gift acked before the outage: %d %+v, first %+v", code, again, before)
	}
}

// TestRollingRestart (issue 10): each node of a 3-node cluster in turn is
// drained (SIGTERM), stopped and started again on the same addresses while
// viewers are connected and gifts flow. Every viewer is back within 10 s of
// losing its connection, and no gift is lost or doubled.
func TestRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("three server processes, restarted in turn")
	}
	const room = "rolling"
	rd := startPrivateRedis(t)
	prefix := fmt.Sprintf("roll%d", rand.Uint64())
	// Drain jitter 2 s (default 10 s): the viewers' retry-after spread.
	cfgFile := writeFile(t, "edge:\n  drainjitter: 2s\n  draintimeout: 10s\n")
	routes := make([]string, 3)
	for i := range routes {
		routes[i] = freeAddr(t)
	}
	argsOf := func(i int) []string {
		args := []string{"--config", cfgFile, "--node-id", fmt.Sprintf("n%d", i+1), "--redis", rd.url(),
			"--redis-prefix", prefix, "--nats-cluster", routes[i]}
		var others []string
		for j, r := range routes {
			if j != i {
				others = append(others, "nats://"+r)
			}
		}
		return append(args, "--nats-routes", strings.Join(others, ","))
	}
	nodes := make([]*server, 3)
	for i := range nodes {
		nodes[i] = startServe(t, argsOf(i)...)
	}
	d := &chaosDialer{conns: map[net.Conn]bool{}}
	for _, n := range nodes {
		d.live = append(d.live, n.edge)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var watchers []*giftWatcher
	for i := range 6 {
		watchers = append(watchers, watch(t, ctx, "tcp://"+nodes[0].edge, mint(t, nodes[0].secret, fmt.Sprintf("viewer%d", i), proto.RoleViewer), room, d))
	}
	payer, err := client.Dial(ctx, "tcp://"+nodes[0].edge, mint(t, nodes[0].secret, "payer", proto.RoleViewer), client.WithNetDial(d.dial),
		client.WithBackoff(50*time.Millisecond, time.Second), client.WithGiftDeadline(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer payer.Close()
	if _, err := join(ctx, payer, room); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[uint64]string{}
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			key := fmt.Sprintf("roll-%d", i)
			a, err := payer.GiftWithKey(ctx, room, "rose", 1, key)
			if err != nil {
				t.Errorf("gift %s: %v", key, err)
				return
			}
			mu.Lock()
			if prev, dup := acked[a.Seq]; dup {
				t.Errorf("seq %d acked for %s and %s", a.Seq, prev, key)
			}
			acked[a.Seq] = key
			mu.Unlock()
			time.Sleep(50 * time.Millisecond) // a gift every 50 ms: pacing, not waiting
		}
	}()
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	for i := range nodes {
		// Gifts flow before every restart (and so after the previous one).
		waitFor(t, 30*time.Second, fmt.Sprintf("%d gifts acked", (i+1)*20), func() bool { return ackedCount() >= (i+1)*20 })
		old := nodes[i]
		d.remove(old.edge) // the balancer stops sending new viewers there
		old.signal(syscall.SIGTERM)
		if code := old.wait(30 * time.Second); code != 0 {
			t.Fatalf("node %d exited %d after SIGTERM", i+1, code)
		}
		nodes[i] = startServeAt(t, old.edge, old.http, argsOf(i)...)
		d.mu.Lock()
		d.live = append(d.live, old.edge)
		d.mu.Unlock()
		t.Logf("node n%d restarted (%d gifts acked so far)", i+1, ackedCount())
	}
	waitFor(t, 30*time.Second, "gifts after the last restart", func() bool { return ackedCount() >= 80 })
	close(stop)
	<-sent
	mu.Lock()
	want := make([]uint64, 0, len(acked))
	for s := range acked {
		want = append(want, s)
	}
	mu.Unlock()
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	for i := range want {
		if want[i] != want[0]+uint64(i) {
			t.Fatalf("acked seqs not contiguous at %d: %d after %d", i, want[i], want[i-1])
		}
	}
	for i, w := range watchers {
		waitFor(t, 30*time.Second, fmt.Sprintf("viewer %d to see %d gifts", i, len(want)), func() bool { return len(w.snapshot()) >= len(want) })
		got := w.snapshot()
		if len(got) != len(want) {
			t.Fatalf("viewer %d saw %d gifts, want %d", i, len(got), len(want))
		}
		for j := range got {
			if got[j] != want[j] {
				t.Fatalf("viewer %d: gift %d has seq %d, want %d", i, j, got[j], want[j])
			}
		}
		w.mu.Lock()
		longest, outages, back, down := w.longest, w.outages, w.reconned, !w.downAt.IsZero()
		w.mu.Unlock()
		if down || back != outages || longest > 10*time.Second {
			t.Fatalf("viewer %d: %d outages, %d reconnects, still down %v, longest %v", i, outages, back, down, longest)
		}
		t.Logf("viewer %d: %d outages, longest %v", i, outages, longest.Round(time.Millisecond))
	}
	t.Logf("%d gifts exactly once through a rolling restart of 3 nodes", len(want))
}
