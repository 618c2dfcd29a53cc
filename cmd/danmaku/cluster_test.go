package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cluster is three `danmaku serve` processes whose embedded NATS servers
// form a real NATS cluster, sharing the local Redis under a fresh prefix.
type cluster struct {
	nodes  []*server
	prefix string
}

func startCluster(t *testing.T, size int) *cluster {
	t.Helper()
	c := &cluster{prefix: fmt.Sprintf("dmkt%d", rand.Uint64())}
	seed := freeAddr(t)
	for i := range size {
		route := seed
		if i > 0 {
			route = freeAddr(t)
		}
		args := []string{"--node-id", fmt.Sprintf("n%d", i+1), "--redis", "redis://127.0.0.1:6379/0",
			"--redis-prefix", c.prefix, "--nats-cluster", route}
		if i > 0 {
			args = append(args, "--nats-routes", "nats://"+seed)
		}
		c.nodes = append(c.nodes, startServe(t, args...))
	}
	return c
}

// owner asks a live node's admin API who owns room ("" = nobody yet).
func (c *cluster) owner(t *testing.T, via *server, room string) string {
	t.Helper()
	code, body := api(t, "GET", "http://"+via.http+"/api/v1/admin/rooms/"+room, "test-admin", "")
	if code != http.StatusOK {
		return ""
	}
	o, _ := body["owner"].(string)
	return o
}

func (c *cluster) node(id string) *server {
	for i, s := range c.nodes {
		if fmt.Sprintf("n%d", i+1) == id {
			return s
		}
	}
	return nil
}

// TestClusterCrossNode: a chat and a gift sent on node 1 reach listeners
// on nodes 2 and 3; a mute issued on node 1 blocks the user on node 2
// within 1 s.
func TestClusterCrossNode(t *testing.T) {
	if testing.Short() {
		t.Skip("three server processes")
	}
	c := startCluster(t, 3)
	s1, s2, s3 := c.nodes[0], c.nodes[1], c.nodes[2]
	viewer := token(t, s1.secret, "viewer", "viewer")
	l2 := startListen(t, s2.ws(), viewer, "xnode")
	l3 := startListen(t, s3.tcp(), viewer, "xnode")
	sender := token(t, s1.secret, "sender", "viewer")
	// The NATS routes may still be forming: resend until node 3 sees one.
	waitFor(t, 15*time.Second, "a chat from node 1 on node 3", func() bool {
		if _, code := send(t, s1.tcp(), sender, "xnode", fmt.Sprintf("hi %d", time.Now().UnixNano())); code != exitOK {
			return false
		}
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) && len(l3.of("chat")) == 0 {
			time.Sleep(20 * time.Millisecond) // polling the listener's output
		}
		return len(l3.of("chat")) > 0
	})
	g, code := send(t, s1.ws(), sender, "xnode", "--gift", "rose", "--key", "x-1")
	if code != exitOK || g.Seq == 0 {
		t.Fatalf("gift on node 1: exit %d %+v", code, g)
	}
	for _, l := range []*listener{l2, l3} {
		if gs := l.waitKind(t, "gift", 1); gs[0].Seq != g.Seq || len(gs) != 1 {
			t.Fatalf("gifts seen %+v, sent seq %d", gs, g.Seq)
		}
		l.waitKind(t, "chat", 1)
	}

	muted := token(t, s1.secret, "loud", "viewer")
	if r, code := send(t, s2.tcp(), muted, "xnode", "before the mute"); code != exitOK || !r.OK {
		t.Fatalf("send before mute: %d %+v", code, r)
	}
	if code, body := api(t, "POST", "http://"+s1.http+"/api/v1/admin/users/loud/mute", "test-admin", `{"room":"xnode"}`); code != 200 {
		t.Fatalf("mute on node 1: %d %v", code, body)
	}
	muteAt := time.Now()
	waitFor(t, time.Second, "the mute on node 2", func() bool {
		r, _ := send(t, s2.tcp(), muted, "xnode", fmt.Sprintf("after %d", time.Now().UnixNano()))
		return r.Code == "muted"
	})
	t.Logf("mute effective on node 2 after %v", time.Since(muteAt).Round(time.Millisecond))

	// The admin API on node 1 lists the whole cluster.
	admin := "http://" + s1.http + "/api/v1/admin"
	if code, body := api(t, "GET", admin+"/nodes", "test-admin", ""); code != 200 || len(body["nodes"].([]any)) != 3 {
		t.Fatalf("nodes: %d %v", code, body)
	}
	code, room := api(t, "GET", admin+"/rooms/xnode", "test-admin", "")
	nodes, _ := room["nodes"].([]any)
	if code != 200 || room["owner"] == "" || len(nodes) != 2 || nodes[0] != "n2" || nodes[1] != "n3" {
		t.Fatalf("room xnode: %d %v", code, room)
	}
	// ?local=1 answers for the asked node alone: node 2 sees only its own viewers.
	code, local := api(t, "GET", "http://"+s2.http+"/api/v1/admin/rooms/xnode?local=1", "test-admin", "")
	if ln, _ := local["nodes"].([]any); code != 200 || len(ln) != 1 || ln[0] != "n2" {
		t.Fatalf("local room view on n2: %d %v", code, local)
	}
	// Draining node 3 from node 1's admin API moves node 3's viewers away.
	if code, body := api(t, "POST", admin+"/nodes/n3/drain", "test-admin", ""); code != 200 {
		t.Fatalf("drain n3: %d %v", code, body)
	}
	waitFor(t, 20*time.Second, "node 3's viewer to be asked to reconnect", func() bool {
		return strings.Contains(l3.stderr.String(), "reconnect_requested")
	})
	if strings.Contains(l2.stderr.String(), "reconnect_requested") {
		t.Fatal("draining node 3 moved node 2's viewer")
	}
}

// TestClusterOwnerKilled: gifts flow from a non-owner node while the owner
// is SIGKILLed. A survivor owns the room within 5 s; every acked gift
// reaches the listeners on the surviving nodes exactly once, in seq order,
// with no gap in seq.
func TestClusterOwnerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("three server processes")
	}
	c := startCluster(t, 3)
	viewer := token(t, c.nodes[0].secret, "v", "viewer")
	room := "killroom"
	// Join on node 1 first: node 1 becomes the owner (the first node to
	// forward a request for an unowned room takes it).
	startListen(t, c.nodes[0].ws(), viewer, room)
	var owner string
	waitFor(t, 10*time.Second, "an owner", func() bool { owner = c.owner(t, c.nodes[0], room); return owner != "" })
	var survivors []*server
	for _, s := range c.nodes {
		if s != c.node(owner) {
			survivors = append(survivors, s)
		}
	}
	var ls []*listener
	for _, s := range survivors {
		ls = append(ls, startListen(t, s.ws(), viewer, room))
	}
	sender := token(t, c.nodes[0].secret, "payer", "viewer")
	var mu sync.Mutex
	acked := map[uint64]string{} // seq → key
	killed := make(chan time.Time, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 30 {
			if i == 10 {
				c.node(owner).signal(syscall.SIGKILL)
				killed <- time.Now()
			}
			key := fmt.Sprintf("kill-%d", i)
			// send retries the same key until acked (its deadline is --timeout).
			r, code := send(t, survivors[i%2].tcp(), sender, room, "--gift", "rose", "--key", key, "--timeout", "20s")
			if code != exitOK {
				t.Errorf("gift %s: exit %d %+v", key, code, r)
				continue
			}
			mu.Lock()
			if prev, dup := acked[r.Seq]; dup && prev != key {
				t.Errorf("seq %d given to %s and %s", r.Seq, prev, key)
			}
			acked[r.Seq] = key
			mu.Unlock()
		}
	}()
	at := <-killed
	waitFor(t, 5*time.Second, "a new owner", func() bool {
		o := c.owner(t, survivors[0], room)
		return o != "" && o != owner
	})
	t.Logf("new owner %s %v after the SIGKILL of %s", c.owner(t, survivors[0], room), time.Since(at).Round(time.Millisecond), owner)
	wg.Wait()
	if len(acked) != 30 {
		t.Fatalf("%d distinct seqs for 30 gifts", len(acked))
	}
	for _, l := range ls {
		gs := l.waitKind(t, "gift", 30)
		if len(gs) != 30 {
			t.Fatalf("listener saw %d gifts, want 30", len(gs))
		}
		for i, g := range gs {
			if g.Seq != gs[0].Seq+uint64(i) {
				t.Fatalf("gift %d has seq %d after %d: not contiguous", i, g.Seq, gs[i-1].Seq)
			}
			if _, ok := acked[g.Seq]; !ok {
				t.Fatalf("seq %d seen but never acked", g.Seq)
			}
		}
	}
}
