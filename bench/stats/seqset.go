package stats

import "math/bits"

// MaxWindow bounds the seqs one SeqSet tracks past its base: 4,194,304 seqs
// (512 KiB of bitmap) is far more gifts than one room gets in a run, and a
// bogus seq from a broken server cannot make a viewer allocate gigabytes.
// Seqs past it are counted in Beyond, never tracked.
const MaxWindow = 1 << 22

// SeqSet is the exactly-once checker of one viewer in one room: which
// reliable seqs it received after Base (the seq of its first joined state).
// The rule it checks: every seq in (Base, head] arrives at least once
// (Missing counts those that did not) and no seq arrives twice (Add reports
// each repeat so the caller can tell a permitted resume overlap from a
// wire duplicate). Seqs ≤ Base are before the viewer's window and ignored.
//
// Memory: one bit per seq of the window, grown as seqs arrive.
// Not safe for concurrent use: one reader goroutine owns it.
type SeqSet struct {
	base   uint64
	last   uint64 // every seq in (base, last] was seen
	bits   []uint64
	beyond uint64
}

// NewSeqSet starts a window after base.
func NewSeqSet(base uint64) *SeqSet {
	s := &SeqSet{}
	s.Reset(base)
	return s
}

// Reset forgets everything and starts a window after base.
func (s *SeqSet) Reset(base uint64) {
	s.base, s.last, s.beyond = base, base, 0
	s.bits = s.bits[:0]
}

// Base is the seq the window starts after.
func (s *SeqSet) Base() uint64 { return s.base }

// Last is the highest seq up to which every seq was seen (Base if none):
// what a client resumes from.
func (s *SeqSet) Last() uint64 { return s.last }

// Beyond counts seqs ignored for being more than MaxWindow past Base.
func (s *SeqSet) Beyond() uint64 { return s.beyond }

// Add records seq and reports whether it had been seen before. Seqs at or
// before Base are ignored (not new, not a duplicate).
func (s *SeqSet) Add(seq uint64) (dup bool) {
	if seq <= s.base {
		return false
	}
	off := seq - s.base - 1
	if off >= MaxWindow {
		s.beyond++
		return false
	}
	w, b := off/64, off%64
	for uint64(len(s.bits)) <= w {
		s.bits = append(s.bits, 0)
	}
	if s.bits[w]&(1<<b) != 0 {
		return true
	}
	s.bits[w] |= 1 << b
	if seq == s.last+1 {
		s.advance()
	}
	return false
}

// Has reports whether seq was seen (seqs at or before Base count as seen).
func (s *SeqSet) Has(seq uint64) bool {
	if seq <= s.base {
		return true
	}
	off := seq - s.base - 1
	if off >= MaxWindow || off/64 >= uint64(len(s.bits)) {
		return false
	}
	return s.bits[off/64]&(1<<(off%64)) != 0
}

// advance moves last over every consecutive seen seq, a word at a time.
func (s *SeqSet) advance() {
	for {
		off := s.last - s.base // bit index of last+1
		w := off / 64
		if w >= uint64(len(s.bits)) {
			return
		}
		run := uint64(bits.TrailingZeros64(^(s.bits[w] >> (off % 64))))
		if rest := 64 - off%64; run > rest {
			run = rest
		}
		if run == 0 {
			return
		}
		s.last += run
	}
}

// Missing counts the seqs in (Base, head] never seen.
func (s *SeqSet) Missing(head uint64) uint64 {
	if head <= s.last {
		return 0
	}
	n := head - s.base // window size
	var seen uint64
	full := n / 64
	for i := uint64(0); i < full && i < uint64(len(s.bits)); i++ {
		seen += uint64(bits.OnesCount64(s.bits[i]))
	}
	if r := n % 64; r > 0 && full < uint64(len(s.bits)) {
		seen += uint64(bits.OnesCount64(s.bits[full] & (1<<r - 1)))
	}
	return n - seen
}

// Tally sums exactly-once results over viewers.
type Tally struct {
	// Viewers is how many viewers were checked.
	Viewers int64 `json:"viewers"`
	// Expected is the sum over viewers of the seqs in their window.
	Expected uint64 `json:"expected"`
	// Missing is the sum of seqs a viewer never got.
	Missing uint64 `json:"missing"`
	// Duplicates are seqs delivered twice outside a resume's overlap.
	Duplicates uint64 `json:"duplicates"`
	// ResumeOverlaps are repeats the protocol permits: an entry both in a
	// resume's replay and in a live batch (the client drops it by seq).
	ResumeOverlaps uint64 `json:"resume_overlaps"`
	// ViewersMissing counts viewers with at least one missing seq.
	ViewersMissing int64 `json:"viewers_missing"`
}

// Add counts one viewer's set against the room's head, with its duplicate
// counts.
func (t *Tally) Add(s *SeqSet, head uint64, dups, overlaps uint64) {
	t.Viewers++
	if head > s.base {
		t.Expected += head - s.base
	}
	m := s.Missing(head)
	t.Missing += m
	if m > 0 {
		t.ViewersMissing++
	}
	t.Duplicates += dups
	t.ResumeOverlaps += overlaps
}

// Merge adds o into t.
func (t *Tally) Merge(o Tally) {
	t.Viewers += o.Viewers
	t.Expected += o.Expected
	t.Missing += o.Missing
	t.Duplicates += o.Duplicates
	t.ResumeOverlaps += o.ResumeOverlaps
	t.ViewersMissing += o.ViewersMissing
}
