package manager

import "github.com/danmaku/danmaku/room/proto"

// reply hands one encoded answer to the sink.
func (r *room) reply(to replyTo, body []byte) {
	r.m.sink.Reply(Reply{Node: to.node, Session: to.session, Body: body})
}

// ack encodes an Ack into a fresh body.
//
// Hot path (every chat is acked): one allocation, the body the sink keeps.
func (r *room) ack(to replyTo, a *proto.Ack) {
	r.rw.B = r.rw.B[:0]
	a.AppendTo(&r.rw)
	body := make([]byte, len(r.rw.B))
	copy(body, r.rw.B)
	r.reply(to, body)
}

func (r *room) sendError(to replyTo, code proto.Code) {
	r.reply(to, proto.Encode(&proto.Error{ID: to.id, Code: code, Room: r.id}))
}

// joinedBody is a Joined answer around the cached state bytes:
// {t, id, r, rs: <state>}.
func (r *room) joinedBody(id uint32) []byte {
	rs := r.stateBytes()
	w := proto.Writer{B: make([]byte, 0, len(rs)+len(r.id)+16)}
	n := 3
	if id != 0 {
		n++
	}
	w.MapLen(n)
	w.Str("t")
	w.Uint(uint64(proto.TypeJoined))
	if id != 0 {
		w.Str("id")
		w.Uint(uint64(id))
	}
	w.Str("r")
	w.Str(r.id)
	w.Str("rs")
	w.Raw(rs)
	return w.B
}

// freshResumed answers a resume that cannot be recovered: the client starts
// over from the current state ({t, id, r, e, s, rs}; rec absent = false).
func (r *room) freshResumed(id uint32) []byte {
	rs := r.stateBytes()
	w := proto.Writer{B: make([]byte, 0, len(rs)+len(r.id)+len(r.epoch)+32)}
	n := 3
	if id != 0 {
		n++
	}
	if r.epoch != "" {
		n++
	}
	if r.emitted != 0 {
		n++
	}
	w.MapLen(n)
	w.Str("t")
	w.Uint(uint64(proto.TypeResumed))
	if id != 0 {
		w.Str("id")
		w.Uint(uint64(id))
	}
	w.Str("r")
	w.Str(r.id)
	if r.epoch != "" {
		w.Str("e")
		w.Str(r.epoch)
	}
	if r.emitted != 0 {
		w.Str("s")
		w.Uint(r.emitted)
	}
	w.Str("rs")
	w.Raw(rs)
	return w.B
}

// recoveredBody answers a resume with exactly the missed entries, or nil when
// they do not fit one server frame (the client then starts over).
func (r *room) recoveredBody(id uint32, entries []proto.Entry, last uint64) []byte {
	body := proto.Encode(&proto.Resumed{ID: id, Room: r.id, Recovered: true, Epoch: r.epoch,
		Seq: last, Entries: entries})
	if len(body) > proto.MaxServerFrame {
		return nil
	}
	return body
}
