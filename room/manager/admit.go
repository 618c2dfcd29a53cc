package manager

import (
	"hash/maphash"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// replyTo is where one request's answer goes.
type replyTo struct {
	node    string
	session uint64
	id      uint32
}

func replyOf(in *Inbound, id uint32) replyTo {
	return replyTo{node: in.Node, session: in.Session, id: id}
}

// userState is one sender's admission state in one room: 40 bytes, kept by
// value in the room's map so a known sender costs no allocation.
type userState struct {
	chatTAT  int64  // GCRA theoretical arrival time of the chat limit, Unix ns
	likeTAT  int64  // same for likes
	lastChat int64  // last admitted chat, for slow mode
	textAt   int64  // when textHash was admitted, for duplicate suppression
	textHash uint64 // hash of the last admitted text
}

// fresh reports whether the state no longer differs from a new sender's, so
// forgetting it changes nothing.
func (u *userState) fresh(now, slow, dup int64) bool {
	return u.chatTAT <= now && u.likeTAT <= now &&
		(u.lastChat == 0 || now-u.lastChat >= slow) && now-u.textAt >= dup
}

// Priority classes of chat, highest first.
const (
	classStaff  = iota // streamer, moderators, admins
	classVIP           // vip
	classViewer        // viewers
	classCount
)

func classOf(role proto.Role) int {
	switch {
	case role.Staff():
		return classStaff
	case role == proto.RoleVIP:
		return classVIP
	}
	return classViewer
}

// canSend reports whether the sender may chat, like or gift at all: a
// verified, non-guest token with a user id.
func canSend(in *Inbound) bool {
	return in.User != "" && in.Role.Valid() && in.Role != proto.RoleGuest
}

// handle dispatches one request.
//
// Hot path: runs for every inbound message on the room goroutine. It must not
// block or do I/O (store work goes to the persister or a helper goroutine),
// and allocates only the reply body.
func (r *room) handle(in *Inbound, now int64) {
	r.lastIn = now
	r.inTotal++
	if in.Publish != nil {
		r.publish(in, now)
		return
	}
	switch msg := in.Msg.(type) {
	case *proto.Chat:
		r.chat(in, msg, now)
	case *proto.Like:
		r.like(in, msg, now)
	case *proto.Gift:
		r.gift(in, msg, now)
	case *proto.Join:
		r.join(in, msg, now)
	case *proto.Resume:
		r.resume(in, msg, now)
	case *proto.Leave:
		r.ack(replyOf(in, msg.ID), &proto.Ack{ID: msg.ID}) // the edge owns membership
	default:
		r.drop(reasonBadRequest)
		r.sendError(replyOf(in, requestID(in)), proto.CodeBadRequest)
	}
}

// chat admits a danmaku into the room's budget sampling. Rejections are
// acked at once; admitted chats are acked at the tick that decides whether
// they are broadcast (accepted) or sampled out, or earlier if the reservoir
// pushes them out.
func (r *room) chat(in *Inbound, c *proto.Chat, now int64) {
	to := replyOf(in, c.ID)
	if code, wait, why := r.admitChat(in, c, now); code != proto.CodeOK {
		r.reject(to, code, wait, why)
		return
	}
	r.sample(candidate{to: to, e: proto.Entry{
		Kind: proto.KindChat, MsgID: r.nextMsgID(now), User: in.User, Name: in.Name,
		Role: in.Role, Text: c.Text, Color: c.Color, Mode: c.Mode, ClientTS: c.ClientTS,
		ServerTS: serverTS(now),
	}}, classOf(in.Role))
}

// admitChat applies the admission rules in order: room closed, role, text,
// ban, mute, vip-only, slow mode, rate limit, duplicate text.
func (r *room) admitChat(in *Inbound, c *proto.Chat, now int64) (proto.Code, int64, reason) {
	if r.policy.Closed {
		return proto.CodeRoomClosed, 0, reasonRoomClosed
	}
	if !canSend(in) {
		return proto.CodeForbidden, 0, reasonForbidden
	}
	if err := proto.CheckText(c.Text, r.m.cfg.MaxTextRunes); err != nil {
		if err == proto.CodeTooLong {
			return proto.CodeTooLong, 0, reasonTooLong
		}
		return proto.CodeInvalidText, 0, reasonInvalidText
	}
	if r.sanctioned(in.User, true, now) {
		return proto.CodeBanned, 0, reasonBanned
	}
	if r.sanctioned(in.User, false, now) {
		return proto.CodeMuted, 0, reasonMuted
	}
	staff := in.Role.Staff()
	if r.policy.VIPOnly && !staff && in.Role != proto.RoleVIP {
		return proto.CodeVIPOnly, 0, reasonVIPOnly
	}
	u, known := r.users[in.User]
	if r.slow > 0 && !staff && u.lastChat != 0 && now-u.lastChat < r.slow {
		return proto.CodeSlowMode, u.lastChat + r.slow - now, reasonSlowMode
	}
	if ok, wait := r.m.chatLimit[classOf(in.Role)].allow(&u.chatTAT, now); !ok {
		return proto.CodeRateLimited, wait, reasonRateLimited
	}
	h := maphash.String(r.m.hashSeed, c.Text)
	dup := u.textAt != 0 && u.textHash == h && now-u.textAt < int64(r.m.cfg.DuplicateWindow)
	if !dup {
		u.lastChat, u.textAt, u.textHash = now, now, h
	}
	r.putUser(in.User, u, known, now) // the rate token is spent even on a duplicate
	if dup {
		return proto.CodeDuplicate, 0, reasonDuplicate
	}
	return proto.CodeOK, 0, 0
}

// mayAct is the admission likes and gifts share: the room is open, the
// sender may send (not a guest) and is not banned. Mutes silence chat only.
func (r *room) mayAct(in *Inbound, now int64) (proto.Code, reason) {
	switch {
	case r.policy.Closed:
		return proto.CodeRoomClosed, reasonRoomClosed
	case !canSend(in):
		return proto.CodeForbidden, reasonForbidden
	case r.sanctioned(in.User, true, now):
		return proto.CodeBanned, reasonBanned
	}
	return proto.CodeOK, 0
}

// like merges a like into the next batch's counter; muted users may like.
func (r *room) like(in *Inbound, l *proto.Like, now int64) {
	to := replyOf(in, l.ID)
	if code, why := r.mayAct(in, now); code != proto.CodeOK {
		r.reject(to, code, 0, why)
		return
	}
	u, known := r.users[in.User]
	ok, wait := r.m.likeLimit.allow(&u.likeTAT, now)
	if ok {
		r.putUser(in.User, u, known, now)
	}
	if !ok {
		r.reject(to, proto.CodeRateLimited, wait, reasonLikeRate)
		return
	}
	r.likes += uint64(l.Count)
	r.ack(to, &proto.Ack{ID: l.ID})
}

// join answers with the cached room state and queues an enter notice within
// the enter budget.
func (r *room) join(in *Inbound, j *proto.Join, now int64) {
	to := replyOf(in, j.ID)
	if code, why := r.admitWatch(in, now); code != proto.CodeOK {
		r.drop(why)
		r.sendError(to, code)
		return
	}
	r.reply(to, r.joinedBody(j.ID))
	if in.User == "" || in.Role == proto.RoleGuest || r.m.cfg.EnterBudget == 0 {
		return // guests are anonymous: nothing to announce
	}
	if ok, _ := r.m.enterLimit.allow(&r.enterTAT, now); !ok {
		r.drop(reasonEnterBudget)
		r.dropped++
		return
	}
	r.enters = append(r.enters, proto.Entry{
		Kind: proto.KindEnter, MsgID: r.nextMsgID(now), User: in.User, Name: in.Name,
		Role: in.Role, ServerTS: serverTS(now),
	})
}

// admitWatch is the check for join and resume: closed rooms and banned users
// are refused; guests may watch.
func (r *room) admitWatch(in *Inbound, now int64) (proto.Code, reason) {
	if r.policy.Closed {
		return proto.CodeRoomClosed, reasonRoomClosed
	}
	if in.User != "" && r.sanctioned(in.User, true, now) {
		return proto.CodeBanned, reasonBanned
	}
	return proto.CodeOK, 0
}

// sanctioned reports an unexpired ban (ban=true) or mute of user, in this room
// or globally.
func (r *room) sanctioned(user string, ban bool, now int64) bool {
	if len(r.sanctions) == 0 {
		return false
	}
	for _, global := range [2]bool{false, true} {
		if until, ok := r.sanctions[sanctionKey{user: user, global: global, ban: ban}]; ok &&
			(until == 0 || now < until) {
			return true
		}
	}
	return false
}

// putUser stores a sender's state, making room under MaxUsersPerRoom first
// when the sender is new.
func (r *room) putUser(id string, u userState, known bool, now int64) {
	if !known && len(r.users) >= r.m.cfg.MaxUsersPerRoom {
		if now-r.lastSweep >= int64(time.Second) {
			r.sweep(now)
		}
		if len(r.users) >= r.m.cfg.MaxUsersPerRoom {
			for k := range r.users { // Go's map order is randomised: an arbitrary victim
				delete(r.users, k)
				r.m.met.userEvictions.Add(1)
				break
			}
		}
	}
	r.users[id] = u
}

// sweep forgets sender states that are back to fresh and expired sanctions.
func (r *room) sweep(now int64) {
	r.lastSweep = now
	dup := int64(r.m.cfg.DuplicateWindow)
	for k, u := range r.users {
		if u.fresh(now, r.slow, dup) {
			delete(r.users, k)
		}
	}
	for k, until := range r.sanctions {
		if until != 0 && now >= until {
			delete(r.sanctions, k)
		}
	}
}

// reject answers a refused request and counts it.
func (r *room) reject(to replyTo, code proto.Code, wait int64, why reason) {
	r.drop(why)
	r.ack(to, &proto.Ack{ID: to.id, Code: code, RetryAfter: retryMs(wait)})
}

func (r *room) drop(why reason) {
	r.drops[why].Add(1)
	r.m.met.dropped[why].Add(1)
}

// retryMs rounds a wait in ns up to whole ms (at least 1 when waiting).
func retryMs(wait int64) int {
	if wait <= 0 {
		return 0
	}
	return int((wait + 999_999) / 1_000_000)
}
