package manager

import (
	"cmp"
	"slices"

	"github.com/danmaku/danmaku/room/proto"
)

// candidate is an admitted chat waiting for its tick.
type candidate struct {
	e  proto.Entry
	to replyTo
}

// reservoir keeps a uniform sample of at most resCap of one priority class's
// chats in the current tick (Vitter's algorithm R), so memory per room is
// bounded whatever the inbound rate and every sender of the class has the
// same chance.
type reservoir struct {
	items []candidate
	seen  int
}

// sample offers an admitted chat to its class's reservoir. A chat the
// reservoir does not keep (or pushes out later) is acked "sampled out" at
// once and counted with reason budget.
//
// Hot path: no allocation once the reservoir has grown to its size.
func (r *room) sample(c candidate, class int) {
	res := &r.res[class]
	res.seen++
	if len(res.items) < r.resLimit() {
		res.items = append(res.items, c) // grows with use: a quiet room holds a few slots
		r.resCount++
		return
	}
	if j := r.rng.IntN(res.seen); j < len(res.items) {
		c, res.items[j] = res.items[j], c
	}
	r.sampledOut(&c)
}

func (r *room) sampledOut(c *candidate) {
	r.drop(reasonBudget)
	r.dropped++
	r.ack(c.to, &proto.Ack{ID: c.to.id, MsgID: c.e.MsgID, SampledOut: true})
}

// takeChats picks this tick's chats: up to the budget credit, staff first,
// then vip, then viewers, uniformly inside a class. Chosen chats are acked
// accepted and appended to dst in admission order; the rest are sampled out.
func (r *room) takeChats(now int64, dst []proto.Entry) []proto.Entry {
	if r.resCount == 0 {
		r.accrue(now)
		return dst
	}
	r.accrue(now)
	take := int(r.credit)
	start := len(dst)
	for class := range r.res {
		res := &r.res[class]
		items := res.items
		n := min(take, len(items))
		if n < len(items) { // partial Fisher–Yates: a uniform n of the class
			for i := range n {
				j := i + r.rng.IntN(len(items)-i)
				items[i], items[j] = items[j], items[i]
			}
		}
		for i := range items {
			if i < n {
				dst = append(dst, items[i].e)
				r.ack(items[i].to, &proto.Ack{ID: items[i].to.id, MsgID: items[i].e.MsgID})
			} else {
				r.sampledOut(&items[i])
			}
		}
		take -= n
		clear(items)
		if cap(items) > 2*r.resCap {
			res.items = nil // grown by a stretch or a larger budget: let it go
		} else {
			res.items = items[:0]
		}
		res.seen = 0
	}
	r.resCount = 0
	r.credit -= float64(len(dst) - start)
	chats := dst[start:]
	slices.SortFunc(chats, func(a, b proto.Entry) int { return cmp.Compare(a.MsgID, b.MsgID) })
	return dst
}

// accrue adds the budget earned since the last tick to the credit, capped at
// one reservoir: an unstretched tick never carries more than ceil(budget×tick)
// chats, and over any interval the room broadcasts at most budget×interval
// plus one tick's worth.
func (r *room) accrue(now int64) {
	if now > r.creditAt {
		r.credit += float64(r.budget) * float64(now-r.creditAt) / 1e9
	}
	r.creditAt = now
	r.credit = min(r.credit, float64(r.resLimit()))
}

// resLimit is the reservoir size per class: one tick's budget, plus one more
// for every tick skipped under backpressure, so a stretched batch carries the
// budget of the time it covers (bounded by MaxStretch/Tick).
func (r *room) resLimit() int { return r.resCap * (1 + r.stretchTicks) }
