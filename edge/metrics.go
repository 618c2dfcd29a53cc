package edge

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/danmaku/danmaku/room/proto"
)

// Why a new connection was refused in OnOpen.
type rejectReason uint8

const (
	rejectServerFull rejectReason = iota // MaxConns reached
	rejectPerIP                          // MaxConnsPerIP reached for the source address
	rejectAcceptRate                     // AcceptRate exceeded
	rejectDraining                       // the node is draining
	numRejects
)

var rejectNames = [numRejects]string{"server_full", "per_ip", "accept_rate", "draining"}

// Why an accepted connection ended.
type closeReason uint8

const (
	closePeer             closeReason = iota // the client closed or the socket failed
	closeBadPreamble                         // first bytes neither "GET " nor "DMK"
	closeBadHTTP                             // not a valid WebSocket upgrade (HTTP 400)
	closeHeaderTooLarge                      // upgrade request head over 8 KiB (HTTP 431)
	closeHandshakeTimeout                    // no hello answered within HandshakeTimeout
	closeHeartbeatTimeout                    // nothing received for two heartbeats
	closeSlowConsumer                        // outbound backlog past HardCap
	closeProtocol                            // fatal protocol error (bad_frame, too_large, invalid_text, hello_first, bad_version)
	closeAuth                                // unauthorized or token_expired
	closeWSUnmasked                          // unmasked client WebSocket frame
	closeWSText                              // text WebSocket frame (binary only)
	closeWSProtocol                          // other RFC 6455 violation
	closeWSClose                             // the client sent a WebSocket close
	closeRateLimited                         // request flood past ConnAbuse × ConnRate
	closeKicked                              // Server.Kick
	closeDrain                               // drain: still open at the deadline, or mid-handshake
	closeStopped                             // Server.Stop
	numCloses
)

// input reports whether the close was the client's bad input (counted in
// bad_input_total too).
func (r closeReason) input() bool {
	switch r {
	case closeProtocol, closeAuth, closeWSUnmasked, closeWSText, closeWSProtocol, closeRateLimited:
		return true
	}
	return false
}

var closeNames = [numCloses]string{
	"peer", "bad_preamble", "bad_http", "header_too_large", "handshake_timeout", "heartbeat_timeout",
	"slow_consumer", "protocol", "auth", "ws_unmasked", "ws_text", "ws_protocol", "ws_close",
	"rate_limited", "kicked", "drain", "stopped",
}

// What was dropped (never silently).
type dropReason uint8

const (
	dropForwardQueueFull dropReason = iota // forward queue full: answered unavailable
	dropForwardFailed                      // Bus.Forward failed: answered unavailable
	dropWatchFailed                        // Bus.Watch failed: join answered unavailable
	dropSessionGone                        // a reply for a session no longer here
	dropWrongNode                          // a reply addressed to another node
	dropReplyQueueFull                     // a loop's reply inbox full
	dropLoopBacklog                        // a loop's batch inbox full (lossy first)
	dropBatchTooLarge                      // a batch above proto.MaxServerFrame
	dropNoMembers                          // a batch for a room with no local member (after Unwatch)
	numDrops
)

var dropNames = [numDrops]string{
	"forward_queue_full", "forward_failed", "watch_failed", "session_gone", "wrong_node",
	"reply_queue_full", "loop_backlog", "batch_too_large", "no_members",
}

// numTypes covers every proto.Type up to TypeMissed, index 0 for unknown.
const numTypes = int(proto.TypeMissed) + 1

// maxCodes bounds the wire codes counted; proto has 27 today.
const maxCodes = 48

// codeIndex maps a wire code to its slot in counters.badInput.
var codeIndex = func() map[proto.Code]int {
	m := make(map[proto.Code]int, len(proto.Codes))
	for i, c := range proto.Codes {
		if i < maxCodes {
			m[c] = i
		}
	}
	return m
}()

// counters are plain atomics: each event loop has its own set (no cache line
// shared between loops on the hot path) and the server one more for what
// happens off the loops. Stats and the Prometheus collector sum them.
type counters struct {
	accepts   atomic.Uint64
	rejects   [numRejects]atomic.Uint64
	closes    [numCloses]atomic.Uint64
	drops     [numDrops]atomic.Uint64
	badInput  [maxCodes]atomic.Uint64 // keyed like proto.Codes
	framesIn  [numTypes]atomic.Uint64
	batches   atomic.Uint64 // batches taken by a loop (one per batch per loop)
	writes    atomic.Uint64 // fan-out socket writes
	bytesOut  atomic.Uint64 // every byte handed to gnet for writing
	skipped   atomic.Uint64 // lossy batches skipped for soft-capped connections (per connection)
	outbound  atomic.Int64  // sum of OutboundBuffered, sampled on the scan tick
	delivered atomic.Uint64 // batches handed to DeliverBatch (server set only)
	_         [64]byte      // keep loops' sets on separate cache lines
}

func (c *counters) badCode(code proto.Code) {
	if i, ok := codeIndex[code]; ok {
		c.badInput[i].Add(1)
	}
}

func (c *counters) frameIn(t proto.Type) {
	if int(t) >= numTypes {
		t = 0
	}
	c.framesIn[t].Add(1)
}

// collector exports the server's counters to Prometheus.
type collector struct {
	s *Server

	accepts, rejects, closes, drops, badInput, framesIn *prometheus.Desc
	batches, delivered, writes, bytesOut, skipped       *prometheus.Desc
	conns, rooms, members, outbound, forwardQueue       *prometheus.Desc
	pressure                                            *prometheus.Desc
	latency                                             prometheus.Histogram
}

func newCollector(s *Server) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("danmaku_edge_"+name, help, labels, nil)
	}
	return &collector{
		s:            s,
		accepts:      d("accepts_total", "Connections accepted by the listener (before admission)."),
		rejects:      d("rejects_total", "Connections refused at admission, by reason.", "reason"),
		closes:       d("closes_total", "Connections ended, by reason (peer = the client's doing).", "reason"),
		drops:        d("drops_total", "Requests, replies and batches dropped by the edge, by reason.", "reason"),
		badInput:     d("bad_input_total", "Client input rejected, by wire code.", "code"),
		framesIn:     d("frames_in_total", "Client frames decoded, by message type.", "type"),
		delivered:    d("fanout_batches_delivered_total", "Room batches the bus delivered to this node."),
		batches:      d("fanout_loop_batches_total", "Room batches written by an event loop (one per batch per loop)."),
		writes:       d("fanout_writes_total", "Socket writes of room batches (one per member per loop task, coalesced)."),
		bytesOut:     d("bytes_out_total", "Bytes handed to the sockets."),
		skipped:      d("lossy_skipped_total", "Lossy batches not sent to a connection past its soft cap (per connection)."),
		conns:        d("connections", "Open connections, by transport (pending = not yet identified).", "transport"),
		rooms:        d("rooms", "Rooms with at least one local member."),
		members:      d("members", "Room memberships on this node."),
		outbound:     d("outbound_buffered_bytes", "Bytes waiting in connections' outbound buffers (sampled each scan tick)."),
		forwardQueue: d("forward_queue", "Requests waiting for the Bus.Forward goroutines."),
		pressure:     d("outbound_pressure", "1 while the node's outbound backlog is past MaxOutbound (connections held to a fair share)."),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "danmaku_edge_fanout_latency_seconds",
			Help:    "From the owner emitting a batch to an event loop having written it to its members.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.accepts, c.rejects, c.closes, c.drops, c.badInput, c.framesIn,
		c.delivered, c.batches, c.writes, c.bytesOut, c.skipped, c.conns, c.rooms, c.members, c.outbound, c.forwardQueue, c.pressure} {
		ch <- d
	}
	c.latency.Describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter(c.accepts, st.Accepted)
	for k, v := range st.Rejects {
		counter(c.rejects, v, k)
	}
	for k, v := range st.Closes {
		counter(c.closes, v, k)
	}
	for k, v := range st.Drops {
		counter(c.drops, v, k)
	}
	for k, v := range st.BadInput {
		counter(c.badInput, v, k)
	}
	for k, v := range st.FramesIn {
		counter(c.framesIn, v, k)
	}
	counter(c.delivered, st.BatchesDelivered)
	counter(c.batches, st.LoopBatches)
	counter(c.writes, st.Writes)
	counter(c.bytesOut, st.BytesOut)
	counter(c.skipped, st.LossySkipped)
	gauge(c.conns, st.ConnsPending, "pending")
	gauge(c.conns, st.ConnsTCP, "tcp")
	gauge(c.conns, st.ConnsWS, "ws")
	gauge(c.rooms, int64(st.Rooms))
	gauge(c.members, st.Members)
	gauge(c.outbound, st.OutboundBuffered)
	gauge(c.forwardQueue, int64(st.ForwardQueue))
	p := int64(0)
	if st.OutboundPressure {
		p = 1
	}
	gauge(c.pressure, p)
	c.latency.Collect(ch)
}
