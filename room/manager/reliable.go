package manager

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/danmaku/danmaku/room/proto"
)

// The reliable lane: gifts and publishes are (optionally) authorised off the
// room goroutine, appended to the Ledger in order by the room's one persister
// goroutine, acked once the store has them, and broadcast in the next batch.

// persistReq is one reliable entry on its way to the store.
type persistReq struct {
	key  string // idempotency key as stored ("" = none)
	e    proto.Entry
	to   replyTo
	gift bool // answers for retries of the same key wait in giftWait
}

type persistRes struct {
	req persistReq
	app Appended
	err error
	dur time.Duration
}

// giftAck is what a retry of a recent gift is answered with.
type giftAck struct {
	seq   uint64
	epoch string
	msgID uint64
}

// maxGiftWaiters bounds the retries of one key waiting for its first attempt;
// more get unavailable and retry later.
const maxGiftWaiters = 16

var errStopping = errors.New("room stopping")

// gift admits a gift: guests may not gift, banned users may not, muted users
// may (a mute silences chat; a gift is a purchase the app's webhook decides).
func (r *room) gift(in *Inbound, g *proto.Gift, now int64) {
	to := replyOf(in, g.ID)
	if code, why := r.mayAct(in, now); code != proto.CodeOK {
		r.reject(to, code, 0, why)
		return
	}
	// Keys are per sender: one user's key can neither collide with nor reveal
	// another's. The length prefix keeps (user, key) pairs unambiguous.
	key := "g" + strconv.Itoa(len(in.User)) + ":" + in.User + g.Key
	if a, ok := r.giftKeys[key]; ok {
		r.ack(to, &proto.Ack{ID: g.ID, MsgID: a.msgID, Seq: a.seq, Epoch: a.epoch, Duplicate: true})
		return
	}
	if w, ok := r.giftWait[key]; ok { // the first attempt is still in flight
		if len(w) >= maxGiftWaiters {
			r.reject(to, proto.CodeUnavailable, r.retryAfter(), reasonPersistFull)
			return
		}
		r.giftWait[key] = append(w, to)
		return
	}
	if r.giftWait == nil {
		r.giftWait = map[string][]replyTo{}
	}
	r.giftWait[key] = nil
	req := persistReq{key: key, to: to, gift: true, e: proto.Entry{
		Kind: proto.KindGift, MsgID: r.nextMsgID(now), User: in.User, Name: in.Name, Role: in.Role,
		Gift: g.Gift, Count: g.Count, ClientTS: g.ClientTS, ServerTS: serverTS(now),
	}}
	if r.m.auth == nil {
		r.persist(req)
		return
	}
	r.authorize(req, GiftRequest{Room: r.id, User: in.User, Name: in.Name, Gift: g.Gift,
		Count: g.Count, Key: g.Key})
}

// publish puts an entry from the app's backend in the reliable lane. Closed
// rooms and sanctions do not apply: operators announce through it.
func (r *room) publish(in *Inbound, now int64) {
	p := in.Publish
	to := replyOf(in, 0)
	e := p.Entry
	if !e.Kind.Reliable() || len(p.Key) > proto.MaxKeyLen || !validEntry(&e, r.m.cfg.MaxEntryBytes) {
		r.reject(to, proto.CodeBadRequest, 0, reasonBadRequest)
		return
	}
	e.Seq, e.MsgID = 0, r.nextMsgID(now)
	if e.ServerTS == 0 {
		e.ServerTS = serverTS(now)
	}
	if e.Role == "" {
		e.Role = proto.RoleSystem
	}
	key := ""
	if p.Key != "" {
		key = "p:" + p.Key
	}
	r.persist(persistReq{key: key, e: e, to: to})
}

// validEntry checks a published entry's strings: valid UTF-8 (clients reject
// a batch that is not) and within maxBytes together.
func validEntry(e *proto.Entry, maxBytes int) bool {
	n := 0
	for _, s := range [...]string{e.User, e.Name, string(e.Role), e.Text, e.Gift, e.Level, e.Data} {
		if !utf8.ValidString(s) {
			return false
		}
		n += len(s)
	}
	return n <= maxBytes
}

func (r *room) retryAfter() int64 { return int64(r.m.cfg.RetryAfter) }

// authorize asks the gift webhook off the room goroutine; the answer comes
// back through r.async.
func (r *room) authorize(req persistReq, g GiftRequest) {
	m := r.m
	if m.authPending.Add(1) > int64(m.cfg.GiftAuthQueue) {
		m.authPending.Add(-1)
		m.met.auth[authBusy].Add(1)
		r.failReq(req, proto.CodeUnavailable, reasonAuthBusy)
		return
	}
	r.inflight++
	go func() {
		code, outcome := m.authorizeGift(r.ctx, g)
		m.authPending.Add(-1)
		m.met.auth[outcome].Add(1)
		r.async <- func() {
			r.inflight--
			r.authorized(req, code, outcome)
		}
	}()
}

// authorizeGift runs one webhook call within GiftAuthTimeout (waiting for a
// slot included) and GiftAuthConcurrency. A call that ignores its context
// keeps its slot until it returns, so the bound holds, but the gift is
// answered at the deadline.
func (m *Manager) authorizeGift(parent context.Context, g GiftRequest) (proto.Code, authOutcome) {
	ctx, cancel := context.WithTimeout(parent, m.cfg.GiftAuthTimeout)
	defer cancel()
	select {
	case m.authSem <- struct{}{}:
	case <-ctx.Done():
		if parent.Err() != nil {
			return proto.CodeUnavailable, authCancelled
		}
		return proto.CodeUnavailable, authBusy
	}
	done := make(chan error, 1)
	go func() {
		defer func() { <-m.authSem }()
		defer func() {
			if p := recover(); p != nil { // the app's code must not take the room down
				m.log.Error("gift authorizer panicked", "room", g.Room, "panic", p)
				done <- fmt.Errorf("authorizer panic: %v", p)
			}
		}()
		done <- m.auth.AuthorizeGift(ctx, g)
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	var code proto.Code
	switch {
	case err == nil:
		return proto.CodeOK, authAllowed
	case parent.Err() != nil:
		return proto.CodeUnavailable, authCancelled
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		return proto.CodeGiftDenied, authTimeout
	case errors.As(err, &code) && code != proto.CodeOK:
		return code, authDenied
	}
	return proto.CodeGiftDenied, authDenied
}

func (r *room) authorized(req persistReq, code proto.Code, outcome authOutcome) {
	switch {
	case code == proto.CodeOK:
		r.persist(req)
	case outcome == authBusy:
		r.failReq(req, code, reasonAuthBusy)
	case outcome == authCancelled:
		r.failReq(req, code, reasonShutdown)
	default:
		r.failReq(req, code, reasonGiftDenied)
	}
}

// persist hands a reliable entry to the room's persister, starting it on the
// room's first reliable entry (rooms without gifts have none).
func (r *room) persist(req persistReq) {
	if r.pq == nil {
		r.pq = &queue[persistReq]{max: r.m.cfg.PersistQueue, wake: make(chan struct{}, 1)}
		r.persistOut = make(chan persistRes)
		go r.persister(r.pq, r.persistOut)
	}
	switch r.pq.push(req) {
	case pushed:
		r.persistInflight++
	case pushFull:
		r.failReq(req, proto.CodeUnavailable, reasonPersistFull)
	default:
		r.failReq(req, proto.CodeUnavailable, reasonShutdown)
	}
}

// persister appends the room's reliable entries one by one in arrival order
// (the store assigns seqs in that order), taking everything pending at each
// wake. Once its queue is closed it keeps appending what is queued until
// r.drainBy, then fails the rest (clients retry with the same key).
func (r *room) persister(q *queue[persistReq], out chan<- persistRes) {
	defer close(out)
	var buf []persistReq
	for {
		<-q.wake
		buf = q.drain(buf)
		for _, req := range buf {
			ctx, cancel := context.WithTimeout(context.Background(), r.m.cfg.StoreTimeout)
			if q.isClosed() { // r.drainBy was set before the close
				cancel()
				if !time.Now().Before(r.drainBy) {
					out <- persistRes{req: req, err: errStopping}
					continue
				}
				ctx, cancel = context.WithDeadline(context.Background(), r.drainBy)
			}
			start := time.Now()
			app, err := r.m.store.Append(ctx, r.id, req.key, req.e)
			cancel()
			out <- persistRes{req: req, app: app, err: err, dur: time.Since(start)}
		}
		if q.closedAndEmpty() {
			return
		}
	}
}

// closePersister lets the persister finish what is queued within d, then end.
func (r *room) closePersister(d time.Duration) {
	if r.pq == nil || r.pq.isClosed() {
		return
	}
	r.drainBy = time.Now().Add(d)
	r.pq.close()
}

// onPersisted acks a stored entry and queues it for the next batch (unless it
// was a duplicate: the original was broadcast already).
func (r *room) onPersisted(res persistRes, now int64) {
	r.persistInflight--
	req := res.req
	if res.err != nil {
		if errors.Is(res.err, errStopping) {
			r.failReq(req, proto.CodeUnavailable, reasonShutdown)
			return
		}
		r.m.met.storeErrors.Add(1)
		r.warn("append to the ledger failed; answered unavailable", res.err)
		r.failReq(req, proto.CodeUnavailable, reasonStoreError)
		return
	}
	r.m.met.observeAppend(res.dur)
	a := res.app
	if !a.Duplicate && a.Epoch != r.epoch {
		r.newEpoch(a.Epoch, a.Entry.Seq, now)
	}
	ack := proto.Ack{ID: req.to.id, MsgID: a.Entry.MsgID, Seq: a.Entry.Seq, Epoch: a.Epoch,
		Duplicate: a.Duplicate}
	r.ack(req.to, &ack)
	if req.gift {
		for _, w := range r.giftWait[req.key] {
			dup := ack
			dup.ID, dup.Duplicate = w.id, true
			r.ack(w, &dup)
		}
		delete(r.giftWait, req.key)
		r.rememberGift(req.key, giftAck{seq: a.Entry.Seq, epoch: a.Epoch, msgID: a.Entry.MsgID})
	}
	if !a.Duplicate {
		r.window.push(a.Entry)
		r.pendingRel = append(r.pendingRel, a.Entry)
		r.applyState(a.Entry)
	}
}

// newEpoch follows the store into a new epoch (it restarted, or the room had
// none because activation could not read it): what is pending goes out first
// under the old epoch, then the lane restarts just before seq.
func (r *room) newEpoch(epoch string, seq uint64, now int64) {
	if len(r.pendingRel) > 0 {
		r.emit(now)
	}
	if r.epoch != "" {
		r.m.log.Warn("ledger epoch changed", "room", r.id, "old", r.epoch, "new", epoch)
	}
	r.epoch = epoch
	r.window.reset()
	r.emitted = seq - 1
	r.state = nil
}

// failReq answers a reliable request (and any retries of its key waiting for
// it) with an error.
func (r *room) failReq(req persistReq, code proto.Code, why reason) {
	var wait int64
	if code == proto.CodeUnavailable {
		wait = r.retryAfter()
	}
	r.reject(req.to, code, wait, why)
	if req.gift {
		for _, w := range r.giftWait[req.key] {
			r.reject(w, code, wait, why)
		}
		delete(r.giftWait, req.key)
	}
}

// rememberGift keeps a gift's ack for retries, forgetting the oldest beyond
// GiftKeyCache (the store's idempotency still answers those).
func (r *room) rememberGift(key string, a giftAck) {
	n := r.m.cfg.GiftKeyCache
	if n == 0 {
		return
	}
	if r.giftKeys == nil {
		r.giftKeys = map[string]giftAck{}
	}
	if _, ok := r.giftKeys[key]; ok {
		return
	}
	if len(r.giftOrder) < n {
		r.giftOrder = append(r.giftOrder, key)
	} else {
		delete(r.giftKeys, r.giftOrder[r.giftNext])
		r.giftOrder[r.giftNext] = key
		r.giftNext = (r.giftNext + 1) % n
	}
	r.giftKeys[key] = a
}
