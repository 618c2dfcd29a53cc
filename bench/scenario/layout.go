package scenario

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Layout is a validated scenario laid out: every room with its effective
// traffic, and every viewer's global index. Viewer i of the run belongs to the
// room whose [First, First+Viewers) holds i; within the room its position
// decides what it sends (the first ChatSenders chat, the first LikeSenders
// like, the first GiftSenders send gifts).
type Layout struct {
	Rooms   []Room
	Viewers int
}

// Room is one room of the run.
type Room struct {
	ID      string
	Group   int // index in Scenario.Rooms
	First   int // global index of the room's first viewer
	Viewers int
	Chat    Chat
	Likes   Likes
	Gifts   Gifts
	// Sender counts, derived from the fractions (at least one when positive).
	ChatSenders, LikeSenders, GiftSenders int
}

// RoomPrefixFor returns the prefix of room ids for a run: room_prefix if set,
// else "b<runID>-".
func (s *Scenario) RoomPrefixFor(runID string) string {
	if s.RoomPrefix != nil {
		return *s.RoomPrefix
	}
	return "b" + runID + "-"
}

// Layout lays out a validated scenario with room ids prefixed by prefix.
func (s *Scenario) Layout(prefix string) *Layout {
	l := &Layout{}
	for gi, g := range s.Rooms {
		chat, likes, gifts := s.Chat, s.Likes, s.Gifts
		if g.Chat != nil {
			chat = *g.Chat
		}
		if g.Likes != nil {
			likes = *g.Likes
		}
		if g.Gifts != nil {
			gifts = *g.Gifts
		}
		for r := 0; r < g.Count; r++ {
			id := prefix + g.ID
			if g.Count > 1 {
				id = fmt.Sprintf("%s%s-%d", prefix, g.ID, r)
			}
			room := Room{
				ID: id, Group: gi, First: l.Viewers, Viewers: g.Viewers,
				Chat: chat, Likes: likes, Gifts: gifts,
				ChatSenders: senders(chat.Senders, g.Viewers),
				LikeSenders: senders(likes.Senders, g.Viewers),
				GiftSenders: min(gifts.Senders, g.Viewers),
			}
			if gifts.Rate == 0 {
				room.GiftSenders = 0
			}
			l.Rooms = append(l.Rooms, room)
			l.Viewers += g.Viewers
		}
	}
	return l
}

// senders turns a fraction of viewers into a count, at least 1 when positive.
func senders(frac float64, viewers int) int {
	if frac <= 0 {
		return 0
	}
	return min(viewers, max(1, int(math.Round(frac*float64(viewers)))))
}

// RoomOf returns the index of viewer i's room and its position in the room.
func (l *Layout) RoomOf(i int) (room, pos int) {
	r := sort.Search(len(l.Rooms), func(k int) bool { return l.Rooms[k].First > i }) - 1
	return r, i - l.Rooms[r].First
}

// Workers returns how many worker processes hold the layout's viewers at
// most perWorker each (at least one), or want if it is set.
func Workers(viewers, perWorker, want int) int {
	if want > 0 {
		return want
	}
	return max(1, (viewers+perWorker-1)/perWorker)
}

// Timeline are the moments of a run, from the first dial.
type Timeline struct {
	TrafficStart time.Duration
	Stop         time.Duration // senders stop; the drain begins
	Drain        time.Duration // longest drain
}

// Timeline returns the scenario's timeline.
func (s *Scenario) Timeline() Timeline {
	return Timeline{TrafficStart: s.TrafficStart.D(), Stop: s.Duration.D(), Drain: s.Drain.D()}
}

// ScaleAt returns the chat, likes and gifts multipliers in force at t.
func (s *Scenario) ScaleAt(t time.Duration) (chat, likes, gifts float64) {
	chat, likes, gifts = 1, 1, 1
	for _, st := range s.Steps {
		if st.Scale == nil || t < st.At.D() || (st.For > 0 && t >= st.At.D()+st.For.D()) {
			continue
		}
		if st.Scale.Chat != nil {
			chat = *st.Scale.Chat
		}
		if st.Scale.Likes != nil {
			likes = *st.Scale.Likes
		}
		if st.Scale.Gifts != nil {
			gifts = *st.Scale.Gifts
		}
	}
	return chat, likes, gifts
}
