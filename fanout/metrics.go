package fanout

import (
	"github.com/prometheus/client_golang/prometheus"
)

// kind is the subject kind of a NATS message, a metrics label.
type kind uint8

const (
	kindIn kind = iota
	kindOut
	kindReply
	kindNoResp
	kindOnline
	kindCtl
	kindSurvey
	numKinds
)

var kindNames = [numKinds]string{"in", "out", "reply", "noresp", "online", "ctl", "survey"}

func (k kind) String() string { return kindNames[k] }

// Drop reasons (label "reason" of danmaku_fanout_drops_total).
const (
	reasonSlowConsumer = "slow_consumer"     // past a subscription's pending limit (nats.go dropped it)
	reasonQueueFull    = "queue_full"        // the publish queue was full
	reasonPublish      = "nats_publish"      // nats.go refused the publish (reconnect buffer full, closed, too large)
	reasonBadEnvelope  = "bad_envelope"      // a message that does not decode
	reasonNotOwner     = "not_owner"         // a request reached a node that no longer owns the room (answered unavailable)
	reasonNoReceiver   = "no_receiver"       // a reply for an API call that already gave up
	reasonOnlineFull   = "online_table_full" // counts for a room past MaxOnlineRooms
	reasonBadReply     = "bad_reply_node"    // a reply for a node id that is not subject-safe
)

// Ownership events (label "event" of danmaku_fanout_ownership_total).
const (
	ownAcquired = "acquired" // this node became a room's owner
	ownLost     = "lost"     // another node took the lease, or StrictLease gave it up
	ownReleased = "released" // handed over on drain or idle
	ownChanged  = "changed"  // a room's owner changed from one node to another (as seen here)
)

type metrics struct {
	msgsIn, msgsOut   [numKinds]prometheus.Counter
	bytesIn, bytesOut [numKinds]prometheus.Counter
	drops             *prometheus.CounterVec
	natsEvents        *prometheus.CounterVec
	noResponders      prometheus.Counter
	ownership         *prometheus.CounterVec
	leaseErrors       *prometheus.CounterVec
	local             *prometheus.CounterVec
	localBatch        prometheus.Counter
	localRequest      prometheus.Counter
	localReply        prometheus.Counter
	onlineRooms       prometheus.Gauge
	onlineEntries     prometheus.Gauge
	ownedRooms        prometheus.Gauge
	watchedRooms      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	msgs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "danmaku_fanout_nats_messages_total",
		Help: "NATS messages sent (dir=out) and received (dir=in) by this node, by subject kind.",
	}, []string{"dir", "kind"})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "danmaku_fanout_nats_bytes_total",
		Help: "NATS payload bytes sent (dir=out) and received (dir=in) by this node, by subject kind.",
	}, []string{"dir", "kind"})
	m := &metrics{
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "danmaku_fanout_drops_total",
			Help: "Messages the fan-out layer dropped, by subject kind and reason.",
		}, []string{"kind", "reason"}),
		natsEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "danmaku_fanout_nats_events_total",
			Help: "NATS connection events: disconnected, reconnected, closed, slow_consumer, error.",
		}, []string{"event"}),
		noResponders: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "danmaku_fanout_no_responders_total",
			Help: "Requests that reached no room owner (NATS 503), answered unavailable.",
		}),
		ownership: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "danmaku_fanout_ownership_total",
			Help: "Room ownership events: acquired, lost, released (handed over), changed (owner change seen).",
		}, []string{"event"}),
		leaseErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "danmaku_fanout_lease_errors_total",
			Help: "Ownership calls that failed (store unreachable), by op: acquire, renew (one per round), release, owners.",
		}, []string{"op"}),
		local: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "danmaku_fanout_local_total",
			Help: "Batches, requests and replies served in-process, without NATS.",
		}, []string{"what"}),
		onlineRooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "danmaku_fanout_online_rooms",
			Help: "Rooms in the cluster-wide online-count table.",
		}),
		onlineEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "danmaku_fanout_online_entries",
			Help: "(room, node) counts in the online-count table.",
		}),
		ownedRooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "danmaku_fanout_owned_rooms",
			Help: "Rooms this node owns.",
		}),
		watchedRooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "danmaku_fanout_watched_rooms",
			Help: "Rooms this node has members in (subscribed to their batches).",
		}),
	}
	for k := kind(0); k < numKinds; k++ {
		m.msgsIn[k] = msgs.WithLabelValues("in", k.String())
		m.msgsOut[k] = msgs.WithLabelValues("out", k.String())
		m.bytesIn[k] = bytes.WithLabelValues("in", k.String())
		m.bytesOut[k] = bytes.WithLabelValues("out", k.String())
	}
	m.localBatch = m.local.WithLabelValues("batch")
	m.localRequest = m.local.WithLabelValues("request")
	m.localReply = m.local.WithLabelValues("reply")
	if reg != nil {
		reg.MustRegister(msgs, bytes, m.drops, m.natsEvents, m.noResponders, m.ownership,
			m.leaseErrors, m.local, m.onlineRooms, m.onlineEntries, m.ownedRooms, m.watchedRooms)
	}
	return m
}

func (m *metrics) in(k kind, n int) {
	m.msgsIn[k].Inc()
	m.bytesIn[k].Add(float64(n))
}

func (m *metrics) out(k kind, n int) {
	m.msgsOut[k].Inc()
	m.bytesOut[k].Add(float64(n))
}

func (m *metrics) drop(k kind, reason string) { m.drops.WithLabelValues(k.String(), reason).Inc() }
