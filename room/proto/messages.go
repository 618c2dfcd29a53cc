package proto

// Every frame body is one msgpack map. The key "t" holds the Type; "id" holds the
// request id where a reply is expected (the reply carries the same id). Keys are
// short and stable; a decoder skips keys it does not know. docs/PROTOCOL.md has
// the table of every key.

// Message is any frame body of the protocol.
type Message interface {
	// Type is the message's "t".
	Type() Type
	// AppendTo writes the message as one msgpack map, "t" included.
	AppendTo(w *Writer)
}

// Encode returns the msgpack body of m.
func Encode(m Message) []byte {
	w := Writer{B: make([]byte, 0, 128)}
	m.AppendTo(&w)
	return w.B
}

// Hello is the first client frame on every connection.
type Hello struct {
	ID         uint32 `json:"id,omitempty"`
	Version    int    `json:"v"`            // protocol version the client speaks
	SDK        string `json:"sdk"`          // SDK name, e.g. "danmaku-go"
	SDKVersion string `json:"sv"`           // SDK version
	Platform   string `json:"pf"`           // "ios", "android", "web", "linux"…
	Token      string `json:"tk,omitempty"` // JWT; empty for a guest where guests are allowed
}

// Limits are the server's limits, announced in welcome.
type Limits struct {
	MaxFrame     int `json:"cf"` // largest client frame body, bytes
	MaxText      int `json:"tx"` // longest chat text, runes
	ChatPerSec   int `json:"cr"` // chat rate the sender's role is allowed, msgs/s
	MaxRooms     int `json:"rm"` // rooms one connection may join at once
	ServerFrame  int `json:"sf"` // largest server frame body, bytes
	ResumeWindow int `json:"rw"` // reliable entries kept per room for resume
}

// Welcome answers hello.
type Welcome struct {
	ID         uint32 `json:"id,omitempty"`
	Session    string `json:"sid"`  // session id, unique in the cluster
	Node       string `json:"node"` // node that holds the connection
	User       string `json:"u"`    // user id from the token ("" for guests)
	Name       string `json:"n"`
	Role       Role   `json:"rl"`
	Heartbeat  int    `json:"hb"` // send a ping at least this often, ms
	ServerTime int64  `json:"st"` // server clock, Unix ms
	Limits     Limits `json:"lim"`
}

// Join asks to receive a room's batches. Answered by joined or error.
type Join struct {
	ID   uint32 `json:"id"`
	Room string `json:"r"`
}

// RoomState is what a joiner needs to render a room.
type RoomState struct {
	Title    string  `json:"ti,omitempty"`
	Live     bool    `json:"lv"`           // a stream is live in the room
	Media    string  `json:"md,omitempty"` // codecs of the live stream, e.g. "h264" or "h264+opus"
	Online   int64   `json:"on"`           // cluster-wide online count
	Epoch    string  `json:"e"`            // epoch of the reliable lane
	Seq      uint64  `json:"s"`            // last reliable seq in this epoch
	Backlog  []Entry `json:"bl"`           // newest chat entries, oldest first (≤ 50)
	Budget   int     `json:"bud"`          // chat budget, msgs/s
	SlowMode int     `json:"slow"`         // seconds between two chats of one user, 0 = off
	VIPOnly  bool    `json:"vip"`
	Closed   bool    `json:"cl"`
}

// Joined answers join.
type Joined struct {
	ID    uint32    `json:"id"`
	Room  string    `json:"r"`
	State RoomState `json:"rs"`
}

// Leave stops a room's batches. Answered by ack.
type Leave struct {
	ID   uint32 `json:"id"`
	Room string `json:"r"`
}

// Chat is a danmaku. Answered by ack.
type Chat struct {
	ID       uint32 `json:"id"`
	Room     string `json:"r"`
	Text     string `json:"x"`
	Color    uint32 `json:"c"`  // 0xRRGGBB; 0 means the client's default
	Mode     Mode   `json:"m"`  // 0 scroll, 1 top, 2 bottom
	ClientTS int64  `json:"ct"` // sender's clock, Unix ms
}

// Like sends count likes (a client merges taps). Answered by ack.
type Like struct {
	ID    uint32 `json:"id"`
	Room  string `json:"r"`
	Count uint32 `json:"n"`
}

// Gift sends a gift. Answered by ack; a retry with the same Key gets the same ack.
type Gift struct {
	ID       uint32 `json:"id"`
	Room     string `json:"r"`
	Gift     string `json:"g"` // gift id, the app's catalogue
	Count    uint32 `json:"n"`
	Key      string `json:"k"` // idempotency key, unique per purchase
	ClientTS int64  `json:"ct"`
}

// Ack answers leave, chat, like and gift. Code is empty on success.
type Ack struct {
	ID         uint32 `json:"id"`
	Code       Code   `json:"code,omitempty"`
	Message    string `json:"msg,omitempty"` // human detail for logs, never for logic
	MsgID      uint64 `json:"mid,omitempty"` // server message id (chat, gift)
	Seq        uint64 `json:"s,omitempty"`   // reliable seq (gift)
	Epoch      string `json:"e,omitempty"`   // epoch of Seq
	SampledOut bool   `json:"so,omitempty"`  // chat accepted but not broadcast (room budget)
	Duplicate  bool   `json:"dup,omitempty"` // a retry: this is the original ack
	RetryAfter int    `json:"ra,omitempty"`  // ms to wait before retrying (rate_limited, slow_mode, unavailable)
}

// Entry is one item of a batch, a backlog or a replay.
type Entry struct {
	Kind     Kind   `json:"k"`
	Seq      uint64 `json:"s,omitempty"` // reliable entries only
	MsgID    uint64 `json:"mid,omitempty"`
	User     string `json:"u,omitempty"`
	Name     string `json:"n,omitempty"`
	Role     Role   `json:"rl,omitempty"`
	Text     string `json:"x,omitempty"`
	Color    uint32 `json:"c,omitempty"`
	Mode     Mode   `json:"m,omitempty"`
	Gift     string `json:"g,omitempty"`
	Count    uint32 `json:"cn,omitempty"`
	Level    string `json:"lv,omitempty"` // notice level: info, warn, critical
	Data     string `json:"d,omitempty"`  // JSON for state and mod entries, and app payloads
	ClientTS int64  `json:"ct,omitempty"` // sender's clock, Unix ms
	ServerTS int64  `json:"st,omitempty"` // owner's clock when admitted, Unix ms
}

// Batch is what a room sends every tick in which something changed.
type Batch struct {
	Room      string  `json:"r"`
	Tick      uint64  `json:"tk"` // tick number of the room owner, increasing
	ServerTS  int64   `json:"st"` // when the batch was built, Unix ms
	Epoch     string  `json:"e"`
	Reliable  []Entry `json:"rel"` // seq order, contiguous unless a gap must be resumed
	Lossy     []Entry `json:"los"`
	Likes     uint64  `json:"lk"` // likes since the previous batch
	HasOnline bool    `json:"-"`  // Online is present
	Online    int64   `json:"on"` // cluster-wide online count
	Dropped   uint32  `json:"dr"` // lossy messages dropped by the room's policy this tick
}

// Notice is a text from the server to this connection (or to a room, in a
// batch as a KindNotice entry).
type Notice struct {
	Room  string `json:"r,omitempty"`
	Text  string `json:"x"`
	Level string `json:"lv"`
}

// Resume asks for the reliable entries after Seq in Epoch, and joins the room.
type Resume struct {
	ID    uint32 `json:"id"`
	Room  string `json:"r"`
	Epoch string `json:"e"`
	Seq   uint64 `json:"s"`
}

// Resumed answers resume. Recovered means Entries are exactly the missed
// entries; otherwise State is the fresh join state and the client starts over
// from State.Seq.
type Resumed struct {
	ID        uint32     `json:"id"`
	Room      string     `json:"r"`
	Recovered bool       `json:"rec"`
	Epoch     string     `json:"e"`
	Seq       uint64     `json:"s"` // last seq included
	Entries   []Entry    `json:"ents"`
	State     *RoomState `json:"rs,omitempty"` // when not recovered
}

// Ping keeps the connection alive.
type Ping struct {
	ID uint32 `json:"id"`
}

// RoomCount is one room's online count in a pong.
type RoomCount struct {
	Room   string `json:"r"`
	Online int64  `json:"on"`
}

// Pong answers ping with the online counts of the joined rooms.
type Pong struct {
	ID         uint32      `json:"id"`
	ServerTime int64       `json:"st"`
	Online     []RoomCount `json:"on"`
}

// Error reports a failure not tied to an acked request, or a request that has
// no ack (hello, join, resume). A fatal error is followed by close.
type Error struct {
	ID      uint32 `json:"id,omitempty"`
	Code    Code   `json:"code"`
	Message string `json:"msg,omitempty"`
	Room    string `json:"r,omitempty"`
}

// Reconnect asks the client to reconnect (to any node) after RetryAfter ms,
// then resume its rooms. Sent on drain.
type Reconnect struct {
	Reason     Code `json:"why"`
	RetryAfter int  `json:"ra"`
}

// Missed tells a slow client how much lossy traffic it was not sent.
type Missed struct {
	Room    string `json:"r"`
	Batches uint32 `json:"bt"`
}

func (*Hello) Type() Type     { return TypeHello }
func (*Welcome) Type() Type   { return TypeWelcome }
func (*Join) Type() Type      { return TypeJoin }
func (*Joined) Type() Type    { return TypeJoined }
func (*Leave) Type() Type     { return TypeLeave }
func (*Chat) Type() Type      { return TypeChat }
func (*Like) Type() Type      { return TypeLike }
func (*Gift) Type() Type      { return TypeGift }
func (*Ack) Type() Type       { return TypeAck }
func (*Resume) Type() Type    { return TypeResume }
func (*Resumed) Type() Type   { return TypeResumed }
func (*Ping) Type() Type      { return TypePing }
func (*Pong) Type() Type      { return TypePong }
func (*Batch) Type() Type     { return TypeBatch }
func (*Notice) Type() Type    { return TypeNotice }
func (*Error) Type() Type     { return TypeError }
func (*Reconnect) Type() Type { return TypeReconnect }
func (*Missed) Type() Type    { return TypeMissed }

// Request is a message that carries a request id.
type Request interface {
	Message
	RequestID() uint32
}

func (m *Hello) RequestID() uint32  { return m.ID }
func (m *Join) RequestID() uint32   { return m.ID }
func (m *Leave) RequestID() uint32  { return m.ID }
func (m *Chat) RequestID() uint32   { return m.ID }
func (m *Like) RequestID() uint32   { return m.ID }
func (m *Gift) RequestID() uint32   { return m.ID }
func (m *Resume) RequestID() uint32 { return m.ID }
func (m *Ping) RequestID() uint32   { return m.ID }

// RoomOf returns the room a client request is about, or "".
func RoomOf(m Message) string {
	switch m := m.(type) {
	case *Join:
		return m.Room
	case *Leave:
		return m.Room
	case *Chat:
		return m.Room
	case *Like:
		return m.Room
	case *Gift:
		return m.Room
	case *Resume:
		return m.Room
	}
	return ""
}

// Validate checks a client request's fields beyond their wire types: room ids,
// counts, key lengths. Chat text is checked by the room owner against its own
// configured limit (CheckText).
func Validate(m Message) error {
	if isRoomRequest(m) && !ValidRoom(RoomOf(m)) {
		return CodeBadRequest
	}
	switch m := m.(type) {
	case *Like:
		if m.Count == 0 || m.Count > MaxLikeCount {
			return CodeBadRequest
		}
	case *Gift:
		if m.Gift == "" || len(m.Gift) > MaxGiftIDLen || m.Count == 0 || m.Count > MaxGiftCount ||
			m.Key == "" || len(m.Key) > MaxKeyLen {
			return CodeBadRequest
		}
	case *Chat:
		if m.Mode > ModeBottom || m.Color > 0xffffff {
			return CodeBadRequest
		}
	case *Resume:
		if len(m.Epoch) > 64 {
			return CodeBadRequest
		}
	}
	return nil
}

func isRoomRequest(m Message) bool {
	switch m.(type) {
	case *Join, *Leave, *Chat, *Like, *Gift, *Resume:
		return true
	}
	return false
}
