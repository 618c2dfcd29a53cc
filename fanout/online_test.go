package fanout

import (
	"testing"
	"time"
)

func TestOnlineTable(t *testing.T) {
	tab := newOnlineTable(2)
	t0 := time.Now()
	tab.update("a", []roomCount{{"r1", 10}, {"r2", 5}}, t0)
	tab.update("b", []roomCount{{"r1", 7}}, t0.Add(time.Second))
	if got := tab.totals(t0.Add(-time.Second)); got["r1"] != 17 || got["r2"] != 5 {
		t.Fatalf("totals = %v", got)
	}
	// Table full: a third room is dropped, an existing room still updates.
	if dropped := tab.update("b", []roomCount{{"r3", 1}, {"r2", 1}}, t0); dropped != 1 {
		t.Fatalf("dropped = %d, want 1", dropped)
	}
	// A zero removes the node's entry.
	tab.update("a", []roomCount{{"r2", 0}}, t0)
	if got := tab.total("r2"); got != 1 {
		t.Fatalf("r2 after a left = %d, want 1", got)
	}
	// Expiry: a's entries are older than the cutoff.
	got := tab.totals(t0.Add(time.Millisecond))
	if got["r1"] != 7 || got["r2"] != 0 {
		t.Fatalf("totals after expiry = %v", got)
	}
	if rooms, entries := tab.size(); rooms != 1 || entries != 1 {
		t.Fatalf("size = %d rooms %d entries, want 1 1", rooms, entries)
	}
}
