package fanout

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// One node, embedded in-process NATS, local ownership, memory store: the
// default single-node deployment.
func TestSingleNode(t *testing.T) {
	tn := startNode(t, testConfig("solo"), NewLocalOwnership("solo"), manager.NewMemoryStore())
	if err := tn.node.Healthy(); err != nil {
		t.Fatalf("Healthy: %v", err)
	}
	j := tn.join(1, "alice", "r1")
	if j.Room != "r1" {
		t.Fatalf("joined %+v", j)
	}
	if a := tn.chat(1, "alice", "r1", "hello"); a.Code != proto.CodeOK {
		t.Fatalf("chat ack %+v", a)
	}
	eventually(t, 5*time.Second, "the chat in a batch", func() bool { return tn.edge.lossyTexts("r1")["hello"] == 1 })

	g := tn.gift(1, "alice", "r1", "k1")
	if g.Code != proto.CodeOK || g.Seq != j.State.Seq+1 {
		t.Fatalf("gift ack %+v after joined seq %d", g, j.State.Seq)
	}
	ctx := context.Background()
	notice := manager.Publish{Entry: proto.Entry{Kind: proto.KindNotice, Text: "welcome", Level: "info"}, Key: "n1"}
	a, err := tn.node.Broadcast(ctx, "r1", notice)
	if err != nil || a.Seq != g.Seq+1 {
		t.Fatalf("Broadcast = %+v, %v; want seq %d", a, err, g.Seq+1)
	}
	if a2, err := tn.node.Broadcast(ctx, "r1", notice); err != nil || a2.Seq != a.Seq || !a2.Duplicate {
		t.Fatalf("Broadcast retry = %+v, %v; want the original seq, duplicate", a2, err)
	}
	eventually(t, 5*time.Second, "gift and notice in batches", func() bool {
		rel := tn.edge.reliable("r1")
		return len(rel) == 2 && rel[0].Seq == g.Seq && rel[1].Seq == a.Seq && rel[1].Text == "welcome"
	})
	// Alone with no listener and no routes: nothing goes through NATS.
	if out := tn.counter("danmaku_fanout_nats_messages_total", map[string]string{"dir": "out", "kind": "out"}); out != 0 {
		t.Errorf("%v batches published to NATS by a solo node", out)
	}
	if local := tn.counter("danmaku_fanout_local_total", map[string]string{"what": "batch"}); local == 0 {
		t.Error("no batch delivered locally")
	}

	// After Unwatch the edge gets nothing more.
	tn.node.Unwatch("r1")
	before := tn.edge.batchCount("r1")
	if _, err := tn.node.Broadcast(ctx, "r1", manager.Publish{Entry: proto.Entry{Kind: proto.KindNotice, Text: "x", Level: "info"}}); err != nil {
		t.Fatal(err)
	}
	if got := tn.edge.batchCount("r1"); got != before {
		t.Errorf("unwatched room delivered %d batches", got-before)
	}
}

func TestBusRejects(t *testing.T) {
	tn := startNode(t, testConfig("n"), NewLocalOwnership("n"), manager.NewMemoryStore())
	if err := tn.node.Watch("bad room"); !errors.Is(err, proto.CodeBadRequest) {
		t.Errorf("Watch(bad) = %v", err)
	}
	if err := tn.node.Forward(&manager.Inbound{}); !errors.Is(err, proto.CodeBadRequest) {
		t.Errorf("Forward(no msg) = %v", err)
	}
	if err := tn.node.Forward(&manager.Inbound{Msg: &proto.Chat{Room: "a.b"}}); !errors.Is(err, proto.CodeBadRequest) {
		t.Errorf("Forward(bad room) = %v", err)
	}
	if _, err := tn.node.Broadcast(context.Background(), "r", manager.Publish{Entry: proto.Entry{Kind: proto.KindChat}}); !errors.Is(err, proto.CodeBadRequest) {
		t.Errorf("Broadcast(chat) = %v", err)
	}
	if err := tn.node.Control(context.Background(), ControlEvent{Kind: ControlKick}); !errors.Is(err, proto.CodeBadRequest) {
		t.Errorf("Control(kick nobody) = %v", err)
	}
	tn.kill()
	if err := tn.node.Healthy(); err == nil {
		t.Error("Healthy after Close")
	}
	if err := tn.node.Forward(&manager.Inbound{Msg: &proto.Chat{Room: "r"}}); !errors.Is(err, proto.CodeUnavailable) {
		t.Errorf("Forward after Close = %v", err)
	}
}

// With a client listener the embedded server is reachable by other NATS
// clients: the subjects are as documented and batches carry envelopes.
func TestEmbeddedClientListener(t *testing.T) {
	cfg := testConfig("lst")
	cfg.Embedded.ClientAddr = "127.0.0.1:0"
	tn := startNode(t, cfg, NewLocalOwnership("lst"), manager.NewMemoryStore())
	nc, err := nats.Connect(tn.node.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	got := make(chan *manager.Emitted, 16)
	if _, err := nc.Subscribe("dmk.out.r1", func(m *nats.Msg) {
		if _, e, err := decodeBatch(m.Data); err == nil {
			got <- e
		}
	}); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	tn.join(1, "bob", "r1")
	tn.chat(1, "bob", "r1", "over nats")
	select {
	case e := <-got:
		if e.Room != "r1" || len(e.Body) == 0 {
			t.Fatalf("batch %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no batch on dmk.out.r1")
	}
}
