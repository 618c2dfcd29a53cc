package fanout

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// Chat and gifts sent on any of 3 nodes reach every node with members; a
// node with no member of the room receives none of its batches.
func TestClusterDelivery(t *testing.T) {
	c := newCluster(t, 3, nil)
	const room = "stage"
	n0, n1, n2 := c.nodes[0], c.nodes[1], c.nodes[2]
	n0.join(1, "v0", room)
	if c.owner(room) != 0 {
		t.Fatalf("owner %d, want node0 (first to join)", c.owner(room))
	}
	n1.join(1, "v1", room)
	waitInterest(t, c, room)

	for i, tn := range []*testNode{n0, n1} {
		if a := tn.chat(1, fmt.Sprintf("v%d", i), room, fmt.Sprintf("chat from %d", i)); a.Code != proto.CodeOK {
			t.Fatalf("chat ack %+v", a)
		}
	}
	g := n1.gift(1, "v1", room, "gift-1")
	if g.Code != proto.CodeOK || g.Seq == 0 {
		t.Fatalf("gift ack %+v", g)
	}
	for _, tn := range []*testNode{n0, n1} {
		eventually(t, 5*time.Second, tn.node.ID()+" to get both chats and the gift", func() bool {
			texts, rel := tn.edge.lossyTexts(room), tn.edge.reliable(room)
			return texts["chat from 0"] == 1 && texts["chat from 1"] == 1 && len(rel) == 1 && rel[0].Seq == g.Seq
		})
	}
	// node2 has no member: nothing of the room crossed NATS to it.
	if got := n2.counter("danmaku_fanout_nats_messages_total", map[string]string{"dir": "in", "kind": "out"}); got != 0 {
		t.Errorf("node2 received %v batches of a room it has no member in", got)
	}
	if got := n1.counter("danmaku_fanout_nats_messages_total", map[string]string{"dir": "in", "kind": "out"}); got == 0 {
		t.Error("node1 received no batch over NATS")
	}
	// A node may send to a room it does not watch (the backend API).
	if a, err := n2.node.Broadcast(context.Background(), room, manager.Publish{Entry: proto.Entry{Kind: proto.KindGift, Gift: "car", Count: 1}, Key: "api-1"}); err != nil || a.Seq != g.Seq+1 {
		t.Fatalf("Broadcast from node2 = %+v, %v", a, err)
	}
	eventually(t, 5*time.Second, "the API gift on node1", func() bool { return len(n1.edge.reliable(room)) == 2 })

	// Unwatch stops delivery to that node.
	n1.node.Unwatch(room)
	if err := n1.node.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	before := n1.edge.batchCount(room)
	n0.chat(1, "v0", room, "after unwatch")
	eventually(t, 5*time.Second, "node0 to get its chat", func() bool { return n0.edge.lossyTexts(room)["after unwatch"] == 1 })
	if got := n1.edge.batchCount(room); got != before {
		t.Errorf("node1 got %d batches after Unwatch", got-before)
	}
}

// waitInterest waits until the owner's NATS server sees a subscriber of the
// room's batches on every other watching node's side (routes propagate
// interest asynchronously).
func waitInterest(t testing.TB, c *cluster, room string) {
	t.Helper()
	subject := c.nodes[0].node.subj.Out(room)
	eventually(t, 5*time.Second, "interest in "+subject, func() bool {
		for i := range c.nats.servers {
			if !c.nats.interest(i, subject) {
				return false
			}
		}
		return true
	})
}

// giftSender sends gifts with unique keys from one session until stopped,
// retrying each (same key) until acked, and records the acks.
type giftSender struct {
	mu    sync.Mutex
	acked map[string]uint64 // key → seq
	epoch string
	errs  []error
}

func (s *giftSender) run(ctx context.Context, tn *testNode, room string) {
	for i := 0; ctx.Err() == nil; i++ {
		key := fmt.Sprintf("g-%d", i)
		msg := &proto.Gift{ID: tn.nextID(), Room: room, Gift: "rose", Count: 1, Key: key}
		got, err := tn.trySend(9, "sender", msg, 8*time.Second)
		s.mu.Lock()
		if a, ok := got.(*proto.Ack); ok && a.Code == proto.CodeOK {
			s.acked[key], s.epoch = a.Seq, a.Epoch
		} else if ctx.Err() == nil {
			s.errs = append(s.errs, fmt.Errorf("gift %s: %v %v", key, got, err))
		}
		s.mu.Unlock()
	}
}

func (s *giftSender) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

// checkSeqs checks the reliable lane as one node's members saw it: no seq
// twice, in order, and — with what a resume would fetch from the store for
// the gaps (recovered) — every seq from the first seen to the last acked.
// It returns how many seqs came only from the store.
func checkSeqs(t *testing.T, tn *testNode, room string, s *giftSender, allowGaps bool) int {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var maxAcked uint64
	for _, seq := range s.acked {
		maxAcked = max(maxAcked, seq)
	}
	seen := map[uint64]bool{}
	var last uint64
	for _, e := range tn.edge.reliable(room) {
		if seen[e.Seq] {
			t.Errorf("%s: seq %d delivered twice", tn.node.ID(), e.Seq)
		}
		if e.Seq <= last {
			t.Errorf("%s: seq %d after %d", tn.node.ID(), e.Seq, last)
		}
		seen[e.Seq], last = true, e.Seq
	}
	rep, err := tn.store.Since(context.Background(), room, s.epoch, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[uint64]string{}
	for _, e := range rep.Entries {
		stored[e.Seq] = e.Gift
	}
	recovered := 0
	for seq := uint64(1); seq <= maxAcked; seq++ {
		if _, ok := stored[seq]; !ok {
			t.Errorf("seq %d missing from the store (gap in assignment)", seq)
		}
		if !seen[seq] {
			recovered++
		}
	}
	if !allowGaps && recovered > 0 {
		t.Errorf("%s: %d seqs not delivered live", tn.node.ID(), recovered)
	}
	for key, seq := range s.acked {
		if _, ok := stored[seq]; !ok {
			t.Errorf("acked gift %s (seq %d) not stored", key, seq)
		}
	}
	return recovered
}

// The owner dies (no drain, lease left to expire): another node owns the
// room within 5 s and the reliable lane continues without gaps or repeats.
func TestOwnerDeath(t *testing.T) {
	c := newCluster(t, 3, nil)
	const room = "death"
	for i, tn := range c.nodes {
		tn.join(1, fmt.Sprintf("v%d", i), room)
	}
	if c.owner(room) != 0 {
		t.Fatalf("owner %d, want node0", c.owner(room))
	}
	waitInterest(t, c, room)
	s := &giftSender{acked: map[string]uint64{}}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.run(ctx, c.nodes[1], room) }()
	eventually(t, 10*time.Second, "10 gifts acked", func() bool { return s.count() >= 10 })

	killed := time.Now()
	c.nodes[0].kill()
	eventually(t, 5*time.Second, "a new owner", func() bool { return c.owner(room) > 0 })
	t.Logf("node%d owns the room %v after the owner's death", c.owner(room), time.Since(killed).Round(time.Millisecond))
	n := s.count()
	eventually(t, 10*time.Second, "10 more gifts acked", func() bool { return s.count() >= n+10 })
	stop()
	<-done
	for _, err := range s.errs {
		t.Error(err)
	}
	// Let the last batches arrive before comparing.
	last := c.nodes[1].edge.batchCount(room)
	eventually(t, 5*time.Second, "batches to settle", func() bool {
		got := c.nodes[1].edge.batchCount(room)
		settled := got == last
		last = got
		return settled && tailSeen(c.nodes[1], room, s)
	})
	for _, tn := range c.nodes[1:] {
		// Gifts acked in the dead owner's last tick were stored but never
		// broadcast: members get them by resume (invariant 2).
		r := checkSeqs(t, tn, room, s, true)
		t.Logf("%s: %d gifts acked, %d seqs recovered from the store only", tn.node.ID(), s.count(), r)
	}
}

// tailSeen reports whether the highest acked seq reached tn's edge.
func tailSeen(tn *testNode, room string, s *giftSender) bool {
	s.mu.Lock()
	var maxAcked uint64
	for _, seq := range s.acked {
		maxAcked = max(maxAcked, seq)
	}
	s.mu.Unlock()
	for _, e := range tn.edge.reliable(room) {
		if e.Seq == maxAcked {
			return true
		}
	}
	return false
}

// A graceful drain hands the room over with nothing lost: every acked gift
// is broadcast exactly once to every other node, in seq order, no gap.
func TestGracefulDrain(t *testing.T) {
	c := newCluster(t, 3, nil)
	const room = "drain"
	for i, tn := range c.nodes {
		tn.join(1, fmt.Sprintf("v%d", i), room)
	}
	waitInterest(t, c, room)
	s := &giftSender{acked: map[string]uint64{}}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.run(ctx, c.nodes[1], room) }()
	eventually(t, 10*time.Second, "10 gifts acked", func() bool { return s.count() >= 10 })

	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.nodes[0].node.Drain(dctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if c.nodes[0].owns(room) {
		t.Fatal("drained node still owns the room")
	}
	n := s.count()
	eventually(t, 10*time.Second, "10 more gifts acked", func() bool { return s.count() >= n+10 })
	stop()
	<-done
	for _, err := range s.errs {
		t.Error(err)
	}
	if o := c.owner(room); o <= 0 {
		t.Fatalf("owner after drain: %d", o)
	}
	for _, tn := range c.nodes {
		eventually(t, 5*time.Second, tn.node.ID()+" to see the last gift", func() bool { return tailSeen(tn, room, s) })
	}
	for _, tn := range c.nodes[1:] {
		checkSeqs(t, tn, room, s, false)
	}
	// Every acked key broadcast exactly once (as seen on node2).
	byKey := map[uint64]int{}
	for _, e := range c.nodes[2].edge.reliable(room) {
		byKey[e.Seq]++
	}
	s.mu.Lock()
	for key, seq := range s.acked {
		if byKey[seq] != 1 {
			t.Errorf("gift %s (seq %d) broadcast %d times", key, seq, byKey[seq])
		}
	}
	s.mu.Unlock()
}

// Restarting the NATS server a node is connected to: the node reconnects
// (to another server of the cluster or the restarted one) and the room
// keeps flowing both ways.
func TestNATSServerRestart(t *testing.T) {
	c := newCluster(t, 3, nil)
	const room = "restart"
	for i, tn := range c.nodes {
		tn.join(1, fmt.Sprintf("v%d", i), room)
	}
	waitInterest(t, c, room)
	victim := c.nats.index(c.nodes[1].node.nc.ConnectedUrl())
	t.Logf("restarting NATS server %d (node1's)", victim)
	c.nats.restart(victim)
	eventually(t, 10*time.Second, "node1 to reconnect", func() bool { return c.nodes[1].node.Healthy() == nil })
	for i := 0; i < 3; i++ {
		text := fmt.Sprintf("after restart %d", i)
		c.nodes[1].chat(1, "v1", room, text)
		for _, tn := range c.nodes {
			eventually(t, 10*time.Second, tn.node.ID()+" to get "+text, func() bool { return tn.edge.lossyTexts(room)[text] >= 1 })
		}
	}
	g := c.nodes[2].gift(1, "v2", room, "after-restart")
	eventually(t, 10*time.Second, "node1 to get the gift", func() bool {
		rel := c.nodes[1].edge.reliable(room)
		return len(rel) > 0 && rel[len(rel)-1].Seq == g.Seq
	})
	if got := c.nodes[1].counter("danmaku_fanout_nats_events_total", map[string]string{"event": "reconnected"}); got < 1 {
		t.Errorf("node1 counted %v reconnects", got)
	}
}

// A mute issued on node1 blocks the user's chat sent through node2 within 1 s;
// a ban also kicks the user on every node.
func TestSanctionAcrossNodes(t *testing.T) {
	c := newCluster(t, 3, nil)
	const room = "mod"
	c.nodes[0].join(1, "v0", room) // node0 owns the room
	c.nodes[2].join(7, "troll", room)
	if a := c.nodes[2].chat(7, "troll", room, "first"); a.Code != proto.CodeOK {
		t.Fatalf("chat before mute: %+v", a)
	}
	ctx := context.Background()
	issued := time.Now()
	if err := c.nodes[1].node.Control(ctx, ControlEvent{Kind: ControlSanction, Room: room, User: "troll"}); err != nil {
		t.Fatal(err)
	}
	i := 0
	eventually(t, time.Second, "the mute to block node2's sends", func() bool {
		i++
		return c.nodes[2].chat(7, "troll", room, fmt.Sprintf("try %d", i)).Code == proto.CodeMuted
	})
	t.Logf("mute effective after %v", time.Since(issued).Round(time.Millisecond))
	ss, err := c.nodes[0].store.Sanctions(ctx, room)
	if err != nil || len(ss) != 1 || ss[0].User != "troll" {
		t.Fatalf("stored sanctions %+v %v", ss, err)
	}
	if err := c.nodes[1].node.Control(ctx, ControlEvent{Kind: ControlSanction, Room: room, User: "troll", Lifted: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "the lift", func() bool {
		i++
		return c.nodes[2].chat(7, "troll", room, fmt.Sprintf("try %d", i)).Code == proto.CodeOK
	})
	if err := c.nodes[1].node.Control(ctx, ControlEvent{Kind: ControlSanction, Room: room, User: "troll", Ban: true}); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		eventually(t, time.Second, tn.node.ID()+" to kick the banned user", func() bool {
			tn.edge.mu.Lock()
			defer tn.edge.mu.Unlock()
			return len(tn.edge.kicks) == 1 && tn.edge.kicks[0] == "troll/"+room+"/"+string(proto.CodeBanned)
		})
	}
}

// Each node reports its local counts; the owner puts the cluster-wide total
// in batches and every watching node gives it to its edge.
func TestOnlineCounts(t *testing.T) {
	c := newCluster(t, 3, nil)
	const room = "count"
	c.nodes[0].join(1, "v0", room)
	c.nodes[1].join(1, "v1", room)
	c.nodes[0].edge.setMembers(room, 3)
	c.nodes[1].edge.setMembers(room, 5)
	for _, tn := range c.nodes[:2] {
		eventually(t, 5*time.Second, tn.node.ID()+" to see 8 online", func() bool {
			tn.edge.mu.Lock()
			defer tn.edge.mu.Unlock()
			return tn.edge.online[room] == 8
		})
	}
	i := 0
	eventually(t, 5*time.Second, "a batch carrying 8 online", func() bool {
		i++
		c.nodes[1].chat(1, "v1", room, fmt.Sprintf("c%d", i))
		c.nodes[1].edge.mu.Lock()
		defer c.nodes[1].edge.mu.Unlock()
		for _, b := range c.nodes[1].edge.batches[room] { // the count rides in the batch after it changed
			if b.HasOnline && b.Online == 8 {
				return true
			}
		}
		return false
	})
	c.nodes[1].edge.setMembers(room, 0)
	eventually(t, 5*time.Second, "node0 to see 3 online", func() bool {
		c.nodes[0].edge.mu.Lock()
		defer c.nodes[0].edge.mu.Unlock()
		return c.nodes[0].edge.online[room] == 3
	})
	if got := c.nodes[2].node.Rooms(); len(got) != 0 {
		// node2 knows nothing of the room (it neither owns nor watches it)
		t.Logf("node2 rooms: %+v", got)
	}
}

// A request for a room whose lease names a node that is gone gets
// "unavailable" from NATS's no-responders status; once the lease is free,
// the next request is served.
func TestNoResponders(t *testing.T) {
	c := newCluster(t, 1, nil)
	tn := c.nodes[0]
	rdb, _ := newRedis(t)
	ctx := context.Background()
	key := c.prefix + ":{ghost}:owner"
	if err := rdb.Set(ctx, key, "ghost-node", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := tn.node.Forward(&manager.Inbound{Node: tn.node.ID(), Session: 3, User: "u", Role: proto.RoleViewer,
		Msg: &proto.Join{ID: 77, Room: "ghost"}}); err != nil {
		t.Fatal(err)
	}
	var got proto.Message
	eventually(t, 5*time.Second, "an answer", func() bool { got = tn.edge.takeReply(3, 77); return got != nil })
	if e, ok := got.(*proto.Error); !ok || e.Code != proto.CodeUnavailable || e.Room != "ghost" {
		t.Fatalf("answer %#v, want an unavailable error", got)
	}
	if n := tn.counter("danmaku_fanout_no_responders_total", nil); n != 1 {
		t.Errorf("no_responders = %v", n)
	}
	rdb.Del(ctx, key)
	if j := tn.join(3, "u", "ghost"); j.Room != "ghost" || !tn.owns("ghost") {
		t.Fatalf("join after the lease was freed: %+v, owned %v", j, tn.owns("ghost"))
	}
}

// Nodes running their own embedded servers form a real NATS cluster
// (--nats-cluster, --nats-routes) and deliver across it.
func TestEmbeddedCluster(t *testing.T) {
	rdb, prefix := newRedis(t)
	var nodes []*testNode
	for i := range 3 {
		id := fmt.Sprintf("e%d", i)
		cfg := testConfig(id)
		cfg.Prefix = prefix
		cfg.Embedded.ClusterAddr = "127.0.0.1:0"
		if i > 0 {
			cfg.Embedded.Routes = []string{nodes[0].node.ClusterURL()}
		}
		own, _ := NewRedisOwnership(rdb, prefix, id, time.Second)
		nodes = append(nodes, startNode(t, cfg, own, sharedMemoryStore(t, prefix)))
	}
	eventually(t, 10*time.Second, "routes between the embedded servers", func() bool {
		for _, tn := range nodes {
			if tn.node.srv.NumRemotes() != 2 {
				return false
			}
		}
		return true
	})
	const room = "embedded"
	for i, tn := range nodes {
		tn.join(1, fmt.Sprintf("v%d", i), room)
	}
	eventually(t, 5*time.Second, "interest on every server", func() bool {
		for _, tn := range nodes {
			if !tn.node.srv.GlobalAccount().SubscriptionInterest(tn.node.subj.Out(room)) {
				return false
			}
		}
		return true
	})
	nodes[2].chat(1, "v2", room, "across the embedded cluster")
	for _, tn := range nodes {
		eventually(t, 5*time.Second, tn.node.ID()+" to get the chat", func() bool {
			return tn.edge.lossyTexts(room)["across the embedded cluster"] == 1
		})
	}

	// A survey from any node reaches every node, the asker included; one
	// without a SurveyFunc stays silent.
	nodes[0].node.SetSurvey(func() []byte { return []byte("e0") })
	nodes[1].node.SetSurvey(func() []byte { return []byte("e1") })
	for _, c := range []struct {
		from int
		want string
	}{{2, "e0 e1"}, {0, "e0 e1"}} {
		answers, err := nodes[c.from].node.Survey(context.Background(), 500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range answers {
			got = append(got, string(a))
		}
		slices.Sort(got)
		if strings.Join(got, " ") != c.want {
			t.Fatalf("survey from e%d: answers %q, want %s", c.from, got, c.want)
		}
	}
}

var (
	sharedStoresMu sync.Mutex
	sharedStores   = map[string]*manager.MemoryStore{}
)

// sharedMemoryStore is one memory store per test prefix, shared by the
// in-process nodes of a test (Redis-free shared state).
func sharedMemoryStore(t *testing.T, prefix string) *manager.MemoryStore {
	sharedStoresMu.Lock()
	defer sharedStoresMu.Unlock()
	s := sharedStores[prefix]
	if s == nil {
		s = manager.NewMemoryStore()
		sharedStores[prefix] = s
		t.Cleanup(func() {
			sharedStoresMu.Lock()
			delete(sharedStores, prefix)
			sharedStoresMu.Unlock()
		})
	}
	return s
}

// Kicks, closing a room, a notice to every room and a drain order, each
// issued on one node and applied on the others.
func TestControlEvents(t *testing.T) {
	c := newCluster(t, 2, nil)
	n0, n1 := c.nodes[0], c.nodes[1]
	const room = "ctl"
	n0.join(1, "v0", room) // node0 owns it
	n1.join(1, "v1", room)
	waitInterest(t, c, room)
	ctx := context.Background()
	kicked := func(tn *testNode, want string) func() bool {
		return func() bool {
			tn.edge.mu.Lock()
			defer tn.edge.mu.Unlock()
			for _, k := range tn.edge.kicks {
				if k == want {
					return true
				}
			}
			return false
		}
	}

	if err := n1.node.Control(ctx, ControlEvent{Kind: ControlKick, User: "v0"}); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		eventually(t, 2*time.Second, tn.node.ID()+" to kick", kicked(tn, "v0//"+string(proto.CodeKicked)))
	}

	if err := n1.node.Control(ctx, ControlEvent{Kind: ControlNotice, Text: "maintenance soon", Level: "warn"}); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		eventually(t, 2*time.Second, tn.node.ID()+" to get the notice", func() bool {
			for _, e := range tn.edge.reliable(room) {
				if e.Kind == proto.KindNotice && e.Text == "maintenance soon" && e.Seq > 0 {
					return true
				}
			}
			return false
		})
	}

	if err := n1.node.Control(ctx, ControlEvent{Kind: ControlPolicy, Room: room, Policy: manager.Policy{Closed: true}}); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		eventually(t, 2*time.Second, tn.node.ID()+" to remove the room's members", kicked(tn, "/"+room+"/"+string(proto.CodeRoomClosed)))
	}
	eventually(t, 2*time.Second, "the closed room to refuse chat", func() bool {
		return n1.chat(1, "v1", room, fmt.Sprintf("closed? %d", time.Now().UnixNano())).Code == proto.CodeRoomClosed
	})
	if p, err := n0.store.Policy(ctx, room); err != nil || !p.Closed {
		t.Fatalf("stored policy %+v %v", p, err)
	}

	if err := n1.node.Control(ctx, ControlEvent{Kind: ControlDrain, Node: n0.node.ID()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "node0 to drain", func() bool {
		n0.edge.mu.Lock()
		defer n0.edge.mu.Unlock()
		return n0.edge.drains == 1 && !n0.owns(room)
	})
}
