package proto

import (
	"fmt"
	"unicode/utf8"
)

// Version is the protocol version this package speaks. It is the fourth byte of
// the TCP preamble and the "v" of hello.
const Version = 1

// Type identifies a message. It is the "t" key of every frame.
type Type uint8

// Message types. Odd numbers up to 11 are client requests, even numbers their
// replies; the rest are server pushes. The numbers never change meaning: a new
// message gets a new number (see docs/PROTOCOL.md, versioning).
const (
	TypeHello     Type = 1  // client → server, first frame
	TypeWelcome   Type = 2  // server → client, answer to hello
	TypeJoin      Type = 3  // client → server
	TypeJoined    Type = 4  // server → client, answer to join
	TypeLeave     Type = 5  // client → server, answered by ack
	TypeChat      Type = 6  // client → server, answered by ack
	TypeLike      Type = 7  // client → server, answered by ack
	TypeGift      Type = 8  // client → server, answered by ack
	TypeAck       Type = 9  // server → client
	TypeResume    Type = 10 // client → server
	TypeResumed   Type = 11 // server → client, answer to resume
	TypePing      Type = 12 // client → server
	TypePong      Type = 13 // server → client
	TypeBatch     Type = 14 // server → client, one per room per tick
	TypeNotice    Type = 15 // server → client
	TypeError     Type = 16 // server → client
	TypeReconnect Type = 17 // server → client: move to another node
	TypeMissed    Type = 18 // server → client: lossy batches skipped while slow
)

var typeNames = [...]string{
	TypeHello: "hello", TypeWelcome: "welcome", TypeJoin: "join", TypeJoined: "joined",
	TypeLeave: "leave", TypeChat: "chat", TypeLike: "like", TypeGift: "gift", TypeAck: "ack",
	TypeResume: "resume", TypeResumed: "resumed", TypePing: "ping", TypePong: "pong",
	TypeBatch: "batch", TypeNotice: "notice", TypeError: "error", TypeReconnect: "reconnect",
	TypeMissed: "missed",
}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Code is a wire error code, from a closed set. The empty code means success.
// A Code is an error, so callers can wrap it and test with errors.Is.
type Code string

// Error codes. docs/PROTOCOL.md lists what each means and what a client does.
const (
	CodeOK           Code = ""
	CodeBadFrame     Code = "bad_frame"     // not a frame of this protocol: malformed msgpack, wrong field type, bad preamble
	CodeTooLarge     Code = "too_large"     // frame above the size limit
	CodeUnknownType  Code = "unknown_type"  // a message type this server does not know; the connection stays open
	CodeBadRequest   Code = "bad_request"   // well-formed but invalid: missing field, bad room id, count out of range
	CodeHelloFirst   Code = "hello_first"   // a message before hello, or a second hello
	CodeBadVersion   Code = "bad_version"   // protocol version not supported
	CodeUnauthorized Code = "unauthorized"  // token missing, malformed, forged or signed with another key
	CodeTokenExpired Code = "token_expired" // token past exp or before nbf
	CodeForbidden    Code = "forbidden"     // token valid but not for this room, or the role may not do this
	CodeNotJoined    Code = "not_joined"    // message for a room the connection has not joined
	CodeRateLimited  Code = "rate_limited"  // too many messages for the sender's role
	CodeSlowMode     Code = "slow_mode"     // the room's slow mode: wait before the next chat
	CodeVIPOnly      Code = "vip_only"      // the room accepts chat from vip and staff only
	CodeDuplicate    Code = "duplicate"     // same text repeated within the suppression window
	CodeMuted        Code = "muted"         // the sender is muted in this room
	CodeBanned       Code = "banned"        // the sender is banned from this room
	CodeRoomClosed   Code = "room_closed"   // the room was closed by an operator
	CodeTooLong      Code = "too_long"      // chat text above the rune limit
	CodeInvalidText  Code = "invalid_text"  // text empty, not valid UTF-8, or with control characters
	CodeGiftDenied   Code = "gift_denied"   // the app's gift webhook refused the gift (or did not answer in time)
	CodeUnavailable  Code = "unavailable"   // a dependency (owner, store) is unreachable: retry with backoff
	CodeServerFull   Code = "server_full"   // connection limit reached; try another node
	CodeSlowConsumer Code = "slow_consumer" // the client did not read fast enough and was disconnected
	CodeTimeout      Code = "timeout"       // handshake or heartbeat deadline missed
	CodeKicked       Code = "kicked"        // an operator removed this connection
	CodeShutdown     Code = "shutdown"      // the node is draining
	CodeInternal     Code = "internal"      // a server bug; reported and counted
)

// Codes lists every code, for docs and metrics labels.
var Codes = []Code{
	CodeBadFrame, CodeTooLarge, CodeUnknownType, CodeBadRequest, CodeHelloFirst, CodeBadVersion,
	CodeUnauthorized, CodeTokenExpired, CodeForbidden, CodeNotJoined, CodeRateLimited,
	CodeSlowMode, CodeVIPOnly, CodeDuplicate, CodeMuted, CodeBanned, CodeRoomClosed, CodeTooLong,
	CodeInvalidText, CodeGiftDenied, CodeUnavailable, CodeServerFull, CodeSlowConsumer,
	CodeTimeout, CodeKicked, CodeShutdown, CodeInternal,
}

func (c Code) Error() string { return string(c) }

// Role is what a token says its holder may do.
type Role string

// Roles, lowest to highest.
const (
	RoleGuest     Role = "guest" // anonymous, read-only
	RoleViewer    Role = "viewer"
	RoleVIP       Role = "vip"
	RoleModerator Role = "moderator"
	RoleStreamer  Role = "streamer"
	RoleAdmin     Role = "admin"
	RoleSystem    Role = "system" // entries the server or the app's backend published
)

// Valid reports whether r is a role a token may carry.
func (r Role) Valid() bool {
	switch r {
	case RoleGuest, RoleViewer, RoleVIP, RoleModerator, RoleStreamer, RoleAdmin:
		return true
	}
	return false
}

// Staff reports whether r may moderate a room.
func (r Role) Staff() bool { return r == RoleModerator || r == RoleStreamer || r == RoleAdmin }

// Kind is what an entry in a batch is.
type Kind string

// Entry kinds. Gift, notice, state and mod travel in the reliable lane (with a
// seq); chat and enter in the lossy lane. Likes travel as a merged counter.
const (
	KindChat   Kind = "chat"
	KindEnter  Kind = "enter"
	KindGift   Kind = "gift"
	KindNotice Kind = "notice"
	KindState  Kind = "state"
	KindMod    Kind = "mod"
)

// Reliable reports whether entries of this kind take the reliable lane.
func (k Kind) Reliable() bool {
	return k == KindGift || k == KindNotice || k == KindState || k == KindMod
}

// Mode is how a chat flies over the video.
type Mode uint8

// Chat display modes.
const (
	ModeScroll Mode = 0 // right to left across a lane
	ModeTop    Mode = 1 // fixed at the top, centred
	ModeBottom Mode = 2 // fixed at the bottom, centred
)

// Wire limits. The server may announce lower ones in welcome; these are the
// protocol's ceilings, which a decoder enforces before any allocation.
const (
	// MaxClientFrame is the default ceiling of a client → server frame body: a
	// chat frame is under 600 bytes; 4 KiB leaves room for a JWT in hello.
	MaxClientFrame = 4 << 10
	// MaxServerFrame is the ceiling of a server → client frame body: a batch of
	// 200 chats is ~40 KiB and a join backlog ~10 KiB; 1 MiB bounds replays.
	MaxServerFrame = 1 << 20
	// MaxTextRunes is the default chat text limit in runes (server-configurable).
	MaxTextRunes = 100
	// MaxRoomLen is the longest room id; ids are [A-Za-z0-9_-] so they are
	// always safe as a NATS subject token and a Redis key part.
	MaxRoomLen = 64
	// MaxKeyLen is the longest gift idempotency key.
	MaxKeyLen = 64
	// MaxGiftIDLen is the longest gift id.
	MaxGiftIDLen = 64
	// MaxGiftCount is the largest count in one gift message.
	MaxGiftCount = 10000
	// MaxLikeCount is the largest count in one like message (a client merges taps).
	MaxLikeCount = 1000
)

// ValidRoom reports whether id is a room id: 1–64 of [A-Za-z0-9_-].
func ValidRoom(id string) bool {
	if len(id) == 0 || len(id) > MaxRoomLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// CheckText validates chat text against a rune limit: non-empty, valid UTF-8,
// no control characters other than none at all (a danmaku is one line).
func CheckText(s string, maxRunes int) error {
	if s == "" || !utf8.ValidString(s) {
		return CodeInvalidText
	}
	n := 0
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 {
			return CodeInvalidText
		}
		n++
	}
	if n > maxRunes {
		return CodeTooLong
	}
	return nil
}
