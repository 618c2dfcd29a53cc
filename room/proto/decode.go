package proto

import (
	"math"
	"unicode/utf8"
)

// MaxEntries bounds an entry array in one frame (batch, backlog, replay), so a
// decoder never allocates more than this many entries for one array.
const MaxEntries = 10000

// Header is the type and request id of a frame, readable even when the rest of
// the frame is not (to answer an unknown type with the right id).
type Header struct {
	Type Type
	ID   uint32
}

// PeekHeader reads "t" and "id" from a frame body.
func PeekHeader(body []byte) (Header, error) {
	var h Header
	r := &Reader{b: body}
	seenType := false
	err := eachKey(r, func(k []byte) error {
		switch string(k) {
		case "t":
			t, err := r.Uint()
			if err != nil || t == 0 || t > math.MaxUint8 {
				return CodeBadFrame
			}
			h.Type, seenType = Type(t), true
			return nil
		case "id":
			id, err := r.Uint32()
			h.ID = id
			return err
		}
		return r.Skip()
	})
	if err != nil {
		return h, err
	}
	if r.Len() != 0 || !seenType {
		return h, CodeBadFrame
	}
	return h, nil
}

// Decode parses one frame body. Errors are Codes: CodeBadFrame for anything
// that is not a well-formed frame, CodeUnknownType for a type this version does
// not know (the connection survives it), CodeInvalidText for a string that is
// not UTF-8. Unknown keys are skipped.
func Decode(body []byte) (Message, error) {
	var d Decoder
	return d.Decode(body)
}

// Decoder decodes frames without allocating anything but the message: keep one
// per goroutine (an edge event loop, a client reader). It interns room ids, so
// the room string of a message is shared with earlier messages of that room.
// The zero value is ready to use; a Decoder is not safe for concurrent use.
type Decoder struct {
	r     Reader
	rooms map[string]string
}

// maxInterned bounds the room-id table of one Decoder: a client could send
// many room ids; past this the table is cleared and refilled.
const maxInterned = 1024

// room reads a room id, sharing the string with earlier frames.
func (r *Reader) room() (string, error) {
	if r.d == nil {
		return r.Str()
	}
	b, err := r.StrBytes()
	if err != nil {
		return "", err
	}
	if s, ok := r.d.rooms[string(b)]; ok {
		return s, nil
	}
	if !utf8.Valid(b) {
		return "", CodeInvalidText
	}
	if r.d.rooms == nil || len(r.d.rooms) >= maxInterned {
		r.d.rooms = make(map[string]string)
	}
	s := string(b)
	r.d.rooms[s] = s
	return s, nil
}

// Decode is the package-level Decode, reusing the decoder's state.
func (d *Decoder) Decode(body []byte) (Message, error) {
	h, err := PeekHeader(body)
	if err != nil {
		return nil, err
	}
	var m decoder
	switch h.Type {
	case TypeHello:
		m = new(Hello)
	case TypeWelcome:
		m = new(Welcome)
	case TypeJoin:
		m = new(Join)
	case TypeJoined:
		m = new(Joined)
	case TypeLeave:
		m = new(Leave)
	case TypeChat:
		m = new(Chat)
	case TypeLike:
		m = new(Like)
	case TypeGift:
		m = new(Gift)
	case TypeAck:
		m = new(Ack)
	case TypeResume:
		m = new(Resume)
	case TypeResumed:
		m = new(Resumed)
	case TypePing:
		m = new(Ping)
	case TypePong:
		m = new(Pong)
	case TypeBatch:
		m = new(Batch)
	case TypeNotice:
		m = new(Notice)
	case TypeError:
		m = new(Error)
	case TypeReconnect:
		m = new(Reconnect)
	case TypeMissed:
		m = new(Missed)
	default:
		return nil, CodeUnknownType
	}
	d.r = Reader{b: body, d: d}
	r := &d.r
	if err := eachKey(r, func(k []byte) error { return m.field(r, k) }); err != nil {
		return nil, err
	}
	return m, nil
}

type decoder interface {
	Message
	field(r *Reader, key []byte) error
}

// eachKey calls fn for every key of the map at r; fn must consume the value.
func eachKey(r *Reader, fn func(key []byte) error) error {
	n, err := r.MapLen()
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		k, err := r.StrBytes()
		if err != nil {
			return err
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

func readInt(r *Reader, dst *int) error {
	v, err := r.Int()
	if err != nil {
		return err
	}
	if v < math.MinInt32 || v > math.MaxInt32 {
		return CodeBadFrame
	}
	*dst = int(v)
	return nil
}

func readMode(r *Reader, dst *Mode) error {
	v, err := r.Uint()
	if err != nil {
		return err
	}
	if v > math.MaxUint8 {
		return CodeBadFrame
	}
	*dst = Mode(v)
	return nil
}

func readEntries(r *Reader, dst *[]Entry) error {
	n, err := r.ArrayLen()
	if err != nil {
		return err
	}
	if n > MaxEntries {
		return CodeTooLarge
	}
	es := make([]Entry, n)
	for i := range es {
		if err := es[i].decode(r); err != nil {
			return err
		}
	}
	*dst = es
	return nil
}

func (m *Hello) field(r *Reader, k []byte) (err error) {
	switch string(k) {
	case "id":
		m.ID, err = r.Uint32()
	case "v":
		err = readInt(r, &m.Version)
	case "sdk":
		m.SDK, err = r.Str()
	case "sv":
		m.SDKVersion, err = r.Str()
	case "pf":
		m.Platform, err = r.Str()
	case "tk":
		m.Token, err = r.Str()
	default:
		err = r.Skip()
	}
	return err
}

func (m *Limits) decode(r *Reader) error {
	return eachKey(r, func(k []byte) error {
		switch string(k) {
		case "cf":
			return readInt(r, &m.MaxFrame)
		case "tx":
			return readInt(r, &m.MaxText)
		case "cr":
			return readInt(r, &m.ChatPerSec)
		case "rm":
			return readInt(r, &m.MaxRooms)
		case "sf":
			return readInt(r, &m.ServerFrame)
		case "rw":
			return readInt(r, &m.ResumeWindow)
		}
		return r.Skip()
	})
}

func (m *Welcome) field(r *Reader, k []byte) (err error) {
	switch string(k) {
	case "id":
		m.ID, err = r.Uint32()
	case "sid":
		m.Session, err = r.Str()
	case "node":
		m.Node, err = r.Str()
	case "u":
		m.User, err = r.Str()
	case "n":
		m.Name, err = r.Str()
	case "rl":
		var s string
		s, err = r.Str()
		m.Role = Role(s)
	case "hb":
		err = readInt(r, &m.Heartbeat)
	case "st":
		m.ServerTime, err = r.Int()
	case "lim":
		err = m.Limits.decode(r)
	default:
		err = r.Skip()
	}
	return err
}

func (m *Join) field(r *Reader, k []byte) (err error) {
	switch string(k) {
	case "id":
		m.ID, err = r.Uint32()
	case "r":
		m.Room, err = r.room()
	default:
		err = r.Skip()
	}
	return err
}

func (m *RoomState) decode(r *Reader) error {
	return eachKey(r, func(k []byte) (err error) {
		switch string(k) {
		case "ti":
			m.Title, err = r.Str()
		case "lv":
			m.Live, err = r.Bool()
		case "md":
			m.Media, err = r.Str()
		case "on":
			m.Online, err = r.Int()
		case "e":
			m.Epoch, err = r.Str()
		case "s":
			m.Seq, err = r.Uint()
		case "bl":
			err = readEntries(r, &m.Backlog)
		case "bud":
			err = readInt(r, &m.Budget)
		case "slow":
			err = readInt(r, &m.SlowMode)
		case "vip":
			m.VIPOnly, err = r.Bool()
		case "cl":
			m.Closed, err = r.Bool()
		default:
			err = r.Skip()
		}
		return err
	})
}

func (m *Joined) field(r *Reader, k []byte) (err error) {
	switch string(k) {
	case "id":
		m.ID, err = r.Uint32()
	case "r":
		m.Room, err = r.room()
	case "rs":
		err = m.State.decode(r)
	default:
		err = r.Skip()
	}
	return err
}

func (m *Leave) field(r *Reader, k []byte) (err error) {
	switch string(k) {
	case "id":
		m.ID, err = r.Uint32()
	case "r":
		m.Room, err = r.room()
	default:
		err = r.Skip()
	}
	return err
}

func (m *Chat) field(r *Reader, k []byte) (err error) {
	switch string(k) {
	case "id":
		m.ID, err = r.Uint32()
	case "r":
		m.Room, err = r.room()
	case "x":
		m.Text, err = r.Str()
	case "c":
		m.Color, err = r.Uint32()
	case "m":
		err = readMode(r, &m.Mode)
	case "ct":
		m.ClientTS, err = r.Int()
	default:
		err = r.Skip()
	}
	return err
}

func (m *Like) field(r *Reader, k []byte) (err error) {
	switch string(k) {
	case "id":
		m.ID, err = r.Uint32()
	case "r":
		m.Room, err = r.room()
	case "n":
		m.Count, err = r.Uint32()
	default:
		err = r.Skip()
	}
	return err
}

func (m *Gift) field(r *Reader, k []byte) (err error) {
	switch string(k) {
	case "id":
		m.ID, err = r.Uint32()
	case "r":
		m.Room, err = r.room()
	case "g":
		m.Gift, err = r.Str()
	case "n":
		m.Count, err = r.Uint32()
	case "k":
		m.Key, err = r.Str()
	case "ct":
		m.ClientTS, err = r.Int()
	default:
		err = r.Skip()
	}
	return err
}

func (m *Ack) field(r *Reader, k []byte) (err error) {
	switch string(k) {
	case "id":
		m.ID, err = r.Uint32()
	case "code":
		var s string
		s, err = r.Str()
		m.Code = Code(s)
	case "msg":
		m.Message, err = r.Str()
	case "mid":
		m.MsgID, err = r.Uint()
	case "s":
		m.Seq, err = r.Uint()
	case "e":
		m.Epoch, err = r.Str()
	case "so":
		m.SampledOut, err = r.Bool()
	case "dup":
		m.Duplicate, err = r.Bool()
	case "ra":
		err = readInt(r, &m.RetryAfter)
	default:
		err = r.Skip()
	}
	return err
}

func (e *Entry) decode(r *Reader) error {
	return eachKey(r, func(k []byte) (err error) {
		var s string
		switch string(k) {
		case "k":
			s, err = r.Str()
			e.Kind = Kind(s)
		case "s":
			e.Seq, err = r.Uint()
		case "mid":
			e.MsgID, err = r.Uint()
		case "u":
			e.User, err = r.Str()
		case "n":
			e.Name, err = r.Str()
		case "rl":
			s, err = r.Str()
			e.Role = Role(s)
		case "x":
			e.Text, err = r.Str()
		case "c":
			e.Color, err = r.Uint32()
		case "m":
			err = readMode(r, &e.Mode)
		case "g":
			e.Gift, err = r.Str()
		case "cn":
			e.Count, err = r.Uint32()
		case "lv":
			e.Level, err = r.Str()
		case "d":
			e.Data, err = r.Str()
		case "ct":
			e.ClientTS, err = r.Int()
		case "st":
			e.ServerTS, err = r.Int()
		default:
			err = r.Skip()
		}
		return err
	})
}

// DecodeEntry parses one entry map, as written by Entry.AppendTo.
func DecodeEntry(b []byte) (Entry, error) {
	var e Entry
	r := NewReader(b)
	if err := e.decode(r); err != nil {
		return e, err
	}
	if r.Len() != 0 {
		return e, CodeBadFrame
	}
	return e, nil
}

func (m *Batch) field(r *Reader, k []byte) (err error) {
	switch string(k) {
	case "r":
		m.Room, err = r.room()
	case "tk":
		m.Tick, err = r.Uint()
	case "st":
		m.ServerTS, err = r.Int()
	case "e":
		m.Epoch, err = r.Str()
	case "rel":
		err = readEntries(r, &m.Reliable)
	case "los":
		err = readEntries(r, &m.Lossy)
	case "lk":
		m.Likes, err = r.Uint()
	case "on":
		m.Online, err = r.Int()
		m.HasOnline = err == nil
	case "dr":
		m.Dropped, err = r.Uint32()
	default:
		err = r.Skip()
	}
	return err
}

func (m *Notice) field(r *Reader, k []byte) (err error) {
	switch string(k) {
	case "r":
		m.Room, err = r.room()
	case "x":
		m.Text, err = r.Str()
	case "lv":
		m.Level, err = r.Str()
	default:
		err = r.Skip()
	}
	return err
}

func (m *Resume) field(r *Reader, k []byte) (err error) {
	switch string(k) {
	case "id":
		m.ID, err = r.Uint32()
	case "r":
		m.Room, err = r.room()
	case "e":
		m.Epoch, err = r.Str()
	case "s":
		m.Seq, err = r.Uint()
	default:
		err = r.Skip()
	}
	return err
}

func (m *Resumed) field(r *Reader, k []byte) (err error) {
	switch string(k) {
	case "id":
		m.ID, err = r.Uint32()
	case "r":
		m.Room, err = r.room()
	case "rec":
		m.Recovered, err = r.Bool()
	case "e":
		m.Epoch, err = r.Str()
	case "s":
		m.Seq, err = r.Uint()
	case "ents":
		err = readEntries(r, &m.Entries)
	case "rs":
		if r.IsNil() {
			return nil
		}
		m.State = new(RoomState)
		err = m.State.decode(r)
	default:
		err = r.Skip()
	}
	return err
}

func (m *Ping) field(r *Reader, k []byte) (err error) {
	if string(k) == "id" {
		m.ID, err = r.Uint32()
		return err
	}
	return r.Skip()
}

func (m *Pong) field(r *Reader, k []byte) (err error) {
	switch string(k) {
	case "id":
		m.ID, err = r.Uint32()
	case "st":
		m.ServerTime, err = r.Int()
	case "on":
		var n int
		n, err = r.ArrayLen()
		if err != nil {
			return err
		}
		if n > MaxEntries {
			return CodeTooLarge
		}
		m.Online = make([]RoomCount, n)
		for i := range m.Online {
			rc := &m.Online[i]
			err = eachKey(r, func(k []byte) (err error) {
				switch string(k) {
				case "r":
					rc.Room, err = r.Str()
				case "on":
					rc.Online, err = r.Int()
				default:
					err = r.Skip()
				}
				return err
			})
			if err != nil {
				return err
			}
		}
	default:
		err = r.Skip()
	}
	return err
}

func (m *Error) field(r *Reader, k []byte) (err error) {
	switch string(k) {
	case "id":
		m.ID, err = r.Uint32()
	case "code":
		var s string
		s, err = r.Str()
		m.Code = Code(s)
	case "msg":
		m.Message, err = r.Str()
	case "r":
		m.Room, err = r.room()
	default:
		err = r.Skip()
	}
	return err
}

func (m *Reconnect) field(r *Reader, k []byte) (err error) {
	switch string(k) {
	case "why":
		var s string
		s, err = r.Str()
		m.Reason = Code(s)
	case "ra":
		err = readInt(r, &m.RetryAfter)
	default:
		err = r.Skip()
	}
	return err
}

func (m *Missed) field(r *Reader, k []byte) (err error) {
	switch string(k) {
	case "r":
		m.Room, err = r.room()
	case "bt":
		m.Batches, err = r.Uint32()
	default:
		err = r.Skip()
	}
	return err
}
