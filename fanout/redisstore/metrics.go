package redisstore

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

type metrics struct {
	// ops counts calls by op (append, head, since, backlog, …) and result
	// (ok, duplicate, error).
	ops *prometheus.CounterVec
	// errors counts failed calls by op and reason (timeout, conn, loading,
	// readonly, oom, not_owner, corrupt, …).
	errors *prometheus.CounterVec
	// appendSeconds is the latency of Append, whatever its result.
	appendSeconds prometheus.Histogram
	// rotations counts new epochs started over existing data, by reason
	// (missing, lost_writes, log_ahead). A first epoch is not counted.
	rotations *prometheus.CounterVec
	// dropped counts values skipped instead of failing the call, by reason
	// (corrupt_backlog_entry).
	dropped *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "danmaku_redisstore_ops_total",
			Help: "Redis store calls by operation and result (ok, duplicate, error).",
		}, []string{"op", "result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "danmaku_redisstore_errors_total",
			Help: "Failed Redis store calls by operation and reason.",
		}, []string{"op", "reason"}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "danmaku_redisstore_append_seconds",
			Help: "Latency of a reliable append (one Lua script round trip).",
			// 0.1 ms … ~0.8 s: a local Redis answers in ~0.1–0.5 ms, OpTimeout is 0.5 s.
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "danmaku_redisstore_epoch_rotations_total",
			Help: "New epochs started because a room's ledger was lost, mangled or expired (LedgerTTL), by reason.",
		}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "danmaku_redisstore_dropped_total",
			Help: "Stored values skipped instead of returned, by reason.",
		}, []string{"reason"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.ops, m.errors, m.appendSeconds, m.rotations, m.dropped} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// poolCollector exports go-redis's connection pool counters: how many
// connections it holds, how many it had to open (a Redis restart or a
// network cut shows as a burst of dials: the reconnects), and how often a
// call waited past PoolTimeout for one.
type poolCollector struct {
	stats                         func() *redis.PoolStats
	conns, dials, timeouts, stale *prometheus.Desc
}

func newPoolCollector(stats func() *redis.PoolStats) *poolCollector {
	return &poolCollector{
		stats: stats,
		conns: prometheus.NewDesc("danmaku_redisstore_pool_connections",
			"Connections in the Redis pool, by state (total, idle).", []string{"state"}, nil),
		dials: prometheus.NewDesc("danmaku_redisstore_pool_dials_total",
			"Connections the pool had to open (no idle one): startup, then reconnects after Redis restarts or cuts.", nil, nil),
		timeouts: prometheus.NewDesc("danmaku_redisstore_pool_timeouts_total",
			"Calls that waited past the pool timeout for a connection.", nil, nil),
		stale: prometheus.NewDesc("danmaku_redisstore_pool_stale_total",
			"Connections closed as broken or stale.", nil, nil),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.conns
	ch <- c.dials
	ch <- c.timeouts
	ch <- c.stale
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	if st == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.TotalConns), "total")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.IdleConns), "idle")
	ch <- prometheus.MustNewConstMetric(c.dials, prometheus.CounterValue, float64(st.Misses))
	ch <- prometheus.MustNewConstMetric(c.timeouts, prometheus.CounterValue, float64(st.Timeouts))
	ch <- prometheus.MustNewConstMetric(c.stale, prometheus.CounterValue, float64(st.StaleConns))
}
