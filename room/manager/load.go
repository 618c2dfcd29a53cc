package manager

import (
	"context"
	"errors"

	"github.com/danmaku/danmaku/room/proto"
)

// Store reads and writes besides appends: activation, periodic backlog saves
// and resumes older than the in-memory window. Only activation (before the
// room reads its inbox) and the final backlog save run on the room goroutine;
// the rest run on helper goroutines that report back through r.async.

// loadParts names what a room reads from the store when it activates.
type loadParts uint8

const (
	partHead      loadParts = 1 << iota // epoch, last seq and the resume window
	partBacklog                         // join backlog
	partSanctions                       // mutes and bans
	partPolicy                          // operator policy
	allParts      = partHead | partBacklog | partSanctions | partPolicy
)

type loaded struct {
	parts     loadParts // what was read
	head      Head
	window    []proto.Entry
	backlog   []proto.Entry
	sanctions []Sanction
	policy    Policy
	err       error // the first failure
}

// load reads the wanted parts within StoreTimeout. A part that fails is left
// out; the room runs degraded (chat flows, reliable sends fail fast) and
// retries it every reloadEvery.
func (r *room) load(ctx context.Context, want loadParts) loaded {
	ctx, cancel := context.WithTimeout(ctx, r.m.cfg.StoreTimeout)
	defer cancel()
	st, id := r.m.store, r.id
	var l loaded
	fail := func(err error) {
		if l.err == nil {
			l.err = err
		}
	}
	if want&partHead != 0 {
		if h, err := st.Head(ctx, id); err != nil {
			fail(err)
		} else {
			keep := uint64(r.m.cfg.Retention)
			rp, err := st.Since(ctx, id, h.Epoch, h.Seq-min(h.Seq, keep), r.m.cfg.Retention)
			if err != nil {
				fail(err)
			} else {
				l.head, l.window, l.parts = h, rp.Entries, l.parts|partHead
			}
		}
	}
	if want&partBacklog != 0 {
		if b, err := st.Backlog(ctx, id); err != nil {
			fail(err)
		} else {
			l.backlog, l.parts = b, l.parts|partBacklog
		}
	}
	if want&partSanctions != 0 {
		if s, err := st.Sanctions(ctx, id); err != nil {
			fail(err)
		} else {
			l.sanctions, l.parts = s, l.parts|partSanctions
		}
	}
	if want&partPolicy != 0 {
		if p, err := st.Policy(ctx, id); err != nil {
			fail(err)
		} else {
			l.policy, l.parts = p, l.parts|partPolicy
		}
	}
	return l
}

// applyLoad takes what load read. Parts the room learnt meanwhile win: an
// epoch from an append, chats already in the backlog.
func (r *room) applyLoad(l loaded, want loadParts, now int64) {
	if l.parts&partHead != 0 && r.epoch == "" {
		r.epoch, r.emitted = l.head.Epoch, l.head.Seq
		for _, e := range l.window {
			if e.Seq <= l.head.Seq {
				r.window.push(e)
				r.applyState(e) // a new owner knows the stream is live
			}
		}
	}
	if l.parts&partBacklog != 0 && r.backlog.len() == 0 {
		for _, e := range l.backlog {
			r.backlog.add(e)
		}
	}
	for _, s := range l.sanctions {
		r.applySanction(s, false)
	}
	if l.parts&partPolicy != 0 {
		r.setPolicy(l.policy)
	}
	r.missing = want &^ l.parts
	if r.missing != 0 {
		r.reloadAt = now + int64(reloadEvery)
		r.m.met.storeErrors.Add(1)
		r.warn("room activated without part of its state; retrying", l.err)
	}
	r.state = nil
}

// reload retries the parts activation could not read, off the room goroutine.
func (r *room) reload() {
	want := r.missing
	r.reloading = true
	r.inflight++
	go func() {
		l := r.load(r.ctx, want)
		r.async <- func() {
			r.inflight--
			r.reloading = false
			r.applyLoad(l, want, r.m.now())
		}
	}()
}

// saveBacklogAsync saves the join backlog every BacklogSaveInterval while the
// room has new chats (never per message), one save at a time.
func (r *room) saveBacklogAsync() {
	if r.savingBacklog {
		return
	}
	snap := r.backlog.appendTo(nil)
	r.backlogDirty, r.savingBacklog = false, true
	r.inflight++
	go func() {
		ctx, cancel := context.WithTimeout(r.ctx, r.m.cfg.StoreTimeout)
		err := r.m.store.SaveBacklog(ctx, r.id, snap)
		cancel()
		r.async <- func() {
			r.inflight--
			r.savingBacklog = false
			if err != nil && !errors.Is(err, context.Canceled) {
				r.m.met.storeErrors.Add(1)
				r.warn("save backlog failed", err)
				r.backlogDirty = true
				r.backlogAt = r.m.now() + int64(r.m.cfg.BacklogSaveInterval)
			}
		}
	}()
}

// saveBacklogSync is the last save, on eviction or stop.
func (r *room) saveBacklogSync() {
	ctx, cancel := context.WithTimeout(context.Background(), r.m.cfg.StoreTimeout)
	defer cancel()
	r.backlogDirty = false
	if err := r.m.store.SaveBacklog(ctx, r.id, r.backlog.appendTo(nil)); err != nil {
		r.m.met.storeErrors.Add(1)
		r.warn("save backlog failed", err)
	}
}

// A resume from the store asks for up to proto.MaxEntries (what one frame's
// entry array may hold); a replay that does not fit one server frame is
// answered with the fresh state instead.

// resume answers from memory when it can: at the head (no entries, no I/O),
// or from the window of newest reliable entries. Older positions go to the
// store off the room goroutine; another epoch or a position ahead of the head
// gets the fresh state.
func (r *room) resume(in *Inbound, rs *proto.Resume, now int64) {
	to := replyOf(in, rs.ID)
	if code, why := r.admitWatch(in, now); code != proto.CodeOK {
		r.drop(why)
		r.sendError(to, code)
		return
	}
	if r.epoch == "" || rs.Epoch != r.epoch || rs.Seq > r.emitted {
		r.reply(to, r.freshResumed(rs.ID))
		return
	}
	if ents, ok := r.window.since(rs.Seq, r.emitted); ok {
		r.replyRecovered(to, ents)
		return
	}
	select {
	case r.m.resumeSem <- struct{}{}:
	default:
		r.drop(reasonResumeBusy)
		r.sendError(to, proto.CodeUnavailable)
		return
	}
	r.inflight++
	epoch, after := rs.Epoch, rs.Seq
	go func() {
		ctx, cancel := context.WithTimeout(r.ctx, r.m.cfg.StoreTimeout)
		rp, err := r.m.store.Since(ctx, r.id, epoch, after, proto.MaxEntries)
		cancel()
		<-r.m.resumeSem
		r.async <- func() {
			r.inflight--
			r.resumedFromStore(to, epoch, after, rp, err)
		}
	}()
}

func (r *room) resumedFromStore(to replyTo, epoch string, after uint64, rp Replay, err error) {
	if err != nil {
		why := reasonStoreError
		if errors.Is(err, context.Canceled) {
			why = reasonShutdown
		} else {
			r.m.met.storeErrors.Add(1)
			r.warn("resume from the ledger failed", err)
		}
		r.drop(why)
		r.sendError(to, proto.CodeUnavailable)
		return
	}
	if !rp.Complete || epoch != r.epoch || rp.Head.Epoch != r.epoch {
		r.reply(to, r.freshResumed(to.id))
		return
	}
	// The store answered up to its head then; the room may have broadcast more
	// since (in the window) or hold entries not broadcast yet (left out: they
	// come in the next batch).
	ents := rp.Entries
	for len(ents) > 0 && ents[len(ents)-1].Seq > r.emitted {
		ents = ents[:len(ents)-1]
	}
	last := after
	if len(ents) > 0 {
		last = ents[len(ents)-1].Seq
	}
	if last < r.emitted {
		more, ok := r.window.since(last, r.emitted)
		if !ok {
			r.reply(to, r.freshResumed(to.id))
			return
		}
		ents = append(ents, more...)
	}
	r.replyRecovered(to, ents)
}

func (r *room) replyRecovered(to replyTo, ents []proto.Entry) {
	body := r.recoveredBody(to.id, ents, r.emitted)
	if body == nil {
		body = r.freshResumed(to.id) // too many to replay in one frame: start over
	}
	r.reply(to, body)
}
