package manager

import (
	"cmp"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// encoders are scratch writers for batch bodies, shared by all rooms: a room
// holds no batch-sized buffer between ticks.
var encoders = sync.Pool{New: func() any { return &proto.Writer{B: make([]byte, 0, 64<<10)} }}

// maxPooledEncoder keeps a writer grown by an unusual batch out of the pool.
const maxPooledEncoder = 1 << 20

// entryOverhead estimates the msgpack bytes of an entry besides its strings
// (keys, numbers, map header); used to split a tick's output by size.
const entryOverhead = 64

func entrySize(e *proto.Entry) int {
	return entryOverhead + len(e.Kind) + len(e.User) + len(e.Name) + len(e.Role) + len(e.Text) +
		len(e.Gift) + len(e.Level) + len(e.Data)
}

// emit builds and publishes this tick's output: every reliable entry
// persisted since the last batch (seq order), the chats chosen by budget and
// priority, enter notices, the likes delta, the online count when due and the
// number of lossy messages dropped by policy. Nothing is emitted when nothing
// changed. Output above MaxBatchEntries or ~MaxBatchBytes is split into
// several batches (each its own Tick), reliable entries first.
//
// Hot path (once per room per tick): allocates only each batch's body and its
// Emitted.
func (r *room) emit(now int64) {
	r.lastTickAt = now
	lossy := r.takeChats(now, r.lossy[:0])
	r.stretchAt, r.stretchTicks = 0, 0
	chats := len(lossy)
	lossy = append(lossy, r.enters...)
	online := r.onlineDue(now)
	rel := r.orderReliable()
	if len(rel) == 0 && len(lossy) == 0 && r.likes == 0 && !online && r.dropped == 0 {
		r.lossy = lossy
		return
	}
	for i := range chats {
		r.backlog.add(lossy[i])
	}
	if chats > 0 {
		r.state = nil
		if !r.backlogDirty {
			r.backlogDirty = true
			r.backlogAt = now + int64(r.m.cfg.BacklogSaveInterval)
		}
	}
	b := &r.batch
	*b = proto.Batch{Room: r.id, ServerTS: serverTS(now), Epoch: r.epoch, Likes: r.likes,
		HasOnline: online, Online: r.online, Dropped: r.dropped}
	restRel, restLossy := rel, lossy
	for first := true; first || len(restRel)+len(restLossy) > 0; first = false {
		i, j := r.split(restRel, restLossy)
		b.Reliable, b.Lossy = restRel[:i], restLossy[:j]
		restRel, restLossy = restRel[i:], restLossy[j:]
		if !first {
			b.Likes, b.HasOnline, b.Dropped = 0, false, 0
		}
		r.publish1(b)
	}
	if len(rel) > 0 {
		r.emitted = rel[len(rel)-1].Seq
		r.state = nil
	}
	if online {
		r.sentOnline, r.sentAt = r.online, now
	}
	r.outTotal += uint64(len(rel) + len(lossy))
	r.likes, r.dropped = 0, 0
	clear(r.pendingRel)
	r.pendingRel = r.pendingRel[:0]
	clear(r.enters)
	r.enters = r.enters[:0]
	clear(lossy)
	r.lossy = lossy[:0]
	*b = proto.Batch{}
}

// split returns how many reliable and lossy entries the next batch takes:
// reliable first, at least one entry, at most MaxBatchEntries and about
// MaxBatchBytes.
func (r *room) split(rel, lossy []proto.Entry) (int, int) {
	maxN, maxB := r.m.cfg.MaxBatchEntries, r.m.cfg.MaxBatchBytes
	n, size := 0, 0
	fits := func(e *proto.Entry) bool {
		s := entrySize(e)
		if n >= maxN || (n > 0 && size+s > maxB) {
			return false
		}
		n, size = n+1, size+s
		return true
	}
	i := 0
	for i < len(rel) && fits(&rel[i]) {
		i++
	}
	j := 0
	for i == len(rel) && j < len(lossy) && fits(&lossy[j]) {
		j++
	}
	return i, j
}

// publish1 encodes one batch into a fresh body and hands it to the sink.
func (r *room) publish1(b *proto.Batch) {
	r.tickN++
	b.Tick = r.tickN
	w := encoders.Get().(*proto.Writer)
	w.B = w.B[:0]
	b.AppendTo(w)
	body := make([]byte, len(w.B)) // the sink owns it; never reused
	copy(body, w.B)
	if cap(w.B) <= maxPooledEncoder {
		encoders.Put(w)
	}
	e := &Emitted{Room: r.id, Tick: b.Tick, Body: body, Online: -1, At: time.Now().UnixNano()}
	if len(b.Reliable) > 0 {
		e.Reliable = true
		e.FirstSeq, e.LastSeq = b.Reliable[0].Seq, b.Reliable[len(b.Reliable)-1].Seq
	}
	if b.HasOnline {
		e.Online = b.Online
	}
	n := len(b.Reliable) + len(b.Lossy)
	r.m.met.batches.Add(1)
	r.m.met.batchEntries.observe(float64(n))
	r.m.sink.Publish(e)
}

// orderReliable returns the pending reliable entries in seq order, leaving out
// any at or below the last broadcast seq (only possible if two owners appended
// at once; clients recover those by resume).
func (r *room) orderReliable() []proto.Entry {
	rel := r.pendingRel
	if !slices.IsSortedFunc(rel, bySeq) {
		slices.SortFunc(rel, bySeq)
	}
	i := 0
	for i < len(rel) && rel[i].Seq <= r.emitted {
		i++
	}
	if i > 0 {
		r.m.log.Warn("reliable entries at or below the broadcast seq; not broadcast again",
			"room", r.id, "count", i, "emitted", r.emitted)
	}
	return rel[i:]
}

func bySeq(a, b proto.Entry) int { return cmp.Compare(a.Seq, b.Seq) }

// roomState is what a joiner renders; its encoding is cached in r.state.
func (r *room) roomState() proto.RoomState {
	slow := 0
	if r.slow > 0 {
		slow = int((r.slow + 999_999_999) / 1_000_000_000) // whole seconds, rounded up
	}
	return proto.RoomState{
		Title: r.policy.Title, Online: max(r.online, 0), Epoch: r.epoch, Seq: r.emitted,
		Backlog: r.backlog.appendTo(nil), Budget: r.budget, SlowMode: slow,
		VIPOnly: r.policy.VIPOnly, Closed: r.policy.Closed, Live: r.live, Media: r.media,
	}
}

// applyState follows a state entry's live flag and media codecs (the media
// relay publishes {"live":true,"media":"h264"} and {"live":false}), so a
// joiner's RoomState says whether a stream is on. Other state entries, and
// Data that is not such JSON, leave them as they are.
func (r *room) applyState(e proto.Entry) {
	if e.Kind != proto.KindState || e.Data == "" {
		return
	}
	var st struct {
		Live  *bool  `json:"live"`
		Media string `json:"media"`
	}
	if json.Unmarshal([]byte(e.Data), &st) != nil || st.Live == nil {
		return
	}
	r.live, r.media = *st.Live, st.Media
	if !r.live {
		r.media = ""
	}
	r.state = nil
}

// stateBytes returns the encoded RoomState, rebuilding it only after a change
// (policy, online, seq, backlog, epoch): a reconnect storm of joins shares one
// encoding.
func (r *room) stateBytes() []byte {
	if r.state == nil {
		st := r.roomState()
		r.state = rawField(proto.Encode(&proto.Joined{State: st}), "rs")
	}
	return r.state
}

// rawField returns the encoded value of key in a msgpack map body (nil when
// absent). proto encodes RoomState only inside a message, so the state is
// cut out of an encoded Joined.
func rawField(body []byte, key string) []byte {
	rd := proto.NewReader(body)
	n, err := rd.MapLen()
	if err != nil {
		return nil
	}
	for range n {
		k, err := rd.StrBytes()
		if err != nil {
			return nil
		}
		start := len(body) - rd.Len()
		if err := rd.Skip(); err != nil {
			return nil
		}
		if string(k) == key {
			return body[start : len(body)-rd.Len()]
		}
	}
	return nil
}
