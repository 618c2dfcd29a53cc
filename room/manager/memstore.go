package manager

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// MemoryStore is the single-node Store: everything in this process's memory,
// lost on restart. Its epoch is random per instance, so after a restart every
// client's (epoch, seq) is recognisably from an older life and resumes start
// over instead of trusting seqs that now mean other entries.
//
// It grows with the rooms that ever got a reliable entry, a backlog, a
// sanction or a policy: fine for one node's lifetime, not an archive.
type MemoryStore struct {
	// Retention is how many of a room's newest reliable entries Since can
	// return. Default (0) 1000. Set before first use.
	Retention int
	// KeyRetention is how many idempotency keys a room remembers (oldest
	// forgotten first). A retry with a forgotten key is appended again, so
	// this must outlast any client's retry horizon. Default (0) 100,000.
	KeyRetention int

	mu        sync.Mutex
	epoch     string
	rooms     map[string]*memLedger
	backlogs  map[string][]proto.Entry
	sanctions map[memSanctionKey]Sanction
	policies  map[string]Policy
}

const (
	defaultMemRetention    = 1000
	defaultMemKeyRetention = 100000
)

type memLedger struct {
	seq     uint64
	entries []proto.Entry // the newest Retention, oldest first; entries[i].Seq = seq-len+1+i
	keys    map[string]proto.Entry
	order   []string // keys, oldest first, for forgetting
}

type memSanctionKey struct {
	room, user string
	ban        bool
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store with a fresh random epoch.
func NewMemoryStore() *MemoryStore {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return &MemoryStore{
		epoch:     hex.EncodeToString(b[:]),
		rooms:     map[string]*memLedger{},
		backlogs:  map[string][]proto.Entry{},
		sanctions: map[memSanctionKey]Sanction{},
		policies:  map[string]Policy{},
	}
}

// Epoch is this instance's epoch (the same for every room).
func (s *MemoryStore) Epoch() string { return s.epoch }

func (s *MemoryStore) retention() int {
	if s.Retention > 0 {
		return s.Retention
	}
	return defaultMemRetention
}

func (s *MemoryStore) keyRetention() int {
	if s.KeyRetention > 0 {
		return s.KeyRetention
	}
	return defaultMemKeyRetention
}

func (s *MemoryStore) head(room string) Head {
	h := Head{Epoch: s.epoch}
	if l := s.rooms[room]; l != nil {
		h.Seq = l.seq
	}
	return h
}

// Head returns the store's epoch and the room's last seq.
func (s *MemoryStore) Head(ctx context.Context, room string) (Head, error) {
	if err := ctx.Err(); err != nil {
		return Head{}, fmt.Errorf("head of room %q: %w", room, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.head(room), nil
}

// Append assigns the next seq to e and keeps it, unless key was seen.
func (s *MemoryStore) Append(ctx context.Context, room, key string, e proto.Entry) (Appended, error) {
	if err := ctx.Err(); err != nil {
		return Appended{}, fmt.Errorf("append to room %q: %w", room, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.rooms[room]
	if l == nil {
		l = &memLedger{keys: map[string]proto.Entry{}}
		s.rooms[room] = l
	}
	if key != "" {
		if old, ok := l.keys[key]; ok {
			return Appended{Entry: old, Epoch: s.epoch, Duplicate: true}, nil
		}
	}
	l.seq++
	e.Seq = l.seq
	if e.ServerTS == 0 {
		e.ServerTS = time.Now().UnixMilli()
	}
	l.entries = append(l.entries, e)
	if ret := s.retention(); len(l.entries) > ret {
		// Reslicing leaks the head until append reallocates, which copies only
		// the live tail: memory stays within ~2× Retention.
		clear(l.entries[:len(l.entries)-ret])
		l.entries = l.entries[len(l.entries)-ret:]
	}
	if key != "" {
		l.keys[key] = e
		l.order = append(l.order, key)
		if len(l.order) > s.keyRetention() {
			delete(l.keys, l.order[0])
			l.order[0] = ""
			l.order = l.order[1:]
		}
	}
	return Appended{Entry: e, Epoch: s.epoch}, nil
}

// Since returns up to limit (≤ 0: no limit) entries after seq `after`.
func (s *MemoryStore) Since(ctx context.Context, room, epoch string, after uint64, limit int) (Replay, error) {
	if err := ctx.Err(); err != nil {
		return Replay{}, fmt.Errorf("replay room %q: %w", room, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.head(room)
	rp := Replay{Head: h}
	if epoch != s.epoch || after > h.Seq {
		return rp, nil
	}
	if after == h.Seq {
		rp.Complete = true
		return rp, nil
	}
	l := s.rooms[room]
	first := l.seq - uint64(len(l.entries)) + 1
	start, complete := after+1, true
	if start < first {
		start, complete = first, false
	}
	ents := l.entries[start-first:]
	if limit > 0 && len(ents) > limit {
		ents, complete = ents[:limit], false
	}
	rp.Entries = append([]proto.Entry(nil), ents...)
	rp.Complete = complete
	return rp, nil
}

// Backlog returns the room's saved backlog, oldest first.
func (s *MemoryStore) Backlog(ctx context.Context, room string) ([]proto.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("backlog of room %q: %w", room, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]proto.Entry(nil), s.backlogs[room]...), nil
}

// SaveBacklog replaces the room's backlog.
func (s *MemoryStore) SaveBacklog(ctx context.Context, room string, entries []proto.Entry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save backlog of room %q: %w", room, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(entries) == 0 {
		delete(s.backlogs, room)
		return nil
	}
	s.backlogs[room] = append([]proto.Entry(nil), entries...)
	return nil
}

// Sanctions returns the unexpired sanctions of room and the global ones.
func (s *MemoryStore) Sanctions(ctx context.Context, room string) ([]Sanction, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sanctions of room %q: %w", room, err)
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Sanction
	for k, sc := range s.sanctions {
		if !sc.Until.IsZero() && !now.Before(sc.Until) {
			delete(s.sanctions, k) // expired: forget it
			continue
		}
		if k.room == room || k.room == "" {
			out = append(out, sc)
		}
	}
	return out, nil
}

// SetSanction stores sc, replacing one of the same room, user and kind.
func (s *MemoryStore) SetSanction(ctx context.Context, sc Sanction) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sanction %q in room %q: %w", sc.User, sc.Room, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sanctions[memSanctionKey{sc.Room, sc.User, sc.Ban}] = sc
	return nil
}

// LiftSanction removes a mute (ban=false) or ban of user in room.
func (s *MemoryStore) LiftSanction(ctx context.Context, room, user string, ban bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("lift sanction %q in room %q: %w", user, room, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sanctions, memSanctionKey{room, user, ban})
	return nil
}

// Policy returns the room's policy (zero when none was set).
func (s *MemoryStore) Policy(ctx context.Context, room string) (Policy, error) {
	if err := ctx.Err(); err != nil {
		return Policy{}, fmt.Errorf("policy of room %q: %w", room, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.policies[room], nil
}

// SetPolicy stores the room's policy.
func (s *MemoryStore) SetPolicy(ctx context.Context, room string, p Policy) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set policy of room %q: %w", room, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p == (Policy{}) {
		delete(s.policies, room)
		return nil
	}
	s.policies[room] = p
	return nil
}
