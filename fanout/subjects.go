package fanout

import (
	"strconv"
	"strings"

	"github.com/danmaku/danmaku/room/proto"
)

// Subjects. P is Config.Prefix ("dmk"); room and node ids are one token of
// [A-Za-z0-9_-] each (proto.ValidRoom, validID), so no input can inject a
// wildcard or a token separator.
//
//	P.in.<room>                        requests to the room's owner (edge or API → owner);
//	                                   only the owner subscribes, in queue group "owner"
//	P.out.<room>                       the room's batches (owner → every other node with
//	                                   members in the room, subscribed from Watch to Unwatch)
//	P.reply.<node>                     answers for sessions on node (remote owner → node)
//	P.nr.<node>.<session>.<type>.<id>  reply subject of every request. Nobody publishes
//	                                   there: when a request reaches no owner, the NATS
//	                                   server answers on it with a 503 status, and the
//	                                   subject alone says whom to tell "unavailable"
//	P.online.<node>                    the node's per-room member counts, every OnlineInterval
//	P.ctl                              control events to every node
//	P.survey                           admin surveys: every node answers on the reply inbox
type subjects struct {
	in, out, reply, nr, online, ctl, survey string // prefixes ending in "." (ctl, survey: the subjects)
}

func newSubjects(prefix string) subjects {
	return subjects{
		in:     prefix + ".in.",
		out:    prefix + ".out.",
		reply:  prefix + ".reply.",
		nr:     prefix + ".nr.",
		online: prefix + ".online.",
		ctl:    prefix + ".ctl",
		survey: prefix + ".survey",
	}
}

func (s subjects) In(room string) string     { return s.in + room }
func (s subjects) Out(room string) string    { return s.out + room }
func (s subjects) Reply(node string) string  { return s.reply + node }
func (s subjects) Online(node string) string { return s.online + node }

// OnlineAll is the wildcard every node subscribes to for counts.
func (s subjects) OnlineAll() string { return s.online + "*" }

// NoResponders is the wildcard of this node's request reply subjects.
func (s subjects) NoResponders(node string) string { return s.nr + node + ".>" }

// requestRef is what a request's reply subject carries: enough to answer the
// session "unavailable" when no owner got the request.
type requestRef struct {
	Session uint64
	Type    proto.Type // 0 for a Publish from the backend API
	ID      uint32
}

// ReplyTo returns a request's reply subject.
func (s subjects) ReplyTo(node string, ref requestRef) string {
	b := make([]byte, 0, len(s.nr)+len(node)+32)
	b = append(b, s.nr...)
	b = append(b, node...)
	b = append(b, '.')
	b = strconv.AppendUint(b, ref.Session, 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(ref.Type), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(ref.ID), 10)
	return string(b)
}

// ParseReplyTo reads a reply subject made by ReplyTo for node.
func (s subjects) ParseReplyTo(node, subject string) (requestRef, bool) {
	var ref requestRef
	rest, ok := strings.CutPrefix(subject, s.nr)
	if !ok {
		return ref, false
	}
	rest, ok = strings.CutPrefix(rest, node+".")
	if !ok {
		return ref, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return ref, false
	}
	sess, err1 := strconv.ParseUint(parts[0], 10, 64)
	typ, err2 := strconv.ParseUint(parts[1], 10, 8)
	id, err3 := strconv.ParseUint(parts[2], 10, 32)
	if err1 != nil || err2 != nil || err3 != nil {
		return ref, false
	}
	return requestRef{Session: sess, Type: proto.Type(typ), ID: uint32(id)}, true
}

// RoomOfIn returns the room of a P.in.<room> subject.
func (s subjects) RoomOfIn(subject string) (string, bool) {
	room, ok := strings.CutPrefix(subject, s.in)
	return room, ok && proto.ValidRoom(room)
}
