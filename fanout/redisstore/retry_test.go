package redisstore

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/danmaku/danmaku/room/proto"
)

// dropMarker in a request makes replyDropper swallow the reply and cut the
// connection, once per request carrying it.
const dropMarker = "drop-the-reply-once"

// replyDropper is a TCP proxy to Redis that, for a request holding
// dropMarker, lets Redis run it, then closes the client's connection instead
// of relaying the reply: the client cannot tell whether the command ran.
type replyDropper struct {
	l       net.Listener
	target  string
	arm     atomic.Bool  // the next request with dropMarker loses its reply
	dropped atomic.Int32 // replies dropped so far
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

func newReplyDropper(t *testing.T, target string) *replyDropper {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replyDropper{l: l, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *replyDropper) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *replyDropper) accept() {
	defer p.wg.Done()
	for {
		client, err := p.l.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.track(client)
		p.track(server)
		var drop atomic.Bool
		p.wg.Add(2)
		go func() { // client → server, arming the drop
			defer p.wg.Done()
			defer server.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := client.Read(buf)
				if n > 0 {
					if bytes.Contains(buf[:n], []byte(dropMarker)) && p.arm.CompareAndSwap(true, false) {
						drop.Store(true)
					}
					if _, werr := server.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() { // server → client, dropping an armed reply
			defer p.wg.Done()
			defer client.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := server.Read(buf)
				if n > 0 && drop.Load() {
					p.dropped.Add(1)
					return // the reply is lost with the connection
				}
				if n > 0 {
					if _, werr := client.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// TestLostReplyIsRetriedOnce: Redis runs the append, the reply is lost with
// its connection, go-redis retries the script on a new connection. The retry
// finds the record of its own call: the caller gets the seq as a first append
// (not a duplicate) and the log holds the entry once, with a key or without.
func TestLostReplyIsRetriedOnce(t *testing.T) {
	cfg := testConfig(t)
	direct := newTestStore(t, cfg) // cleans the prefix up
	ro, err := redis.ParseURL(testRedisURL)
	must(t, err)
	proxy := newReplyDropper(t, ro.Addr)
	cfg.URL = "redis://" + proxy.l.Addr().String() + "/0"
	s := newTestStore(t, cfg)
	must(t, appendScript.Load(ctxT(t), direct.rdb).Err()) // no NOSCRIPT round in the dropped request
	for i, key := range []string{"k", ""} {
		proxy.arm.Store(true)
		e := proto.Entry{Kind: proto.KindNotice, Text: dropMarker}
		a := mustAppend(t, s, "r1", key, e)
		if a.Duplicate || a.Entry.Seq != uint64(i+1) {
			t.Fatalf("key %q: %+v, want seq %d, not a duplicate", key, a, i+1)
		}
		if got := proxy.dropped.Load(); got != int32(i+1) {
			t.Fatalf("key %q: %d replies dropped, want %d", key, got, i+1)
		}
	}
	if n := direct.rdb.XLen(ctxT(t), direct.key("r1", "log")).Val(); n != 2 {
		t.Fatalf("%d log entries, want 2", n)
	}
	if d := mustAppend(t, s, "r1", "k", proto.Entry{Kind: proto.KindNotice}); !d.Duplicate || d.Entry.Seq != 1 {
		t.Fatalf("a later call with key k = %+v, want the duplicate of seq 1", d)
	}
}
