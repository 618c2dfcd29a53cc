package client

import (
	"cmp"
	"slices"

	"github.com/danmaku/danmaku/room/proto"
)

// maxRetired is how many epochs a room remembers having left, so that
// batches of an old epoch still in flight are dropped instead of being taken
// for a new epoch. An epoch changes only when a room's ledger is lost, so a
// handful spans far more than one session ever sees.
const maxRetired = 4

// tracker makes one room's reliable lane exactly-once and in seq order. It is
// pure state: no I/O, no locks, no clock. The client feeds it what the server
// sends (joined, batch, resumed) and sends a resume whenever gap() is true.
//
// Rules (docs/PROTOCOL.md §2.3–2.4): before the join baseline, batches are
// held; after it, a reliable entry with seq ≤ last is a duplicate, seq =
// last+1 is delivered, and seq > last+1 is held until a resume fills the gap.
// An unknown epoch is a gap too; a resume that cannot recover rebases the
// room to the server's fresh (epoch, seq).
type tracker struct {
	maxHeld int
	maxPre  int
	note    func(c counter, n int) // counts drops and gaps; nil = none

	based bool
	epoch string
	last  uint64 // last seq delivered in epoch
	base  uint64 // seq of the last baseline (join or rebase) in epoch

	pre       []*proto.Batch         // batches before the baseline
	held      map[uint64]proto.Entry // entries past a gap, all of heldEpoch
	heldEpoch string
	retired   []string
}

func newTracker(maxHeld, maxPre int, note func(counter, int)) *tracker {
	return &tracker{maxHeld: maxHeld, maxPre: maxPre, note: note, held: make(map[uint64]proto.Entry)}
}

func (t *tracker) count(c counter, n int) {
	if t.note != nil && n > 0 {
		t.note(c, n)
	}
}

// gap reports whether entries are held behind a gap: a resume is needed.
func (t *tracker) gap() bool { return len(t.held) > 0 }

// position is what a resume asks from: the epoch and the last seq delivered.
func (t *tracker) position() (epoch string, seq uint64) { return t.epoch, t.last }

// join sets the baseline from a joined answer and returns the batches that
// arrived before it, filtered.
func (t *tracker) join(epoch string, seq uint64) []*proto.Batch {
	t.based, t.epoch, t.last, t.base = true, epoch, seq, seq
	pre := t.pre
	t.pre = nil
	var out []*proto.Batch
	for _, b := range pre {
		if b = t.batch(b); b != nil {
			out = append(out, b)
		}
	}
	return out
}

// batch filters b's reliable entries in place and returns b, or nil when
// nothing is left to show (or b is held until the join baseline).
func (t *tracker) batch(b *proto.Batch) *proto.Batch {
	if !t.based {
		if len(t.pre) >= t.maxPre {
			t.count(cPreJoinOverflow, 1)
			t.pre = slices.Delete(t.pre, 0, 1)
		}
		t.pre = append(t.pre, b)
		return nil
	}
	if len(b.Reliable) > 0 {
		b.Reliable = t.accept(b.Epoch, b.Reliable)
	}
	if len(b.Reliable) == 0 && len(b.Lossy) == 0 && b.Likes == 0 && !b.HasOnline && b.Dropped == 0 {
		return nil
	}
	return b
}

// resumed applies a resume's answer. It returns the entries to deliver and,
// when the resume could not recover, the fresh state the room was rebased to.
func (t *tracker) resumed(m *proto.Resumed) (replay []proto.Entry, rebased *proto.RoomState) {
	if m.Recovered && (m.Epoch == "" || m.Epoch == t.epoch) {
		// The server confirms our epoch is current: entries held from any
		// other epoch are late ones of an epoch it has left.
		t.dropHeldOtherEpoch()
		return t.accept(t.epoch, m.Entries), nil
	}
	st := m.State
	if st == nil {
		st = &proto.RoomState{Epoch: m.Epoch, Seq: m.Seq}
	}
	return t.rebase(st.Epoch, st.Seq), st
}

// accept filters entries of one epoch; the result is new, in seq order and
// contiguous with what was delivered before.
func (t *tracker) accept(epoch string, es []proto.Entry) []proto.Entry {
	if epoch != t.epoch {
		if slices.Contains(t.retired, epoch) {
			t.count(cStaleEpoch, len(es))
			return nil
		}
		for _, e := range es {
			t.hold(epoch, e)
		}
		return nil
	}
	if !slices.IsSortedFunc(es, bySeq) {
		slices.SortStableFunc(es, bySeq)
	}
	// A fresh slice: draining held entries must not overwrite unread input.
	out := make([]proto.Entry, 0, len(es))
	for _, e := range es {
		switch {
		case e.Seq <= t.last:
			t.dropOld(e.Seq)
		case e.Seq == t.last+1:
			out = append(out, e)
			t.last++
			out = t.drain(out)
		default:
			t.hold(epoch, e)
		}
	}
	return out
}

func bySeq(a, b proto.Entry) int { return cmp.Compare(a.Seq, b.Seq) }

// drain appends held entries that are now contiguous.
func (t *tracker) drain(out []proto.Entry) []proto.Entry {
	if t.heldEpoch != t.epoch {
		return out
	}
	for len(t.held) > 0 {
		e, ok := t.held[t.last+1]
		if !ok {
			break
		}
		delete(t.held, e.Seq)
		out = append(out, e)
		t.last++
	}
	return out
}

func (t *tracker) dropOld(seq uint64) {
	if seq <= t.base {
		t.count(cBeforeBaseline, 1)
	} else {
		t.count(cDuplicate, 1)
	}
}

// hold keeps an entry past a gap. The buffer holds one epoch at a time and at
// most maxHeld entries; what it lets go is recovered by the resume.
func (t *tracker) hold(epoch string, e proto.Entry) {
	if len(t.held) > 0 && t.heldEpoch != epoch {
		t.count(cStaleEpoch, len(t.held))
		clear(t.held)
	}
	if len(t.held) == 0 {
		t.heldEpoch = epoch
		t.count(cGaps, 1)
	}
	if _, ok := t.held[e.Seq]; ok {
		t.count(cDuplicate, 1)
		return
	}
	if len(t.held) >= t.maxHeld {
		t.count(cHeldOverflow, len(t.held))
		clear(t.held)
	}
	t.held[e.Seq] = e
}

// rebase moves the room to (epoch, seq) after an unrecoverable resume and
// returns held entries that follow it.
func (t *tracker) rebase(epoch string, seq uint64) []proto.Entry {
	if epoch != t.epoch {
		old := t.epoch
		t.epoch, t.last = epoch, seq
		t.retired = slices.DeleteFunc(t.retired, func(s string) bool { return s == epoch })
		t.retire(old)
	} else if seq > t.last {
		t.last = seq
	} // never back within an epoch: that would deliver entries twice
	t.base = t.last
	t.dropHeldOtherEpoch()
	for s := range t.held {
		if s <= t.last {
			delete(t.held, s)
			t.count(cBeforeBaseline, 1)
		}
	}
	return t.drain(nil)
}

// dropHeldOtherEpoch drops held entries of an epoch other than the room's,
// once the server has confirmed the room's epoch. The epoch is not retired:
// if it is in fact newer (a reply overtaken by a batch), its next batch
// holds again and the next resume answers with a rebase.
func (t *tracker) dropHeldOtherEpoch() {
	if len(t.held) > 0 && t.heldEpoch != t.epoch {
		t.count(cStaleEpoch, len(t.held))
		clear(t.held)
	}
}

// retire remembers an epoch the room has left (its late batches are stale).
func (t *tracker) retire(epoch string) {
	if epoch == "" || epoch == t.epoch || slices.Contains(t.retired, epoch) {
		return
	}
	t.retired = append(t.retired, epoch)
	if len(t.retired) > maxRetired {
		t.retired = slices.Delete(t.retired, 0, 1)
	}
}
