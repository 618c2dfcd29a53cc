package fanout

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/danmaku/danmaku/fanout/redisstore"
	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// testLogger is quiet unless FANOUT_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("FANOUT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// fakeEdge records what a node hands its edge. It decodes every batch (a
// test may afford it) and keeps per-room member counts for LocalCounts.
type fakeEdge struct {
	mu      sync.Mutex
	batches map[string][]*proto.Batch // room → batches in arrival order
	emitted map[string][]*manager.Emitted
	replies map[uint64][]proto.Message // session → answers
	members map[string]int             // room → local members (LocalCounts)
	online  map[string]int64           // SetOnline
	kicks   []string                   // "user/room/code"
	drains  int

	// countOnly (benchmarks): count chat entries and batches, keep nothing.
	countOnly bool
	chats     atomic.Int64
	nbatches  atomic.Int64
	acks      atomic.Int64
}

func newFakeEdge() *fakeEdge {
	return &fakeEdge{batches: map[string][]*proto.Batch{}, emitted: map[string][]*manager.Emitted{},
		replies: map[uint64][]proto.Message{}, members: map[string]int{}, online: map[string]int64{}}
}

func (f *fakeEdge) DeliverBatch(e *manager.Emitted) {
	m, err := proto.Decode(e.Body)
	if f.countOnly {
		if b, ok := m.(*proto.Batch); ok && err == nil {
			f.chats.Add(int64(len(b.Lossy)))
		}
		f.nbatches.Add(1)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := m.(*proto.Batch); ok && err == nil {
		f.batches[e.Room] = append(f.batches[e.Room], b)
	}
	f.emitted[e.Room] = append(f.emitted[e.Room], e)
}

func (f *fakeEdge) DeliverReply(r manager.Reply) {
	if f.countOnly {
		f.acks.Add(1)
		return
	}
	m, err := proto.Decode(r.Body)
	if err != nil {
		m = &proto.Error{Code: proto.CodeBadFrame, Message: err.Error()}
	}
	f.mu.Lock()
	f.replies[r.Session] = append(f.replies[r.Session], m)
	f.mu.Unlock()
}

func (f *fakeEdge) LocalCounts(fn func(room string, n int)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for room, n := range f.members {
		fn(room, n)
	}
}

func (f *fakeEdge) SetOnline(room string, n int64) {
	f.mu.Lock()
	f.online[room] = n
	f.mu.Unlock()
}

func (f *fakeEdge) Kick(user, room string, code proto.Code) int {
	f.mu.Lock()
	f.kicks = append(f.kicks, user+"/"+room+"/"+string(code))
	f.mu.Unlock()
	return 1
}

func (f *fakeEdge) Drain(context.Context) error {
	f.mu.Lock()
	f.drains++
	f.mu.Unlock()
	return nil
}

// takeReply removes and returns the answer with request id from session's
// answers, nil when none arrived yet.
func (f *fakeEdge) takeReply(session uint64, id uint32) proto.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.replies[session]
	for i, m := range rs {
		var got uint32
		switch m := m.(type) {
		case *proto.Ack:
			got = m.ID
		case *proto.Error:
			got = m.ID
		case *proto.Joined:
			got = m.ID
		case *proto.Resumed:
			got = m.ID
		}
		if got == id {
			f.replies[session] = append(rs[:i:i], rs[i+1:]...)
			return m
		}
	}
	return nil
}

// reliable returns every reliable entry the edge got for room, in order.
func (f *fakeEdge) reliable(room string) []proto.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []proto.Entry
	for _, b := range f.batches[room] {
		out = append(out, b.Reliable...)
	}
	return out
}

// lossyTexts returns the texts of the chats the edge got for room.
func (f *fakeEdge) lossyTexts(room string) map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for _, b := range f.batches[room] {
		for _, e := range b.Lossy {
			out[e.Text]++
		}
	}
	return out
}

func (f *fakeEdge) batchCount(room string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.emitted[room])
}

func (f *fakeEdge) setMembers(room string, n int) {
	f.mu.Lock()
	f.members[room] = n
	f.mu.Unlock()
}

// testNode is a Node with a real manager and a fake edge.
type testNode struct {
	t      testing.TB
	node   *Node
	mgr    *manager.Manager
	edge   *fakeEdge
	reg    *prometheus.Registry
	store  manager.Store
	ids    atomic.Uint32
	once   sync.Once
	killed atomic.Bool
}

// testConfig is DefaultConfig with short intervals for tests.
func testConfig(id string) Config {
	cfg := DefaultConfig()
	cfg.NodeID = id
	cfg.OnlineInterval = 100 * time.Millisecond
	cfg.LeaseRenew = 200 * time.Millisecond
	cfg.RetryAfter = 50 * time.Millisecond
	cfg.ReconnectWait = 50 * time.Millisecond
	return cfg
}

// testManagerConfig lets tests send as fast as they like: short ticks, no
// per-user rate limit or budget in the way (admission is the manager's own
// tests' business).
func testManagerConfig() manager.Config {
	mc := manager.DefaultConfig()
	mc.Tick = 20 * time.Millisecond
	mc.Budget = 100_000
	fast := manager.RateLimit{PerSecond: 100_000, Burst: 100_000}
	mc.RateLimits = manager.RateLimits{Viewer: fast, VIP: fast, Staff: fast}
	return mc
}

// startNode builds a Node, its manager (over store) and a fake edge.
func startNode(t testing.TB, cfg Config, own Ownership, store manager.Store) *testNode {
	t.Helper()
	reg := prometheus.NewRegistry()
	n, err := New(cfg, own, WithLogger(testLogger().With("node", cfg.NodeID)), WithRegisterer(reg), WithState(store))
	if err != nil {
		t.Fatalf("fanout.New(%s): %v", cfg.NodeID, err)
	}
	mgr, err := manager.New(testManagerConfig(), store, n)
	if err != nil {
		n.Close()
		t.Fatalf("manager.New: %v", err)
	}
	tn := &testNode{t: t, node: n, mgr: mgr, edge: newFakeEdge(), reg: reg, store: store}
	if err := n.Start(mgr, tn.edge); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(tn.kill)
	return tn
}

// kill stops the node as a SIGKILL would: NATS gone, leases left to expire.
func (tn *testNode) kill() {
	tn.once.Do(func() {
		tn.killed.Store(true)
		tn.node.Close()
		tn.mgr.Close()
	})
}

// send forwards msg for session (a viewer on this node) and waits for its
// answer, retrying the same message while the answer is unavailable or late.
func (tn *testNode) send(session uint64, user string, msg proto.Message) proto.Message {
	tn.t.Helper()
	got, err := tn.trySend(session, user, msg, 10*time.Second)
	if err != nil {
		tn.t.Fatal(err)
	}
	return got
}

// trySend is send without failing the test (for goroutines).
func (tn *testNode) trySend(session uint64, user string, msg proto.Message, within time.Duration) (proto.Message, error) {
	id := msg.(proto.Request).RequestID()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		in := &manager.Inbound{Node: tn.node.ID(), Session: session, User: user, Name: user,
			Role: proto.RoleViewer, Msg: msg, Received: time.Now().UnixMilli()}
		if err := tn.node.Forward(in); err != nil {
			time.Sleep(20 * time.Millisecond) // a client's retry pause
			continue
		}
		var got proto.Message
		answered := time.Now().Add(2 * time.Second)
		for got == nil && time.Now().Before(answered) {
			if got = tn.edge.takeReply(session, id); got == nil {
				time.Sleep(2 * time.Millisecond) // polling the fake edge
			}
		}
		if got == nil || isUnavailable(got) {
			continue
		}
		return got, nil
	}
	return nil, fmt.Errorf("node %s: no answer to %T %d for session %d within %v", tn.node.ID(), msg, id, session, within)
}

func isUnavailable(m proto.Message) bool {
	switch m := m.(type) {
	case *proto.Ack:
		return m.Code == proto.CodeUnavailable
	case *proto.Error:
		return m.Code == proto.CodeUnavailable
	}
	return false
}

func (tn *testNode) nextID() uint32 { return tn.ids.Add(1) }

// join joins session to room (Watch + join request), as the edge does.
func (tn *testNode) join(session uint64, user, room string) *proto.Joined {
	tn.t.Helper()
	if err := tn.node.Watch(room); err != nil {
		tn.t.Fatalf("Watch: %v", err)
	}
	got := tn.send(session, user, &proto.Join{ID: tn.nextID(), Room: room})
	j, ok := got.(*proto.Joined)
	if !ok {
		tn.t.Fatalf("join answered %#v", got)
	}
	return j
}

func (tn *testNode) chat(session uint64, user, room, text string) *proto.Ack {
	tn.t.Helper()
	return tn.ack(tn.send(session, user, &proto.Chat{ID: tn.nextID(), Room: room, Text: text}))
}

func (tn *testNode) gift(session uint64, user, room, key string) *proto.Ack {
	tn.t.Helper()
	return tn.ack(tn.send(session, user, &proto.Gift{ID: tn.nextID(), Room: room, Gift: "rose", Count: 1, Key: key}))
}

func (tn *testNode) ack(m proto.Message) *proto.Ack {
	tn.t.Helper()
	a, ok := m.(*proto.Ack)
	if !ok {
		tn.t.Fatalf("expected an ack, got %#v", m)
	}
	return a
}

// owns reports whether the node owns room now.
func (tn *testNode) owns(room string) bool {
	rs := tn.node.lookup(room)
	return rs != nil && rs.owned.Load()
}

// counter reads a metric of the node's registry (sum over matching labels).
func (tn *testNode) counter(name string, labels map[string]string) float64 {
	mfs, err := tn.reg.Gather()
	if err != nil {
		tn.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, labels) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func matches(m *dto.Metric, labels map[string]string) bool {
	for k, v := range labels {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// natsCluster is a NATS cluster of embedded servers on random ports,
// standing in for an external NATS (nodes connect to it by URL).
type natsCluster struct {
	t       testing.TB
	mu      sync.Mutex
	servers []*server.Server // server i as now running
	opts    []*server.Options
}

func startNATSCluster(t testing.TB, size int) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t, servers: make([]*server.Server, size), opts: make([]*server.Options, size)}
	t.Cleanup(c.shutdown)
	var routes []*url.URL
	for i := range size {
		o := &server.Options{ServerName: fmt.Sprintf("s%d", i), Host: "127.0.0.1", Port: -1, NoSigs: true,
			NoLog: true, MaxPayload: 2 << 20, Routes: routes,
			Cluster: server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: -1}}
		s := c.newServer(o.Clone())
		// Pin the ports it got, so that a restart comes back on them.
		o.Port = s.Addr().(*net.TCPAddr).Port
		o.Cluster.Port = s.ClusterAddr().Port
		routes = append(routes, &url.URL{Scheme: "nats", Host: s.ClusterAddr().String()})
		c.servers[i], c.opts[i] = s, o
	}
	c.waitMesh()
	return c
}

func (c *natsCluster) newServer(o *server.Options) *server.Server {
	s, err := server.NewServer(o)
	if err != nil {
		c.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		c.t.Fatal("nats server not ready")
	}
	return s
}

// waitMesh waits until every server has a route to every other.
func (c *natsCluster) waitMesh() {
	eventually(c.t, 10*time.Second, "nats routes to form", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, s := range c.servers {
			if s.NumRemotes() != len(c.servers)-1 {
				return false
			}
		}
		return true
	})
}

// URLs are the client URLs of every server.
func (c *natsCluster) URLs() []string {
	var out []string
	for _, o := range c.opts {
		out = append(out, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return out
}

// index returns the server whose client URL is u.
func (c *natsCluster) index(u string) int {
	for i, s := range c.URLs() {
		if s == u {
			return i
		}
	}
	c.t.Fatalf("no server at %q", u)
	return -1
}

// restart shuts server i down and starts it again on the same ports.
func (c *natsCluster) restart(i int) {
	c.mu.Lock()
	old := c.servers[i]
	c.mu.Unlock()
	old.Shutdown()
	old.WaitForShutdown()
	o := c.opts[i].Clone()
	o.Routes = nil
	for j, other := range c.opts {
		if j != i {
			o.Routes = append(o.Routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", other.Cluster.Port)})
		}
	}
	s := c.newServer(o)
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
	c.waitMesh()
}

// interest reports whether server i sees a subscriber of subject anywhere
// in the cluster.
func (c *natsCluster) interest(i int, subject string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i].GlobalAccount().SubscriptionInterest(subject)
}

func (c *natsCluster) shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.servers {
		if s != nil {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
}

// cluster is n nodes on a NATS cluster, with Redis leases and the Redis
// store under a random prefix.
type cluster struct {
	nats   *natsCluster
	nodes  []*testNode
	prefix string
}

func newCluster(t testing.TB, n int, tweak func(*Config)) *cluster {
	t.Helper()
	rdb, prefix := newRedis(t)
	c := &cluster{nats: startNATSCluster(t, 3), prefix: prefix}
	urls := c.nats.URLs()
	for i := range n {
		id := fmt.Sprintf("node%d", i)
		cfg := testConfig(id)
		cfg.Prefix = prefix
		cfg.NATSURLs = urls // nats.go picks one at random
		if tweak != nil {
			tweak(&cfg)
		}
		own, err := NewRedisOwnership(rdb, prefix, id, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		scfg := redisstore.DefaultConfig()
		scfg.Prefix, scfg.FenceNode = prefix, id
		store, err := redisstore.New(scfg, redisstore.WithClient(rdb))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		c.nodes = append(c.nodes, startNode(t, cfg, own, store))
	}
	t.Logf("cluster of %d nodes, prefix %s, NATS %v", n, prefix, urls)
	return c
}

// owner returns the index of the live node that owns room, -1 if none.
func (c *cluster) owner(room string) int {
	for i, tn := range c.nodes {
		if !tn.killed.Load() && tn.owns(room) {
			return i
		}
	}
	return -1
}
