package load

import (
	"container/heap"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/danmaku/danmaku/bench/scenario"
	"github.com/danmaku/danmaku/room/proto"
)

// Sender bounds.
const (
	// maxPending bounds one sender's unanswered requests: past it the server
	// is not answering and more sends would only pile up (they are counted
	// as skipped).
	maxPending = 1024
	// retryFloor is the least wait before resending a gift the server asked
	// to retry (rate_limited, unavailable) without a usable ra.
	retryFloor = 200 * time.Millisecond
	// sendTick is how often the send loop wakes: rates above 100/s per
	// sender are sent in bursts of a tick.
	sendTick = 10 * time.Millisecond
	// retryScan is how often unacked gifts are checked for a resend.
	retryScan = 100 * time.Millisecond
)

type reqKind uint8

const (
	reqChat reqKind = iota + 1
	reqLike
	reqGift
)

type request struct {
	kind  reqKind
	count uint32
	gift  *gift
}

// gift is one purchase: one key, retried until acked or refused.
type gift struct {
	GiftRecord
	retryAt time.Time // zero: send as soon as joined
	done    bool      // acked or refused
}

// senderState is what a sending viewer keeps; the viewer's mu guards it.
type senderState struct {
	room    *scenario.Room
	chat    bool
	like    bool
	gifts   bool
	pending map[uint32]request
	sent    []*gift
	open    int // gifts not done
	lastCT  int64
}

// clientTS returns a ms timestamp strictly after the previous one, so a
// sender's gifts differ by (user, ct) and the ledger check can tell them apart.
func (s *senderState) clientTS(now time.Time) int64 {
	ct := now.UnixMilli()
	if ct <= s.lastCT {
		ct = s.lastCT + 1
	}
	s.lastCT = ct
	return ct
}

// connectionLost forgets requests in flight on a connection that ended: chat
// and like acks will never come; gifts stay open and are resent.
func (s *senderState) connectionLost(w *worker) {
	for id, r := range s.pending {
		if r.kind == reqChat {
			w.counters.inc(ChatsUnacked)
		}
		delete(s.pending, id)
	}
	for _, g := range s.sent {
		if !g.done {
			g.retryAt = time.Time{}
		}
	}
}

// onAck routes an ack to its request (reader goroutine).
func (s *senderState) onAck(v *viewer, a *proto.Ack, now time.Time) {
	w := v.w
	v.mu.Lock()
	defer v.mu.Unlock()
	r, ok := s.pending[a.ID]
	if !ok {
		return // a ping's id, or a request of an earlier connection
	}
	delete(s.pending, a.ID)
	switch r.kind {
	case reqChat:
		if a.Code != proto.CodeOK {
			w.counters.inc(ChatsRejected)
			w.counters.reason("chat." + string(a.Code))
			return
		}
		w.counters.inc(ChatsAcked)
		v.room.chatsAcked.Add(1)
		if a.SampledOut {
			w.counters.inc(ChatsSampledOut)
		}
	case reqLike:
		if a.Code != proto.CodeOK {
			w.counters.inc(LikesRejected)
			w.counters.reason("like." + string(a.Code))
			return
		}
		w.counters.inc(LikesAcked)
	case reqGift:
		s.giftAck(v, r.gift, a, now)
	}
}

func (s *senderState) giftAck(v *viewer, g *gift, a *proto.Ack, now time.Time) {
	w := v.w
	if a.Code != proto.CodeOK {
		w.counters.reason("gift." + string(a.Code))
		if g.done {
			return
		}
		switch a.Code {
		case proto.CodeRateLimited, proto.CodeUnavailable, proto.CodeInternal:
			g.retryAt = now.Add(max(retryFloor, time.Duration(a.RetryAfter)*time.Millisecond))
		default:
			g.Rejected, g.done = string(a.Code), true
			s.open--
			w.counters.inc(GiftsRejected)
			w.counters.add(GiftsPending, -1)
		}
		return
	}
	if a.Duplicate {
		w.counters.inc(GiftDupAcks)
	}
	if g.Acked {
		if a.Seq != g.Seq || a.Epoch != g.Epoch {
			g.Conflict = true
			w.counters.reason("gift.seq_conflict")
		}
		return
	}
	if g.Rejected != "" {
		return // refused earlier, acked now: the record keeps both facts
	}
	g.Acked, g.Seq, g.Epoch, g.done = true, a.Seq, a.Epoch, true
	s.open--
	w.counters.inc(GiftsAcked)
	w.counters.add(GiftsPending, -1)
	raise(&v.room.maxAcked, a.Seq)
}

// chatText makes each chat of a viewer distinct (the scenario's text and the
// request id), so the server's duplicate-text suppression does not reject a
// steady sender's every chat but the first of each window.
func chatText(base string, id uint32) string {
	suffix := " " + strconv.FormatUint(uint64(id), 36)
	if r := []rune(base); len(r)+len(suffix) > proto.MaxTextRunes {
		base = string(r[:proto.MaxTextRunes-len(suffix)])
	}
	return base + suffix
}

// sendChat writes one chat (mu not held).
func (v *viewer) sendChat(now time.Time) {
	w := v.w
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.send
	if !v.joined.Load() || len(s.pending) >= maxPending {
		w.counters.inc(ChatsSkipped)
		return
	}
	// mu is held across the write, so the ack (read under mu) cannot
	// overtake the pending entry.
	id := v.id()
	if v.writeLocked(&proto.Chat{ID: id, Room: v.room.id, Text: chatText(s.room.Chat.Text, id), ClientTS: now.UnixMilli()}) != nil {
		w.counters.inc(ChatsSkipped)
		return
	}
	s.pending[id] = request{kind: reqChat}
	w.counters.inc(ChatsSent)
}

// sendLike writes one like message.
func (v *viewer) sendLike() {
	w := v.w
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.send
	if !v.joined.Load() || len(s.pending) >= maxPending {
		return
	}
	id := v.id()
	n := uint32(s.room.Likes.Count)
	if v.writeLocked(&proto.Like{ID: id, Room: v.room.id, Count: n}) != nil {
		return
	}
	s.pending[id] = request{kind: reqLike, count: n}
	w.counters.inc(LikesSent)
}

// newGift starts a purchase and sends it if the viewer is joined.
func (v *viewer) newGift(now time.Time) {
	w := v.w
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.send
	g := &gift{GiftRecord: GiftRecord{
		Room: v.room.id, User: v.user, ClientTS: s.clientTS(now),
		Key: fmt.Sprintf("%s-%d-%d", w.plan.RunID, v.idx, len(s.sent)),
	}}
	s.sent = append(s.sent, g)
	s.open++
	w.counters.inc(GiftsStarted)
	w.counters.add(GiftsPending, 1)
	v.sendGiftLocked(g, now)
}

// retryGifts resends open gifts whose time has come.
func (v *viewer) retryGifts(now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.send.open == 0 {
		return
	}
	for _, g := range v.send.sent {
		if !g.done && !now.Before(g.retryAt) {
			v.sendGiftLocked(g, now)
		}
	}
}

// sendGiftLocked writes g (same key, same ct, new request id) if the viewer
// is joined; mu is held.
func (v *viewer) sendGiftLocked(g *gift, now time.Time) {
	s := v.send
	if !v.joined.Load() || len(s.pending) >= maxPending {
		g.retryAt = time.Time{}
		return
	}
	id := v.id()
	if v.writeLocked(&proto.Gift{ID: id, Room: v.room.id, Gift: s.room.Gifts.Gift,
		Count: uint32(s.room.Gifts.Count), Key: g.Key, ClientTS: g.ClientTS}) != nil {
		g.retryAt = time.Time{} // the connection is going: resend once rejoined
		return
	}
	s.pending[id] = request{kind: reqGift, gift: g}
	g.Attempts++
	g.retryAt = now.Add(s.room.Gifts.Retry.D())
	v.w.counters.inc(GiftAttempts)
}

// event is one scheduled send.
type event struct {
	at   time.Time
	v    *viewer
	kind reqKind
}

type events []event

func (e events) Len() int           { return len(e) }
func (e events) Less(i, j int) bool { return e[i].at.Before(e[j].at) }
func (e events) Swap(i, j int)      { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)        { *e = append(*e, x.(event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

// interval is the base time between two sends of kind by one sender.
func interval(r *scenario.Room, k reqKind) time.Duration {
	var rate float64
	switch k {
	case reqChat:
		rate = r.Chat.Rate
	case reqLike:
		rate = r.Likes.Rate
	case reqGift:
		rate = r.Gifts.Rate / float64(max(1, r.GiftSenders))
	}
	if rate <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / rate)
}

// sendLoop schedules every sender of the worker from traffic start to stop,
// then keeps resending open gifts until ctx ends (the finish).
func (w *worker) sendLoop(ctx context.Context, senders []*viewer) {
	defer w.loops.Done()
	var q events
	for _, v := range senders {
		for _, k := range []reqKind{reqChat, reqLike, reqGift} {
			if !v.send.has(k) {
				continue
			}
			if iv := interval(v.send.room, k); iv > 0 {
				// A random phase so senders do not fire in step.
				q = append(q, event{at: w.trafficAt.Add(rand.N(iv)), v: v, kind: k})
			}
		}
	}
	heap.Init(&q)
	tick := time.NewTicker(sendTick)
	defer tick.Stop()
	var lastRetry time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			for len(q) > 0 && !q[0].at.After(now) && now.Before(w.stopAt) {
				ev := heap.Pop(&q).(event)
				next := w.fire(ev, now)
				if next > 0 {
					ev.at = ev.at.Add(next)
					if ev.at.Before(now.Add(-time.Second)) {
						ev.at = now // fell behind: do not burst to catch up
					}
					heap.Push(&q, ev)
				}
			}
			if now.Sub(lastRetry) >= retryScan {
				lastRetry = now
				for _, v := range senders {
					if v.send.gifts {
						v.retryGifts(now)
					}
				}
			}
		}
	}
}

// fire performs one scheduled send and returns the time to the next one
// (0 = never again).
func (w *worker) fire(ev event, now time.Time) time.Duration {
	chat, likes, gifts := w.sc.ScaleAt(now.Sub(w.start))
	scale := gifts
	switch ev.kind {
	case reqChat:
		scale = chat
	case reqLike:
		scale = likes
	}
	base := interval(ev.v.send.room, ev.kind)
	if scale <= 0 {
		return retryScan // paused: look again soon
	}
	switch ev.kind {
	case reqChat:
		ev.v.sendChat(now)
	case reqLike:
		ev.v.sendLike()
	case reqGift:
		ev.v.newGift(now)
	}
	return time.Duration(float64(base) / scale)
}

func (s *senderState) has(k reqKind) bool {
	switch k {
	case reqChat:
		return s.chat
	case reqLike:
		return s.like
	case reqGift:
		return s.gifts
	}
	return false
}
