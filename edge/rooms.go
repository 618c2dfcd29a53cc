package edge

import (
	"sync"
	"sync/atomic"
)

// roomTable is the node's view of its rooms: which event loops have members
// of a room (so DeliverBatch wakes only those), how many members the node has
// (LocalCounts) and the cached cluster-wide online count (pongs).
//
// Its lock is taken by a loop only when the loop gains its first member of a
// room or loses its last, and (read) once per DeliverBatch. It is never held
// across I/O.
type roomTable struct {
	mu    sync.RWMutex
	rooms map[string]*roomInfo
	loops int
}

type roomInfo struct {
	name    string
	online  atomic.Int64 // cluster-wide count from batches or SetOnline; -1 unknown
	members atomic.Int64 // members on this node, all loops
	present []bool       // present[i]: loop i has members; guarded by roomTable.mu
	nloops  int          // loops with members; guarded by roomTable.mu
}

func newRoomTable(loops int) *roomTable {
	return &roomTable{rooms: make(map[string]*roomInfo), loops: loops}
}

// attach records that loop has a member of room now, creating the room.
func (t *roomTable) attach(room string, loop int) *roomInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	ri := t.rooms[room]
	if ri == nil {
		ri = &roomInfo{name: room, present: make([]bool, t.loops)}
		ri.online.Store(-1)
		t.rooms[room] = ri
	}
	if !ri.present[loop] {
		ri.present[loop] = true
		ri.nloops++
	}
	return ri
}

// detach records that loop has no member of ri any more. It reports whether
// the node has none left (the room is forgotten and may be unwatched).
func (t *roomTable) detach(ri *roomInfo, loop int) (last bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ri.present[loop] {
		ri.present[loop] = false
		ri.nloops--
	}
	if ri.nloops > 0 {
		return false
	}
	if t.rooms[ri.name] == ri {
		delete(t.rooms, ri.name)
	}
	return true
}

// lookup returns the room's info, or nil when no loop has a member.
func (t *roomTable) lookup(room string) *roomInfo {
	t.mu.RLock()
	ri := t.rooms[room]
	t.mu.RUnlock()
	return ri
}

// loopsOf copies which loops have members of room into dst (len ≥ loops).
// It returns the room, or nil when it has no local member.
func (t *roomTable) loopsOf(room string, dst []bool) *roomInfo {
	t.mu.RLock()
	defer t.mu.RUnlock()
	ri := t.rooms[room]
	if ri != nil {
		copy(dst, ri.present)
	}
	return ri
}

// each calls fn for every room outside the lock (fn may take its time).
func (t *roomTable) each(fn func(ri *roomInfo)) {
	t.mu.RLock()
	all := make([]*roomInfo, 0, len(t.rooms))
	for _, ri := range t.rooms {
		all = append(all, ri)
	}
	t.mu.RUnlock()
	for _, ri := range all {
		fn(ri)
	}
}

func (t *roomTable) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.rooms)
}

// loopRoom is one loop's members of one room. Only its loop touches it.
type loopRoom struct {
	info    *roomInfo
	members []*conn
	queued  []*frames // batches taken from the inbox in the current task
}

// roomSlot is one room a connection joined.
type roomSlot struct {
	lr      *loopRoom
	idx     int32  // position in lr.members
	missed  uint32 // lossy batches skipped while past the soft cap, not yet told
	joinID  uint32 // id of the join or resume awaiting its answer
	joining bool
}

// addMember puts c in room's member list on this loop. The caller appends the
// returned slot to c.rooms.
func (l *loop) addMember(c *conn, room string) roomSlot {
	lr := l.rooms[room]
	if lr == nil {
		lr = &loopRoom{info: l.srv.rooms.attach(room, l.idx)}
		l.rooms[room] = lr
	}
	lr.members = append(lr.members, c)
	lr.info.members.Add(1)
	return roomSlot{lr: lr, idx: int32(len(lr.members) - 1)}
}

// removeSlot takes c out of the room of c.rooms[i]. It is O(1): the last
// member moves into the hole. When the loop has no member left the room is
// dropped here, and when the node has none left the forwarder is told, so
// it unwatches the room.
func (l *loop) removeSlot(c *conn, i int) {
	s := c.rooms[i]
	lr := s.lr
	last := len(lr.members) - 1
	moved := lr.members[last]
	lr.members[s.idx] = moved
	lr.members[last] = nil
	lr.members = lr.members[:last]
	if moved != c {
		moved.slotOf(lr).idx = s.idx
	}
	lr.info.members.Add(-1)
	c.rooms = append(c.rooms[:i], c.rooms[i+1:]...)
	if len(c.rooms) == 0 {
		c.rooms = nil // idle connections keep nothing
	}
	if len(lr.members) > 0 {
		return
	}
	name := lr.info.name
	if l.rooms[name] == lr {
		delete(l.rooms, name)
	}
	if l.srv.rooms.detach(lr.info, l.idx) {
		l.srv.fwd.unwatchHint(name)
	}
}

// slotOf returns c's slot for lr (c is a member).
func (c *conn) slotOf(lr *loopRoom) *roomSlot {
	for i := range c.rooms {
		if c.rooms[i].lr == lr {
			return &c.rooms[i]
		}
	}
	return &roomSlot{} // unreachable while the member lists are consistent
}

// slotIndex returns the index in c.rooms of room, or -1.
func (c *conn) slotIndex(room string) int {
	for i := range c.rooms {
		if c.rooms[i].lr.info.name == room {
			return i
		}
	}
	return -1
}
