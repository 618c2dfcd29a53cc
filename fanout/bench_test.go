package fanout

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// BenchmarkCrossNode sends chats into one room that has members on every
// node, round-robin over the nodes, as fast as the pipeline answers: like
// clients waiting for acks, at most benchWindow chats are unanswered at once
// (which keeps the offered rate under the room's budget, so the benchmark
// measures the bus, not the sampling). Per chat sent it reports the NATS
// messages published by all nodes (requests, batches, replies) and
// delivered to them, the batches delivered to edges, and chat deliveries
// per second to the edges (one delivery = one chat reaching one node's
// edge). 1 node is the embedded single-node default; 3 nodes share a
// 3-server NATS cluster and Redis.
//
//	go test -run '^$' -bench CrossNode -benchtime 20000x ./fanout/
func BenchmarkCrossNode(b *testing.B) {
	for _, size := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) { benchCrossNode(b, size) })
	}
}

// benchWindow is how many chats may await their ack: 1,900 per 20 ms tick
// is 95,000 chats/s at most, just under the test manager's budget (100,000,
// the manager's maximum).
const benchWindow = 1900

func benchCrossNode(b *testing.B, size int) {
	var nodes []*testNode
	if size == 1 {
		nodes = append(nodes, startNode(b, testConfig("solo"), NewLocalOwnership("solo"), manager.NewMemoryStore()))
	} else {
		nodes = newCluster(b, size, nil).nodes
	}
	const room = "bench"
	for i, tn := range nodes {
		tn.join(1, fmt.Sprintf("v%d", i), room)
	}
	// Warm up until a chat sent on the last node reaches every node.
	for i := 0; ; i++ {
		text := fmt.Sprintf("warm %d", i)
		nodes[len(nodes)-1].chat(1, "warm", room, text)
		all := true
		for _, tn := range nodes {
			all = all && tn.edge.lossyTexts(room)[text] == 1
		}
		if all {
			break
		}
		if i > 200 {
			b.Fatal("warm-up chats do not reach every node")
		}
		time.Sleep(10 * time.Millisecond) // pacing the warm-up
	}
	for _, tn := range nodes {
		tn.edge.countOnly = true
	}
	sum := func(f func(tn *testNode) int64) (n int64) {
		for _, tn := range nodes {
			n += f(tn)
		}
		return n
	}
	natsOut := func(tn *testNode) int64 { return int64(tn.node.nc.Stats().OutMsgs) }
	natsIn := func(tn *testNode) int64 { return int64(tn.node.nc.Stats().InMsgs) }
	acks := func(tn *testNode) int64 { return tn.edge.acks.Load() }
	out0, in0 := sum(natsOut), sum(natsIn)
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for int64(i)-sum(acks) >= benchWindow {
			time.Sleep(50 * time.Microsecond) // waiting for acks, as a client would
		}
		tn := nodes[i%len(nodes)]
		user := fmt.Sprintf("u%d", i%1000)
		in := &manager.Inbound{Node: tn.node.ID(), Session: uint64(1000 + i%1000), User: user, Name: user,
			Role: proto.RoleViewer, Msg: &proto.Chat{ID: uint32(i), Room: room, Text: fmt.Sprintf("m%d", i)},
			Received: time.Now().UnixMilli()}
		if err := tn.node.Forward(in); err != nil {
			b.Fatal(err)
		}
	}
	// Wait (bounded) for every ack and every delivery.
	want := int64(b.N * len(nodes))
	chats := func(tn *testNode) int64 { return tn.edge.chats.Load() }
	deadline := time.Now().Add(30 * time.Second)
	for (sum(acks) < int64(b.N) || sum(chats) < want) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling the counters
	}
	elapsed := time.Since(start)
	b.StopTimer()
	delivered := sum(chats)
	broadcast := float64(delivered) / float64(len(nodes)) // chats that reached the room
	b.ReportMetric(float64(sum(natsOut)-out0)/broadcast, "nats-pub/chat")
	b.ReportMetric(float64(sum(natsIn)-in0)/broadcast, "nats-recv/chat")
	b.ReportMetric(float64(sum(func(tn *testNode) int64 { return tn.edge.nbatches.Load() }))/broadcast, "batches/chat")
	b.ReportMetric(float64(delivered)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(delivered)/float64(want), "delivered-ratio")
}

// nopEdge is an Edge that only counts batches.
type nopEdge struct{ batches atomic.Int64 }

func (e *nopEdge) DeliverBatch(*manager.Emitted)       { e.batches.Add(1) }
func (e *nopEdge) DeliverReply(manager.Reply)          {}
func (e *nopEdge) LocalCounts(func(string, int))       {}
func (e *nopEdge) SetOnline(string, int64)             {}
func (e *nopEdge) Kick(string, string, proto.Code) int { return 0 }
func (e *nopEdge) Drain(context.Context) error         { return nil }

// BenchmarkSinkPublish is the manager's output path for one 4 KiB batch on
// a node that may have remote interest (not solo): local delivery, the
// envelope into a pooled buffer, the publish queue and the NATS publish,
// waiting (as a room does through Pending) until the previous one is out.
//
//	go test -run '^$' -bench SinkPublish -benchmem ./fanout/
func BenchmarkSinkPublish(b *testing.B) {
	cfg := testConfig("pub")
	cfg.Embedded.ClientAddr = "127.0.0.1:0"
	n, err := New(cfg, NewLocalOwnership("pub"), WithLogger(testLogger()))
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	mgr, err := manager.New(testManagerConfig(), manager.NewMemoryStore(), n)
	if err != nil {
		b.Fatal(err)
	}
	defer mgr.Close()
	edge := &nopEdge{}
	if err := n.Start(mgr, edge); err != nil {
		b.Fatal(err)
	}
	if err := n.Watch("r"); err != nil {
		b.Fatal(err)
	}
	e := &manager.Emitted{Room: "r", Tick: 1, Body: make([]byte, 4<<10), Online: -1, At: 1}
	b.ReportAllocs()
	b.SetBytes(int64(len(e.Body)))
	for b.Loop() {
		for n.Pending("r") {
			runtime.Gosched()
		}
		n.Publish(e)
	}
	if edge.batches.Load() == 0 {
		b.Fatal("nothing delivered locally")
	}
}
