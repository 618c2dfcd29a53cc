package fanout

import (
	"errors"
	"fmt"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// Envelopes are what nodes send each other on NATS: msgpack arrays written
// with proto.Writer and read with proto.Reader (hand-written, no reflection,
// fuzzed). The first element is envVersion. A newer node may append fields;
// a decoder reads the ones it knows and skips the rest, so a rolling upgrade
// only bumps envVersion for an incompatible change.
//
//	request  P.in.<room>     [v, room, node, session, user, name, role, received,
//	                          msg map | nil, entry map | nil, key]
//	batch    P.out.<room>    [v, origin, room, tick, reliable, firstSeq, lastSeq,
//	                          online, at, body bin]
//	reply    P.reply.<node>  [v, session, body bin]
//	counts   P.online.<node> [v, node, [room, n, room, n, …]]
//	control  P.ctl           see control.go
//
// A decoder checks every id (proto.ValidRoom, validID), every size and, for a
// request, re-validates the client message exactly as the edge did: a node
// never trusts another node's input more than a client's.
const envVersion = 1

// Bounds of envelope fields, with their reasons.
const (
	// maxUserLen bounds user ids and names copied from tokens: ids are
	// short; 256 bytes leaves room for any display name.
	maxUserLen = 256
	// maxCountsPerMsg bounds the rooms of one counts message: 4,096 rooms of
	// ≤ 64-byte ids is ≤ 300 KiB, well under the NATS payload limit; a node
	// with more rooms sends several messages.
	maxCountsPerMsg = 4096
)

// errEnvelope marks every malformed envelope (errors.Is).
var errEnvelope = errors.New("malformed envelope")

func badEnvelope(what string, err error) error {
	if err == nil {
		return fmt.Errorf("%w: %s", errEnvelope, what)
	}
	return fmt.Errorf("%w: %s: %v", errEnvelope, what, err)
}

// openEnvelope reads the array header and the version, and checks the array
// has at least min elements (the version included).
func openEnvelope(b []byte, min int) (*proto.Reader, int, error) {
	r := proto.NewReader(b)
	n, err := r.ArrayLen()
	if err != nil {
		return nil, 0, badEnvelope("header", err)
	}
	if n < min {
		return nil, 0, badEnvelope(fmt.Sprintf("%d fields, want %d", n, min), nil)
	}
	v, err := r.Uint()
	if err != nil || v != envVersion {
		return nil, 0, badEnvelope(fmt.Sprintf("version %d", v), err)
	}
	return r, n, nil
}

// closeEnvelope skips the fields after the known ones and checks nothing
// trails the array.
func closeEnvelope(r *proto.Reader, n, known int) error {
	for i := known; i < n; i++ {
		if err := r.Skip(); err != nil {
			return badEnvelope("extra field", err)
		}
	}
	if r.Len() != 0 {
		return badEnvelope("trailing bytes", nil)
	}
	return nil
}

// rawValue returns the bytes of the next value of r (a sub-slice of b).
func rawValue(r *proto.Reader, b []byte) ([]byte, error) {
	start := len(b) - r.Len()
	if err := r.Skip(); err != nil {
		return nil, err
	}
	return b[start : len(b)-r.Len()], nil
}

func readID(r *proto.Reader, valid func(string) bool, what string) (string, error) {
	s, err := r.Str()
	if err != nil || !valid(s) {
		return "", badEnvelope(what, err)
	}
	return s, nil
}

func readBounded(r *proto.Reader, max int, what string) (string, error) {
	s, err := r.Str()
	if err != nil || len(s) > max {
		return "", badEnvelope(what, err)
	}
	return s, nil
}

func readBody(r *proto.Reader) ([]byte, error) {
	body, err := r.StrBytes()
	if err != nil || len(body) == 0 || len(body) > proto.MaxServerFrame {
		return nil, badEnvelope("body", err)
	}
	return body, nil
}

const requestFields = 11

// appendRequest writes in (for room) as a request envelope.
func appendRequest(w *proto.Writer, room string, in *manager.Inbound) {
	w.ArrayLen(requestFields)
	w.Uint(envVersion)
	w.Str(room)
	w.Str(in.Node)
	w.Uint(in.Session)
	w.Str(in.User)
	w.Str(in.Name)
	w.Str(string(in.Role))
	w.Int(in.Received)
	if in.Msg != nil {
		in.Msg.AppendTo(w)
	} else {
		w.Nil()
	}
	if in.Publish != nil {
		in.Publish.Entry.AppendTo(w)
		w.Str(in.Publish.Key)
	} else {
		w.Nil()
		w.Nil()
	}
}

// decodeRequest reads a request envelope. The message, if any, is one of the
// client requests a room owner serves, valid (proto.Validate) and for room;
// an entry, if any, is of a reliable kind.
func decodeRequest(b []byte) (string, *manager.Inbound, error) {
	r, n, err := openEnvelope(b, requestFields)
	if err != nil {
		return "", nil, err
	}
	in := new(manager.Inbound)
	room, err := readID(r, proto.ValidRoom, "room")
	if err != nil {
		return "", nil, err
	}
	if in.Node, err = readID(r, validID, "node"); err != nil {
		return "", nil, err
	}
	if in.Session, err = r.Uint(); err != nil {
		return "", nil, badEnvelope("session", err)
	}
	if in.User, err = readBounded(r, maxUserLen, "user"); err != nil {
		return "", nil, err
	}
	if in.Name, err = readBounded(r, maxUserLen, "name"); err != nil {
		return "", nil, err
	}
	role, err := r.Str()
	if in.Role = proto.Role(role); err != nil || !(in.Role.Valid() || in.Role == proto.RoleSystem) {
		return "", nil, badEnvelope("role", err)
	}
	if in.Received, err = r.Int(); err != nil {
		return "", nil, badEnvelope("received", err)
	}
	if !r.IsNil() {
		raw, err := rawValue(r, b)
		if err != nil {
			return "", nil, badEnvelope("msg", err)
		}
		if in.Msg, err = decodeClientRequest(raw, room); err != nil {
			return "", nil, err
		}
	}
	if !r.IsNil() {
		raw, err := rawValue(r, b)
		if err != nil {
			return "", nil, badEnvelope("entry", err)
		}
		p := new(manager.Publish)
		if p.Entry, err = proto.DecodeEntry(raw); err != nil || !p.Entry.Kind.Reliable() {
			return "", nil, badEnvelope("entry", err)
		}
		if p.Key, err = readBounded(r, proto.MaxKeyLen, "key"); err != nil {
			return "", nil, err
		}
		in.Publish = p
	} else if err := r.Skip(); err != nil { // the key slot
		return "", nil, badEnvelope("key", err)
	}
	if (in.Msg == nil) == (in.Publish == nil) {
		return "", nil, badEnvelope("want exactly one of msg and entry", nil)
	}
	return room, in, closeEnvelope(r, n, requestFields)
}

// decodeClientRequest decodes and validates a client's message forwarded for
// room.
func decodeClientRequest(raw []byte, room string) (proto.Message, error) {
	m, err := proto.Decode(raw)
	if err != nil {
		return nil, badEnvelope("msg", err)
	}
	switch m.(type) {
	case *proto.Join, *proto.Leave, *proto.Chat, *proto.Like, *proto.Gift, *proto.Resume:
	default:
		return nil, badEnvelope(fmt.Sprintf("msg type %v", m.Type()), nil)
	}
	if err := proto.Validate(m); err != nil {
		return nil, badEnvelope("msg", err)
	}
	if proto.RoomOf(m) != room {
		return nil, badEnvelope("msg for another room", nil)
	}
	return m, nil
}

const batchFields = 10

// appendBatch writes e, emitted by origin, as a batch envelope.
func appendBatch(w *proto.Writer, origin string, e *manager.Emitted) {
	w.ArrayLen(batchFields)
	w.Uint(envVersion)
	w.Str(origin)
	w.Str(e.Room)
	w.Uint(e.Tick)
	w.Bool(e.Reliable)
	w.Uint(e.FirstSeq)
	w.Uint(e.LastSeq)
	w.Int(e.Online)
	w.Int(e.At)
	w.Bin(e.Body)
}

// decodeBatch reads a batch envelope. Body is a sub-slice of b, not a copy:
// nats.go hands every message its own buffer, so it may be kept.
func decodeBatch(b []byte) (string, *manager.Emitted, error) {
	r, n, err := openEnvelope(b, batchFields)
	if err != nil {
		return "", nil, err
	}
	e := new(manager.Emitted)
	origin, err := readID(r, validID, "origin")
	if err != nil {
		return "", nil, err
	}
	if e.Room, err = readID(r, proto.ValidRoom, "room"); err != nil {
		return "", nil, err
	}
	if e.Tick, err = r.Uint(); err != nil {
		return "", nil, badEnvelope("tick", err)
	}
	if e.Reliable, err = r.Bool(); err != nil {
		return "", nil, badEnvelope("reliable", err)
	}
	if e.FirstSeq, err = r.Uint(); err != nil {
		return "", nil, badEnvelope("first seq", err)
	}
	if e.LastSeq, err = r.Uint(); err != nil || e.LastSeq < e.FirstSeq {
		return "", nil, badEnvelope("last seq", err)
	}
	if e.Online, err = r.Int(); err != nil {
		return "", nil, badEnvelope("online", err)
	}
	if e.At, err = r.Int(); err != nil {
		return "", nil, badEnvelope("at", err)
	}
	if e.Body, err = readBody(r); err != nil {
		return "", nil, err
	}
	return origin, e, closeEnvelope(r, n, batchFields)
}

const replyFields = 3

// appendReply writes the session and body of r as a reply envelope (the
// node is the subject's).
func appendReply(w *proto.Writer, r manager.Reply) {
	w.ArrayLen(replyFields)
	w.Uint(envVersion)
	w.Uint(r.Session)
	w.Bin(r.Body)
}

// decodeReply reads a reply envelope; body is a sub-slice of b.
func decodeReply(b []byte) (uint64, []byte, error) {
	r, n, err := openEnvelope(b, replyFields)
	if err != nil {
		return 0, nil, err
	}
	session, err := r.Uint()
	if err != nil {
		return 0, nil, badEnvelope("session", err)
	}
	body, err := readBody(r)
	if err != nil {
		return 0, nil, err
	}
	return session, body, closeEnvelope(r, n, replyFields)
}

// roomCount is one room's member count on one node.
type roomCount struct {
	Room string
	N    int64
}

const countsFields = 3

// appendCounts writes counts (at most maxCountsPerMsg) of node.
func appendCounts(w *proto.Writer, node string, counts []roomCount) {
	w.ArrayLen(countsFields)
	w.Uint(envVersion)
	w.Str(node)
	w.ArrayLen(2 * len(counts))
	for _, c := range counts {
		w.Str(c.Room)
		w.Int(c.N)
	}
}

// decodeCounts reads a counts envelope.
func decodeCounts(b []byte) (string, []roomCount, error) {
	r, n, err := openEnvelope(b, countsFields)
	if err != nil {
		return "", nil, err
	}
	node, err := readID(r, validID, "node")
	if err != nil {
		return "", nil, err
	}
	m, err := r.ArrayLen()
	if err != nil || m%2 != 0 || m > 2*maxCountsPerMsg {
		return "", nil, badEnvelope("counts", err)
	}
	counts := make([]roomCount, m/2)
	for i := range counts {
		if counts[i].Room, err = readID(r, proto.ValidRoom, "room"); err != nil {
			return "", nil, err
		}
		if counts[i].N, err = r.Int(); err != nil || counts[i].N < 0 {
			return "", nil, badEnvelope("count", err)
		}
	}
	return node, counts, closeEnvelope(r, n, countsFields)
}
