package manager

import "github.com/danmaku/danmaku/room/proto"

// ring keeps the newest max entries, oldest first. It grows with use up to max
// (a quiet room holds nothing) and then overwrites the oldest.
type ring struct {
	buf  []proto.Entry
	head int // index of the oldest entry once len(buf) == max
	max  int
}

func (r *ring) len() int { return len(r.buf) }

func (r *ring) add(e proto.Entry) {
	if r.max <= 0 {
		return
	}
	if len(r.buf) < r.max {
		r.buf = append(r.buf, e)
		return
	}
	r.buf[r.head] = e
	r.head = (r.head + 1) % r.max
}

// at returns the i-th oldest entry.
func (r *ring) at(i int) *proto.Entry { return &r.buf[(r.head+i)%len(r.buf)] }

// appendTo appends the entries oldest first.
func (r *ring) appendTo(dst []proto.Entry) []proto.Entry {
	for i := range len(r.buf) {
		dst = append(dst, *r.at(i))
	}
	return dst
}

func (r *ring) reset() {
	r.buf, r.head = nil, 0
}

// window is the room's in-memory tail of the reliable lane: contiguous seqs,
// the newest Retention of them, so most resumes need no store I/O.
type window struct {
	ring
}

// first and last are the seqs the window covers (0, 0 when empty).
func (w *window) first() uint64 {
	if w.len() == 0 {
		return 0
	}
	return w.at(0).Seq
}

func (w *window) last() uint64 {
	if w.len() == 0 {
		return 0
	}
	return w.at(w.len() - 1).Seq
}

// push adds the next persisted entry; a seq that does not follow the last one
// (a gap the store created) restarts the window so it stays contiguous.
func (w *window) push(e proto.Entry) {
	if w.len() > 0 && e.Seq != w.last()+1 {
		w.reset()
	}
	w.add(e)
}

// since returns the entries after seq `after` up to `upto` inclusive, and
// whether the window holds all of them.
func (w *window) since(after, upto uint64) ([]proto.Entry, bool) {
	if upto <= after {
		return nil, true
	}
	if w.len() == 0 || after+1 < w.first() || upto > w.last() {
		return nil, false
	}
	start := int(after + 1 - w.first())
	n := int(upto - after)
	out := make([]proto.Entry, 0, n)
	for i := start; i < start+n; i++ {
		out = append(out, *w.at(i))
	}
	return out, true
}
