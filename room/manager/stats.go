package manager

import "time"

// RoomStats describes one active room (Manager.Rooms).
type RoomStats struct {
	Room   string
	Online int64  // last count from SetOnline, -1 when unknown
	Epoch  string // "" while the store could not be read
	Seq    uint64 // last reliable seq broadcast
	Tick   uint64 // last batch's Tick
	// TickInterval and Budget are the effective values (Policy or Config).
	TickInterval time.Duration
	Budget       int
	Policy       Policy
	Users        int // senders with admission state
	// InboundRate is requests/s and OutboundRate entries/s broadcast, over the
	// last full second (0 when the room has been quiet for longer).
	InboundRate  float64
	OutboundRate float64
	Inbound      uint64            // requests since activation
	Outbound     uint64            // entries broadcast since activation
	Dropped      map[string]uint64 // drops and rejections by reason (non-zero only)
	Degraded     bool              // part of the state could not be read from the store
}

// publishStats refreshes the snapshot Rooms reads (once a second while the
// room is busy, and when it stops).
func (r *room) publishStats(now int64) {
	secs := float64(now-r.rateAt) / 1e9
	st := RoomStats{
		Room: r.id, Online: r.online, Epoch: r.epoch, Seq: r.emitted, Tick: r.tickN,
		TickInterval: time.Duration(r.tick), Budget: r.budget, Policy: r.policy,
		Users: len(r.users), Inbound: r.inTotal, Outbound: r.outTotal, Degraded: r.missing != 0,
	}
	if secs > 0 {
		st.InboundRate = float64(r.inTotal-r.inAtRate) / secs
		st.OutboundRate = float64(r.outTotal-r.outAtRate) / secs
	}
	r.rateAt, r.inAtRate, r.outAtRate = now, r.inTotal, r.outTotal
	r.statsMu.Lock()
	r.stats, r.statsAt = st, now
	r.statsMu.Unlock()
}

// Rooms returns the active rooms' stats.
func (m *Manager) Rooms() []RoomStats {
	m.mu.RLock()
	rs := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		rs = append(rs, r)
	}
	m.mu.RUnlock()
	now := m.now()
	out := make([]RoomStats, 0, len(rs))
	for _, r := range rs {
		r.statsMu.Lock()
		st, at := r.stats, r.statsAt
		r.statsMu.Unlock()
		st.Room = r.id
		if now-at > 2*int64(rateWindow) {
			st.InboundRate, st.OutboundRate = 0, 0
		}
		st.Dropped = map[string]uint64{}
		for why := range reasonCount {
			if v := r.drops[why].Load(); v > 0 {
				st.Dropped[reasonNames[why]] = v
			}
		}
		out = append(out, st)
	}
	return out
}
