package manager

import "github.com/prometheus/client_golang/prometheus"

// WithRegisterer registers the manager's metrics with reg (nil: none).
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) {
		if reg == nil {
			return
		}
		o.onMetrics = append(o.onMetrics, func(m *metrics) error {
			return reg.Register(collector{m})
		})
	}
}

var (
	descInbound = prometheus.NewDesc("danmaku_room_inbound_total",
		"Requests submitted to room owners, by kind.", []string{"kind"}, nil)
	descDropped = prometheus.NewDesc("danmaku_room_dropped_total",
		"Messages dropped by policy or rejected, by reason.", []string{"reason"}, nil)
	descAuth = prometheus.NewDesc("danmaku_room_gift_auth_total",
		"Gift webhook outcomes.", []string{"outcome"}, nil)
	descBatches = prometheus.NewDesc("danmaku_room_batches_total",
		"Batches emitted to the sink.", nil, nil)
	descStretched = prometheus.NewDesc("danmaku_room_ticks_stretched_total",
		"Ticks skipped because the sink was still writing the previous batch.", nil, nil)
	descActive = prometheus.NewDesc("danmaku_room_active",
		"Rooms with a running owner goroutine.", nil, nil)
	descEvicted = prometheus.NewDesc("danmaku_room_evicted_total",
		"Idle rooms stopped.", nil, nil)
	descUserEvicted = prometheus.NewDesc("danmaku_room_user_state_evicted_total",
		"Per-user admission states dropped at MaxUsersPerRoom.", nil, nil)
	descStoreErrors = prometheus.NewDesc("danmaku_room_store_errors_total",
		"Failed store calls.", nil, nil)
	descBatchEntries = prometheus.NewDesc("danmaku_room_batch_entries",
		"Entries per emitted batch.", nil, nil)
	descAppend = prometheus.NewDesc("danmaku_room_append_seconds",
		"Ledger.Append latency.", nil, nil)
)

// collector exports the manager's atomics at scrape time: the hot path pays
// no label lookups.
type collector struct{ m *metrics }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInbound, descDropped, descAuth, descBatches,
		descStretched, descActive, descEvicted, descUserEvicted, descStoreErrors,
		descBatchEntries, descAppend} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for k := range kindCount {
		counter(descInbound, m.inbound[k].Load(), kindNames[k])
	}
	for r := range reasonCount {
		counter(descDropped, m.dropped[r].Load(), reasonNames[r])
	}
	for o := range authCount {
		counter(descAuth, m.auth[o].Load(), authNames[o])
	}
	counter(descBatches, m.batches.Load())
	counter(descStretched, m.stretched.Load())
	counter(descEvicted, m.evictedRooms.Load())
	counter(descUserEvicted, m.userEvictions.Load())
	counter(descStoreErrors, m.storeErrors.Load())
	ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(m.activeRooms.Load()))
	ch <- constHistogram(descBatchEntries, m.batchEntries)
	ch <- constHistogram(descAppend, m.appendSeconds)
}

func constHistogram(d *prometheus.Desc, h *histogram) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.bounds))
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		buckets[b] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.n.Load(), float64(h.sum.Load())/1e6, buckets)
}
