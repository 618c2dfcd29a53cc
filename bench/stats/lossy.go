package stats

// BeyondBudget is the lossy-accounting rule: the fraction of the chats sent
// to a room that a viewer neither received nor can blame on the room's
// budget, max(0, sent − received − dropped) / sent, where dropped is the sum
// of batch.dr (lossy messages dropped by the room's policy) over the batches
// the viewer read. 0 when nothing was sent.
//
// dr counts every lossy kind the room dropped (enter notices too), so the
// rule can only under-state a loss, never invent one; a viewer that was sent
// "missed" (lossy batches skipped while it was slow) shows that loss here.
func BeyondBudget(sent, received, dropped uint64) float64 {
	if sent == 0 || received+dropped >= sent {
		return 0
	}
	return float64(sent-received-dropped) / float64(sent)
}

// Lossy sums the lossy accounting over steady viewers: those joined before
// the room's first chat and connected without a break until the end.
type Lossy struct {
	// SteadyViewers is how many viewers the ratio covers.
	SteadyViewers int64 `json:"steady_viewers"`
	// Sent, Received and Dropped are sums over those viewers of their
	// room's chats sent (acked, sampled-out included), the chats they
	// received, and the dr of the batches they read.
	Sent     uint64 `json:"sent"`
	Received uint64 `json:"received"`
	Dropped  uint64 `json:"dropped_by_policy"`
	// Ratios is the distribution of BeyondBudget over steady viewers.
	Ratios *Hist `json:"-"`
}

// NewLossy returns an empty tally.
func NewLossy() *Lossy { return &Lossy{Ratios: NewRatio()} }

// Add counts one steady viewer.
func (l *Lossy) Add(sent, received, dropped uint64) {
	l.SteadyViewers++
	l.Sent += sent
	l.Received += received
	l.Dropped += dropped
	l.Ratios.RecordRatio(BeyondBudget(sent, received, dropped))
}

// Merge adds o into l.
func (l *Lossy) Merge(o *Lossy) {
	l.SteadyViewers += o.SteadyViewers
	l.Sent += o.Sent
	l.Received += o.Received
	l.Dropped += o.Dropped
	l.Ratios.Merge(o.Ratios)
}
