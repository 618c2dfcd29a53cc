package redisstore

import "github.com/prometheus/client_golang/prometheus"

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
