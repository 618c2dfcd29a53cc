package fanout

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// cutProxy forwards TCP to the test Redis until cut: then it closes every
// connection and refuses new ones, as a Redis outage would look.
type cutProxy struct {
	ln    net.Listener
	cut   atomic.Bool
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.setCut(true); p.wg.Wait() })
	return p
}

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.cut.Load() {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", testRedisAddr)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *cutProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

func (p *cutProxy) setCut(cut bool) {
	p.cut.Store(cut)
	if !cut {
		return
	}
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
}

// soloRedisNode is one node on embedded NATS with its leases in Redis
// through a cuttable proxy, and a memory ledger (the store is not what is
// tested here).
func soloRedisNode(t *testing.T, strict bool) (*testNode, *cutProxy, string) {
	t.Helper()
	_, prefix := newRedis(t)
	p := newCutProxy(t)
	rdb := redis.NewClient(&redis.Options{Addr: p.ln.Addr().String(), MaxRetries: -1,
		DialTimeout: 100 * time.Millisecond, ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	own, err := NewRedisOwnership(rdb, prefix, "r1", 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("r1")
	cfg.Prefix = prefix
	cfg.LeaseRenew = 100 * time.Millisecond
	cfg.LeaseOpTimeout = 100 * time.Millisecond
	cfg.LeaseMargin = 100 * time.Millisecond
	cfg.StrictLease = strict
	return startNode(t, cfg, own, manager.NewMemoryStore()), p, prefix
}

// Redis down: by default an owner keeps its rooms and chat keeps flowing
// (invariant 9); with StrictLease it gives them up before its lease could
// have expired.
func TestRedisDown(t *testing.T) {
	for _, strict := range []bool{false, true} {
		name := map[bool]string{false: "default", true: "strict"}[strict]
		t.Run(name, func(t *testing.T) {
			tn, proxy, _ := soloRedisNode(t, strict)
			const room = "outage"
			tn.join(1, "v", room)
			if !tn.owns(room) {
				t.Fatal("not the owner after the first join")
			}
			proxy.setCut(true)
			renewFails := func() float64 {
				return tn.counter("danmaku_fanout_lease_errors_total", map[string]string{"op": "renew"})
			}
			if strict {
				// Given up before the 500 ms lease could run out (it stops
				// renewing then: nothing left to renew).
				eventually(t, 5*time.Second, "the room given up", func() bool { return !tn.owns(room) })
				if renewFails() < 1 {
					t.Fatal("given up without a failed renewal")
				}
				in := &manager.Inbound{Node: "r1", Session: 1, User: "v", Role: proto.RoleViewer,
					Msg: &proto.Chat{ID: 99, Room: room, Text: "nobody owns me"}}
				if err := tn.node.Forward(in); err != nil {
					t.Fatal(err)
				}
				var got proto.Message
				eventually(t, 5*time.Second, "an answer", func() bool { got = tn.edge.takeReply(1, 99); return got != nil })
				if !isUnavailable(got) {
					t.Fatalf("chat while nobody can own the room: %#v", got)
				}
			} else {
				// Enough failed renewals (every 100 ms) that the lease ran out.
				eventually(t, 10*time.Second, "8 failed renewals", func() bool { return renewFails() >= 8 })
				if !tn.owns(room) {
					t.Fatal("default: gave the room up while Redis is down")
				}
				if a := tn.chat(1, "v", room, "still flowing"); a.Code != proto.CodeOK {
					t.Fatalf("chat during the outage: %+v", a)
				}
				eventually(t, 5*time.Second, "the chat delivered", func() bool { return tn.edge.lossyTexts(room)["still flowing"] == 1 })
			}
			proxy.setCut(false)
			if a := tn.chat(1, "v", room, "after the outage"); a.Code != proto.CodeOK || !tn.owns(room) {
				t.Fatalf("after the outage: %+v, owned %v", a, tn.owns(room))
			}
		})
	}
}

// A room with no member anywhere is handed over after IdleRelease: its
// lease is deleted.
func TestIdleRelease(t *testing.T) {
	rdb, prefix := newRedis(t)
	own, _ := NewRedisOwnership(rdb, prefix, "idle", time.Second)
	cfg := testConfig("idle")
	cfg.Prefix = prefix
	cfg.IdleRelease = 300 * time.Millisecond
	tn := startNode(t, cfg, own, manager.NewMemoryStore())
	const room = "quiet"
	tn.join(1, "v", room)
	tn.node.Unwatch(room)
	key := prefix + ":{" + room + "}:owner"
	eventually(t, 5*time.Second, "the idle room handed over", func() bool {
		return !tn.owns(room) && rdb.Exists(context.Background(), key).Val() == 0
	})
	if n := tn.counter("danmaku_fanout_ownership_total", map[string]string{"event": "released"}); n != 1 {
		t.Errorf("released = %v", n)
	}
	// The next request takes it again.
	if _, err := tn.node.Broadcast(context.Background(), room, manager.Publish{Entry: proto.Entry{Kind: proto.KindNotice, Text: "back", Level: "info"}}); err != nil || !tn.owns(room) {
		t.Fatalf("Broadcast after the handover: %v, owned %v", err, tn.owns(room))
	}
}
