package fanout

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/danmaku/danmaku/room/proto"
)

// Online counts: every OnlineInterval each node reports its rooms' local
// member counts on P.online.<node> (rooms whose members all left once more,
// as 0). Every node keeps the table of all reports; owners hand the
// cluster-wide totals to their manager (batches carry them), and every node
// hands those of its watched rooms to its edge (pongs carry them). A node's
// entries expire after onlineExpiry intervals without a report (a dead
// node).
const (
	onlineExpiry = 3
	// maxNodesPerRoom bounds one room's entries in the table: a cluster has
	// at most a few hundred nodes.
	maxNodesPerRoom = 1024
)

// onlineTable is the cluster-wide count table: room → node → count.
type onlineTable struct {
	mu      sync.Mutex
	max     int // rooms
	rooms   map[string]map[string]countEntry
	entries int
}

type countEntry struct {
	n  int64
	at time.Time // receipt, by this node's clock (no skew)
}

func newOnlineTable(maxRooms int) *onlineTable {
	return &onlineTable{max: maxRooms, rooms: make(map[string]map[string]countEntry)}
}

// update records node's counts; it returns how many it could not keep.
func (t *onlineTable) update(node string, counts []roomCount, at time.Time) (dropped int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range counts {
		byNode := t.rooms[c.Room]
		if c.N == 0 {
			if _, ok := byNode[node]; ok {
				delete(byNode, node)
				t.entries--
				if len(byNode) == 0 {
					delete(t.rooms, c.Room)
				}
			}
			continue
		}
		if byNode == nil {
			if len(t.rooms) >= t.max {
				dropped++
				continue
			}
			byNode = make(map[string]countEntry, 1)
			t.rooms[c.Room] = byNode
		}
		if _, ok := byNode[node]; !ok {
			if len(byNode) >= maxNodesPerRoom {
				dropped++
				continue
			}
			t.entries++
		}
		byNode[node] = countEntry{n: c.N, at: at}
	}
	return dropped
}

// totals returns every room's cluster-wide count, forgetting entries not
// renewed since before cutoff.
func (t *onlineTable) totals(cutoff time.Time) map[string]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int64, len(t.rooms))
	for room, byNode := range t.rooms {
		var sum int64
		for node, e := range byNode {
			if e.at.Before(cutoff) {
				delete(byNode, node)
				t.entries--
				continue
			}
			sum += e.n
		}
		if len(byNode) == 0 {
			delete(t.rooms, room)
			continue
		}
		out[room] = sum
	}
	return out
}

// total is one room's count (0 when unknown).
func (t *onlineTable) total(room string) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var sum int64
	for _, e := range t.rooms[room] {
		sum += e.n
	}
	return sum
}

func (t *onlineTable) size() (rooms, entries int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.rooms), t.entries
}

// onlineLoop is the counts goroutine.
func (n *Node) onlineLoop() {
	t := time.NewTicker(n.cfg.OnlineInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			n.reportCounts()
			n.applyTotals()
		}
	}
}

// reportCounts publishes this node's member counts and records them.
func (n *Node) reportCounts() {
	w := n.wired.Load()
	if w == nil {
		return
	}
	counts := make([]roomCount, 0, len(n.lastReported))
	seen := make(map[string]bool, len(n.lastReported))
	w.edge.LocalCounts(func(room string, c int) {
		if c > 0 && proto.ValidRoom(room) && !seen[room] {
			seen[room] = true
			counts = append(counts, roomCount{Room: room, N: int64(c)})
		}
	})
	for room := range n.lastReported {
		if !seen[room] {
			counts = append(counts, roomCount{Room: room}) // members left: report 0 once
		}
	}
	n.lastReported = seen
	if dropped := n.online.update(n.id, counts, time.Now()); dropped > 0 {
		n.met.drops.WithLabelValues(kindOnline.String(), reasonOnlineFull).Add(float64(dropped))
	}
	if n.solo {
		return
	}
	subject := n.subj.Online(n.id)
	for len(counts) > 0 {
		chunk := counts[:min(len(counts), maxCountsPerMsg)]
		counts = counts[len(chunk):]
		wr := n.getWriter()
		appendCounts(wr, n.id, chunk)
		_ = n.publish(kindOnline, subject, "", wr.B) // counted inside; the next report repairs
		n.putWriter(wr)
	}
}

// onCounts receives another node's counts.
func (n *Node) onCounts(m *nats.Msg) {
	n.met.in(kindOnline, len(m.Data))
	node, counts, err := decodeCounts(m.Data)
	if err == nil && m.Subject[len(n.subj.online):] != node {
		err = badEnvelope("node differs from subject", nil)
	}
	if err != nil {
		n.badEnvelope(kindOnline, m.Subject, err)
		return
	}
	if node == n.id {
		return
	}
	if dropped := n.online.update(node, counts, time.Now()); dropped > 0 {
		n.met.drops.WithLabelValues(kindOnline.String(), reasonOnlineFull).Add(float64(dropped))
	}
}

// applyTotals hands the cluster-wide counts to the manager (owned rooms) and
// the edge (watched rooms), and hands over rooms idle for IdleRelease.
func (n *Node) applyTotals() {
	w := n.wired.Load()
	if w == nil {
		return
	}
	now := time.Now()
	totals := n.online.totals(now.Add(-onlineExpiry * n.cfg.OnlineInterval))
	rooms, entries := n.online.size()
	n.met.onlineRooms.Set(float64(rooms))
	n.met.onlineEntries.Set(float64(entries))

	type roomFlags struct {
		room           string
		owned, watched bool
		idleSince      time.Time
	}
	var list []roomFlags
	n.mu.Lock()
	for room, rs := range n.rooms {
		f := roomFlags{room: room, owned: rs.owned.Load() && !rs.releasing, watched: rs.watched.Load()}
		if !f.owned && !f.watched {
			continue
		}
		if f.owned {
			if totals[room] > 0 || f.watched {
				rs.idleSince = time.Time{}
			} else if rs.idleSince.IsZero() {
				rs.idleSince = now
			}
			f.idleSince = rs.idleSince
		}
		list = append(list, f)
	}
	n.mu.Unlock()

	for _, f := range list {
		total := totals[f.room]
		if f.owned {
			w.mgr.SetOnline(f.room, total)
		}
		if f.watched {
			w.edge.SetOnline(f.room, total)
		}
		if f.owned && n.cfg.IdleRelease > 0 && !f.idleSince.IsZero() && now.Sub(f.idleSince) >= n.cfg.IdleRelease {
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.LeaseOpTimeout+n.cfg.LeaseRenew)
			if err := n.handOver(ctx, f.room); err != nil {
				n.log.Debug("idle room handover", "room", f.room, "err", err)
			}
			cancel()
		}
	}
}
