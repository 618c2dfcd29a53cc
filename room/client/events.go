package client

import (
	"fmt"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// EventKind says what an Event reports and which of its fields are set.
type EventKind uint8

// Event kinds. Room data (batch, notice, missed, state, resumed, left) comes
// from the connection's reader in the order the server sent it; connection
// events come from the reconnect loop between two connections.
const (
	// EventBatch: Room, Batch (reliable entries filtered to exactly once, in
	// seq order), Replay (the entries were recovered by a resume, not pushed).
	EventBatch EventKind = iota + 1
	// EventNotice: Notice, a text from the server to this connection.
	EventNotice
	// EventMissed: Room, Missed — lossy batches the server skipped while this
	// client was reading too slowly. Reliable entries are never skipped.
	EventMissed
	// EventState: Room, State. Sent when a room is joined and when it is
	// rejoined after a resume that could not recover (Rejoined is true): the
	// app missed history and should redraw from State.
	EventState
	// EventResumed: Room, Recovered — the answer to a resume the SDK sent
	// after a reconnect or a gap.
	EventResumed
	// EventLeft: Room, Err — the server refused to resume the room (banned,
	// closed…); the SDK no longer considers it joined.
	EventLeft
	// EventError: Err (wrapping the proto.Code), Room if any — an error the
	// server sent outside any request. Fatal ones are followed by a reconnect
	// (by EventClosed for kicked).
	EventError
	// EventConnected: the first connection is up.
	EventConnected
	// EventDisconnected: Err — the connection was lost.
	EventDisconnected
	// EventReconnecting: Attempt (from 1), Delay before it, Err of the
	// previous attempt (nil on the first).
	EventReconnecting
	// EventReconnected: a new connection is up; resumes follow for every room.
	EventReconnected
	// EventReconnectRequested: Reconnect — the server asked this client to
	// move (node draining); the SDK waits Reconnect.RetryAfter and reconnects.
	EventReconnectRequested
	// EventClosed: Err — the client stopped by itself: a token the server
	// refuses (and no TokenSource), an operator's kick, or
	// Config.MaxReconnectAttempts. Close needs no event.
	EventClosed
)

var eventNames = [...]string{
	EventBatch: "batch", EventNotice: "notice", EventMissed: "missed", EventState: "state",
	EventResumed: "resumed", EventLeft: "left", EventError: "error", EventConnected: "connected",
	EventDisconnected: "disconnected", EventReconnecting: "reconnecting",
	EventReconnected: "reconnected", EventReconnectRequested: "reconnect_requested",
	EventClosed: "closed",
}

func (k EventKind) String() string {
	if int(k) < len(eventNames) && eventNames[k] != "" {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is what the SDK reports to the app, through Client.Events or
// Config.OnEvent. Kind says which fields are set.
type Event struct {
	Kind EventKind
	// Room the event is about ("" for connection events).
	Room string
	// Batch of an EventBatch. Its Reliable entries are new to the app, each
	// exactly once and in seq order across events of the room; Lossy entries
	// are delivered as they come.
	Batch *proto.Batch
	// Replay is true when Batch holds entries recovered by a resume.
	Replay bool
	// State of an EventState.
	State *proto.RoomState
	// Rejoined is true when State follows a resume that could not recover.
	Rejoined bool
	// Recovered is the result of an EventResumed.
	Recovered bool
	// Notice of an EventNotice.
	Notice *proto.Notice
	// Missed is the number of lossy batches of an EventMissed.
	Missed uint32
	// Reconnect is the server's request of an EventReconnectRequested.
	Reconnect *proto.Reconnect
	// Attempt and Delay of an EventReconnecting.
	Attempt int
	Delay   time.Duration
	// Err of an EventDisconnected, EventReconnecting, EventLeft, EventError
	// or EventClosed.
	Err error
}

// emit hands ev to the app. It blocks while the app is not reading Events —
// deliberately: reliable entries are never dropped by the SDK, so a stalled
// app stalls the reader, and the server eventually disconnects the client as
// a slow consumer (then the SDK reconnects and resumes). It gives up only
// when the client is closing.
func (c *Client) emit(ev Event) {
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(ev)
		return
	}
	select {
	case c.events <- ev:
	case <-c.closing:
	}
}
