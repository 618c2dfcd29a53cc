package manager

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/danmaku/danmaku/room/proto"
)

func TestPrometheusCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, manualConfig(), WithRegisterer(reg))
	h.send("", proto.RoleGuest, chatMsg(room1, "x"))
	h.flush(t, room1)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == "forbidden" {
					found[mf.GetName()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if found["danmaku_room_dropped_total"] != 1 {
		t.Fatalf("dropped{reason=forbidden} = %v (families %d)", found, len(mfs))
	}
	if _, err := New(manualConfig(), NewMemoryStore(), newRecorder(t), WithRegisterer(reg)); err == nil {
		t.Fatal("a second manager registered the same metrics")
	}
}
