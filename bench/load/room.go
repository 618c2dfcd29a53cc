package load

import (
	"sort"
	"sync"
	"sync/atomic"
)

// room is one room as a worker holds it: its local viewers and what they
// learned about the room's reliable lane.
type room struct {
	id      string
	index   int // in the scenario's layout
	viewers []*viewer

	maxSeen    atomic.Uint64 // highest reliable seq (or joined head) seen
	maxAcked   atomic.Uint64 // highest seq a local gift was acked with
	chatsAcked atomic.Uint64 // local chats acked, sampled-out included

	lane lane
}

func raise(a *atomic.Uint64, v uint64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// lane records each reliable entry of a room once, for the ledger check
// (which gift sits at which seq). Viewers of a hot room see every entry, so
// the common case — already recorded — is one atomic load.
type lane struct {
	upTo    atomic.Uint64 // every seq in (0, upTo] is recorded
	mu      sync.Mutex
	entries map[uint64]LaneEntry
}

// maxLaneEntries bounds what one worker keeps per room: a run with more
// reliable entries than this in one room checks the first ones only.
const maxLaneEntries = 1 << 20

// record keeps e (kind, user, ct of seq) unless seq is already known.
// kind and user are copied only when kept.
func (l *lane) record(room string, seq uint64, kind, user []byte, ct int64) {
	if seq == 0 || seq <= l.upTo.Load() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.entries[seq]; ok || len(l.entries) >= maxLaneEntries {
		return
	}
	if l.entries == nil {
		l.entries = make(map[uint64]LaneEntry)
	}
	l.entries[seq] = LaneEntry{Room: room, Seq: seq, Kind: string(kind), User: string(user), ClientTS: ct}
	up := l.upTo.Load()
	for {
		if _, ok := l.entries[up+1]; !ok {
			break
		}
		up++
	}
	l.upTo.Store(up)
}

// list returns the recorded entries in seq order.
func (l *lane) list() []LaneEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]LaneEntry, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}
