package load

import (
	"bytes"
	"time"

	"github.com/danmaku/danmaku/bench/stats"
	"github.com/danmaku/danmaku/room/proto"
)

// handle processes one frame from the server. A non-nil error ends the
// session (a refused join, a reconnect message).
func (v *viewer) handle(body []byte) error {
	w := v.w
	t, ok := fastType(body)
	if !ok {
		h, err := proto.PeekHeader(body)
		if err != nil {
			w.counters.inc(BadFrames)
			return nil
		}
		t = h.Type
	}
	switch t {
	case proto.TypeBatch:
		if !v.hasBase {
			v.hold(body)
			return nil
		}
		v.onBatch(body, time.Now())
		return nil
	case proto.TypePong, proto.TypeNotice:
		return nil
	}
	m, err := w.decode(body)
	if err != nil {
		w.counters.inc(BadFrames)
		return nil
	}
	now := time.Now()
	switch m := m.(type) {
	case *proto.Joined:
		v.onJoined(m, now)
	case *proto.Resumed:
		v.onResumed(m, now)
	case *proto.Ack:
		if v.send != nil {
			v.send.onAck(v, m, now)
		}
	case *proto.Error:
		w.counters.reason("error." + string(m.Code))
		if m.ID != 0 && m.ID == v.reqID && v.phaseAt.Load() != 0 {
			return m.Code // join or resume refused: reconnect with backoff
		}
	case *proto.Reconnect:
		return &reconnectMsg{after: time.Duration(max(0, m.RetryAfter)) * time.Millisecond}
	case *proto.Missed:
		w.counters.add(MissedBatches, int64(m.Batches))
	}
	return nil
}

// fastType reads the type of a frame whose first key is "t" (as the Go
// encoder writes every frame) without walking the whole body, which
// PeekHeader does; other frames return false.
func fastType(body []byte) (proto.Type, bool) {
	if len(body) < 4 || body[0]&0xf0 != 0x80 || body[1] != 0xa1 || body[2] != 't' || body[3] == 0 || body[3] >= 0x80 {
		return 0, false
	}
	return proto.Type(body[3]), true
}

// hold keeps a batch that arrived before the first joined (the protocol
// allows it); it is applied once the join's state is known.
func (v *viewer) hold(body []byte) {
	if len(v.held) >= maxHeld {
		v.w.counters.reason("held_batches_dropped")
		return
	}
	v.held = append(v.held, bytes.Clone(body))
}

// onBatch applies a live batch.
//
// Hot path: every viewer runs it for every batch. It must not allocate
// (latencies go through the viewer's scratch slice) and takes one lock per
// latency class, plus the room's lane lock for entries new to the worker.
func (v *viewer) onBatch(body []byte, now time.Time) {
	w := v.w
	var b batchView
	if err := scanBatch(body, &b); err != nil {
		w.counters.inc(BadFrames)
		return
	}
	if string(b.Room) != v.room.id {
		w.counters.reason("foreign_room_batches")
		return
	}
	w.counters.inc(Batches)
	w.counters.add(BytesIn, int64(len(body)))
	v.droppedIn += uint64(b.Dropped)
	if b.Likes > 0 {
		w.counters.add(LikesIn, int64(b.Likes))
	}
	nowUs := now.UnixMicro()

	var it entryIter
	var e entryView
	v.scratch = v.scratch[:0]
	if err := it.init(b.los); err != nil {
		w.counters.inc(BadFrames)
		return
	}
	for {
		ok, err := it.next(&e)
		if err != nil {
			w.counters.inc(BadFrames)
			return
		}
		if !ok {
			break
		}
		if string(e.Kind) == string(proto.KindChat) && e.ClientTS >= w.startMs {
			v.chatsIn++
			v.scratch = append(v.scratch, nowUs-e.ClientTS*1000)
		}
	}
	w.counters.add(LossyEntries, int64(len(v.scratch)))
	w.lossyRec.Record(v.idx, v.scratch)

	if v.epoch == "" && len(b.Epoch) > 0 {
		v.epoch = string(b.Epoch) // joined carried no epoch: the first batch names it
	}
	if len(b.Epoch) > 0 && string(b.Epoch) != v.epoch {
		// Another epoch: its seqs are not comparable with ours. The
		// protocol says treat it as a gap; the resume tells what happened.
		if !v.resumeOut {
			w.counters.inc(GapResumes)
			_ = v.sendResume()
		}
		return
	}
	v.scratch = v.scratch[:0]
	if err := it.init(b.rel); err != nil {
		w.counters.inc(BadFrames)
		return
	}
	var top uint64
	for {
		ok, err := it.next(&e)
		if err != nil {
			w.counters.inc(BadFrames)
			break
		}
		if !ok {
			break
		}
		top = max(top, e.Seq)
		if !v.addSeq(&e, v.resumeOut || e.Seq <= v.replayHigh) {
			continue
		}
		w.counters.inc(ReliableEntries)
		if string(e.Kind) == string(proto.KindGift) && e.ClientTS >= w.startMs {
			v.scratch = append(v.scratch, nowUs-e.ClientTS*1000)
		}
	}
	w.relRec.Record(v.idx, v.scratch)
	v.last.Store(v.seqs.Last())
	if top > v.seqs.Last() && !v.resumeOut {
		// A gap in the live lane: resume from the last contiguous seq,
		// as the protocol (and the SDK) do.
		w.counters.inc(GapResumes)
		_ = v.sendResume()
	}
}

// addSeq records one reliable entry; it reports whether the entry is new
// (inside the window and not seen before). A repeat counts as a resume
// overlap when overlap is true, else as a wire duplicate.
func (v *viewer) addSeq(e *entryView, overlap bool) bool {
	if e.Seq <= v.seqs.Base() {
		return false
	}
	if v.seqs.Add(e.Seq) {
		if overlap {
			v.overlaps++
			v.w.counters.inc(ResumeOverlaps)
		} else {
			v.wireDups++
			v.w.counters.inc(WireDuplicates)
		}
		return false
	}
	raise(&v.room.maxSeen, e.Seq)
	v.room.lane.record(v.room.id, e.Seq, e.Kind, e.User, e.ClientTS)
	return true
}

// onJoined starts the viewer's window at the room's head.
func (v *viewer) onJoined(m *proto.Joined, now time.Time) {
	w := v.w
	if m.Room != v.room.id || m.ID != v.reqID || v.hasBase {
		w.counters.reason("unexpected_joined")
		return
	}
	w.joinH.Record(v.idx, []int64{int64(now.Sub(v.joinSent) / time.Microsecond)})
	v.hasBase = true
	v.epoch = m.State.Epoch
	v.seqs.Reset(m.State.Seq)
	v.last.Store(m.State.Seq)
	raise(&v.room.maxSeen, m.State.Seq)
	v.steady = now.Before(w.trafficAt)
	v.setJoined()
	w.counters.inc(FirstJoins)
	held := v.held
	v.held = nil
	for _, body := range held {
		v.onBatch(body, now)
	}
}

// onResumed applies a resume's answer: the replay, or the news that history
// is gone (rec=false), counted against exactly-once.
func (v *viewer) onResumed(m *proto.Resumed, now time.Time) {
	w := v.w
	if m.Room != v.room.id || m.ID != v.reqID || !v.resumeOut {
		w.counters.reason("unexpected_resumed")
		return
	}
	v.resumeOut = false
	v.phaseAt.Store(0)
	if m.Recovered && m.Epoch == v.epoch {
		for i := range m.Entries {
			en := &m.Entries[i]
			e := entryView{Kind: []byte(en.Kind), Seq: en.Seq, ClientTS: en.ClientTS, User: []byte(en.User)}
			if v.addSeq(&e, true) {
				w.counters.inc(ReplayEntries)
			}
		}
		v.replayHigh = max(v.replayHigh, m.Seq)
	} else {
		w.counters.inc(Unrecovered)
		head := m.Seq
		if m.State != nil {
			head = m.State.Seq
		}
		if m.Epoch != v.epoch {
			w.counters.inc(EpochChanges)
			v.epochBroken = true
			v.epoch = m.Epoch
			v.seqs.Reset(head)
		} else {
			// Same epoch, entries out of retention: they are missing for
			// good. Count them, then mark them so the live gap check moves on.
			for s := v.seqs.Last() + 1; s <= head && s-v.seqs.Base() <= stats.MaxWindow; s++ {
				if !v.seqs.Has(s) {
					v.lostOnResume++
					v.seqs.Add(s)
				}
			}
		}
		raise(&v.room.maxSeen, head)
	}
	v.last.Store(v.seqs.Last())
	if !v.joined.Load() {
		v.setJoined()
		if !v.reconnectFrom.IsZero() {
			w.reconnectH.Record(v.idx, []int64{int64(now.Sub(v.reconnectFrom) / time.Microsecond)})
			v.reconnectFrom = time.Time{}
		}
	}
}

// setJoined marks the current connection joined (or resumed).
func (v *viewer) setJoined() {
	v.phaseAt.Store(0)
	if !v.joined.Swap(true) {
		v.w.counters.add(Joined, 1)
	}
	if v.needOpen {
		v.needOpen = false
		v.w.counters.inc(ConnectsDone)
	}
}
