package proto

// fields writes one map, leaving out zero values: on the wire an absent key
// means the zero value, which keeps batches small.
type fields struct {
	w    *Writer
	mark int
	n    int
}

func begin(w *Writer, t Type) fields {
	f := fields{w: w, mark: w.Map()}
	if t != 0 {
		f.w.Str("t")
		f.w.Uint(uint64(t))
		f.n++
	}
	return f
}

func (f *fields) end() { f.w.EndMap(f.mark, f.n) }

func (f *fields) key(k string) { f.w.Str(k); f.n++ }

func (f *fields) str(k, v string) {
	if v != "" {
		f.key(k)
		f.w.Str(v)
	}
}

func (f *fields) uint(k string, v uint64) {
	if v != 0 {
		f.key(k)
		f.w.Uint(v)
	}
}

func (f *fields) int(k string, v int64) {
	if v != 0 {
		f.key(k)
		f.w.Int(v)
	}
}

func (f *fields) bool(k string, v bool) {
	if v {
		f.key(k)
		f.w.Bool(true)
	}
}

func (f *fields) entries(k string, es []Entry) {
	if len(es) == 0 {
		return
	}
	f.key(k)
	f.w.ArrayLen(len(es))
	for i := range es {
		es[i].AppendTo(f.w)
	}
}

func (m *Hello) AppendTo(w *Writer) {
	f := begin(w, TypeHello)
	f.uint("id", uint64(m.ID))
	f.int("v", int64(m.Version))
	f.str("sdk", m.SDK)
	f.str("sv", m.SDKVersion)
	f.str("pf", m.Platform)
	f.str("tk", m.Token)
	f.end()
}

func (m *Limits) appendTo(w *Writer) {
	f := begin(w, 0)
	f.int("cf", int64(m.MaxFrame))
	f.int("tx", int64(m.MaxText))
	f.int("cr", int64(m.ChatPerSec))
	f.int("rm", int64(m.MaxRooms))
	f.int("sf", int64(m.ServerFrame))
	f.int("rw", int64(m.ResumeWindow))
	f.end()
}

func (m *Welcome) AppendTo(w *Writer) {
	f := begin(w, TypeWelcome)
	f.uint("id", uint64(m.ID))
	f.str("sid", m.Session)
	f.str("node", m.Node)
	f.str("u", m.User)
	f.str("n", m.Name)
	f.str("rl", string(m.Role))
	f.int("hb", int64(m.Heartbeat))
	f.int("st", m.ServerTime)
	f.key("lim")
	m.Limits.appendTo(w)
	f.end()
}

func (m *Join) AppendTo(w *Writer) {
	f := begin(w, TypeJoin)
	f.uint("id", uint64(m.ID))
	f.str("r", m.Room)
	f.end()
}

func (m *RoomState) appendTo(w *Writer) {
	f := begin(w, 0)
	f.str("ti", m.Title)
	f.bool("lv", m.Live)
	f.str("md", m.Media)
	f.int("on", m.Online)
	f.str("e", m.Epoch)
	f.uint("s", m.Seq)
	f.entries("bl", m.Backlog)
	f.int("bud", int64(m.Budget))
	f.int("slow", int64(m.SlowMode))
	f.bool("vip", m.VIPOnly)
	f.bool("cl", m.Closed)
	f.end()
}

func (m *Joined) AppendTo(w *Writer) {
	f := begin(w, TypeJoined)
	f.uint("id", uint64(m.ID))
	f.str("r", m.Room)
	f.key("rs")
	m.State.appendTo(w)
	f.end()
}

func (m *Leave) AppendTo(w *Writer) {
	f := begin(w, TypeLeave)
	f.uint("id", uint64(m.ID))
	f.str("r", m.Room)
	f.end()
}

func (m *Chat) AppendTo(w *Writer) {
	f := begin(w, TypeChat)
	f.uint("id", uint64(m.ID))
	f.str("r", m.Room)
	f.str("x", m.Text)
	f.uint("c", uint64(m.Color))
	f.uint("m", uint64(m.Mode))
	f.int("ct", m.ClientTS)
	f.end()
}

func (m *Like) AppendTo(w *Writer) {
	f := begin(w, TypeLike)
	f.uint("id", uint64(m.ID))
	f.str("r", m.Room)
	f.uint("n", uint64(m.Count))
	f.end()
}

func (m *Gift) AppendTo(w *Writer) {
	f := begin(w, TypeGift)
	f.uint("id", uint64(m.ID))
	f.str("r", m.Room)
	f.str("g", m.Gift)
	f.uint("n", uint64(m.Count))
	f.str("k", m.Key)
	f.int("ct", m.ClientTS)
	f.end()
}

func (m *Ack) AppendTo(w *Writer) {
	f := begin(w, TypeAck)
	f.uint("id", uint64(m.ID))
	f.str("code", string(m.Code))
	f.str("msg", m.Message)
	f.uint("mid", m.MsgID)
	f.uint("s", m.Seq)
	f.str("e", m.Epoch)
	f.bool("so", m.SampledOut)
	f.bool("dup", m.Duplicate)
	f.int("ra", int64(m.RetryAfter))
	f.end()
}

// AppendTo writes the entry as a map without a "t" key.
//
// Hot path: called for every entry of every batch. It must not allocate.
func (e *Entry) AppendTo(w *Writer) {
	f := begin(w, 0)
	f.str("k", string(e.Kind))
	f.uint("s", e.Seq)
	f.uint("mid", e.MsgID)
	f.str("u", e.User)
	f.str("n", e.Name)
	f.str("rl", string(e.Role))
	f.str("x", e.Text)
	f.uint("c", uint64(e.Color))
	f.uint("m", uint64(e.Mode))
	f.str("g", e.Gift)
	f.uint("cn", uint64(e.Count))
	f.str("lv", e.Level)
	f.str("d", e.Data)
	f.int("ct", e.ClientTS)
	f.int("st", e.ServerTS)
	f.end()
}

// AppendTo writes the batch. Hot path: one call per room per tick; it must
// not allocate beyond growing w.B.
func (m *Batch) AppendTo(w *Writer) {
	f := begin(w, TypeBatch)
	f.str("r", m.Room)
	f.uint("tk", m.Tick)
	f.int("st", m.ServerTS)
	f.str("e", m.Epoch)
	f.entries("rel", m.Reliable)
	f.entries("los", m.Lossy)
	f.uint("lk", m.Likes)
	if m.HasOnline {
		f.key("on")
		w.Int(m.Online)
	}
	f.uint("dr", uint64(m.Dropped))
	f.end()
}

func (m *Notice) AppendTo(w *Writer) {
	f := begin(w, TypeNotice)
	f.str("r", m.Room)
	f.str("x", m.Text)
	f.str("lv", m.Level)
	f.end()
}

func (m *Resume) AppendTo(w *Writer) {
	f := begin(w, TypeResume)
	f.uint("id", uint64(m.ID))
	f.str("r", m.Room)
	f.str("e", m.Epoch)
	f.uint("s", m.Seq)
	f.end()
}

func (m *Resumed) AppendTo(w *Writer) {
	f := begin(w, TypeResumed)
	f.uint("id", uint64(m.ID))
	f.str("r", m.Room)
	f.bool("rec", m.Recovered)
	f.str("e", m.Epoch)
	f.uint("s", m.Seq)
	f.entries("ents", m.Entries)
	if m.State != nil {
		f.key("rs")
		m.State.appendTo(w)
	}
	f.end()
}

func (m *Ping) AppendTo(w *Writer) {
	f := begin(w, TypePing)
	f.uint("id", uint64(m.ID))
	f.end()
}

func (m *Pong) AppendTo(w *Writer) {
	f := begin(w, TypePong)
	f.uint("id", uint64(m.ID))
	f.int("st", m.ServerTime)
	if len(m.Online) > 0 {
		f.key("on")
		w.ArrayLen(len(m.Online))
		for _, rc := range m.Online {
			g := begin(w, 0)
			g.str("r", rc.Room)
			g.int("on", rc.Online)
			g.end()
		}
	}
	f.end()
}

func (m *Error) AppendTo(w *Writer) {
	f := begin(w, TypeError)
	f.uint("id", uint64(m.ID))
	f.str("code", string(m.Code))
	f.str("msg", m.Message)
	f.str("r", m.Room)
	f.end()
}

func (m *Reconnect) AppendTo(w *Writer) {
	f := begin(w, TypeReconnect)
	f.str("why", string(m.Reason))
	f.int("ra", int64(m.RetryAfter))
	f.end()
}

func (m *Missed) AppendTo(w *Writer) {
	f := begin(w, TypeMissed)
	f.str("r", m.Room)
	f.uint("bt", uint64(m.Batches))
	f.end()
}
