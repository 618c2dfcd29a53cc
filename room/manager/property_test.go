package manager

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// denyBad is a deterministic gift webhook: gift id "bad" is refused.
type denyBad struct{}

func (denyBad) AuthorizeGift(_ context.Context, g GiftRequest) error {
	if g.Gift == "bad" {
		return proto.CodeGiftDenied
	}
	return nil
}

// sent is what the property test remembers of one request.
type sent struct {
	room  string
	role  proto.Role
	kind  kind
	user  string
	key   string // gift key
	flush int    // index of the flush that closed its interval
}

// flushRange is the batches one flush of one room produced.
type flushRange struct {
	room       string
	from, to   int // batch indexes [from, to)
	capacity   int // ceil(budget×tick) in force
	sessions   []uint64
	flushIndex int
}

// TestProperties drives randomised mixes of roles, kinds and rates through a
// manager, many seeds, and checks the invariants the room manager promises:
// every request answered exactly once; reliable entries never dropped, acked
// before broadcast, in seq order without gaps (also while the store fails now
// and then); chat per tick within the
// budget; staff before vip before viewers; every drop counted by reason.
func TestProperties(t *testing.T) {
	seeds := 24
	if testing.Short() {
		seeds = 6
	}
	for seed := range seeds {
		t.Run(strconv.Itoa(seed), func(t *testing.T) {
			t.Logf("seed %d", seed)
			runProperties(t, uint64(seed))
		})
	}
}

func runProperties(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	cfg := manualConfig()
	cfg.Budget = 1 + rng.IntN(8) // capacity 10–80 per (10 s) tick
	cfg.EnterBudget = rng.IntN(4)
	cfg.GiftKeyCache = rng.IntN(3) * 4
	cfg.MaxBatchEntries = 5 + rng.IntN(100)
	var opts []Option
	if rng.IntN(2) == 0 {
		opts = append(opts, WithGiftAuthorizer(denyBad{}))
	}
	fs := &faultyStore{MemoryStore: NewMemoryStore()}
	h := newFaultyHarness(t, cfg, fs, append(opts, WithSeed(int64(seed)))...)
	rooms := []string{"ra", "rb", "rc"}[:1+rng.IntN(3)]
	roles := []proto.Role{proto.RoleGuest, proto.RoleViewer, proto.RoleViewer, proto.RoleViewer,
		proto.RoleVIP, proto.RoleModerator, proto.RoleStreamer}
	nUsers := 5 + rng.IntN(60)
	userRole := make([]proto.Role, nUsers)
	for i := range userRole {
		userRole[i] = roles[rng.IntN(len(roles))]
	}
	budget := map[string]int{}
	capacity := func(room string) int {
		b := cfg.Budget
		if budget[room] > 0 {
			b = budget[room]
		}
		return int(math.Ceil(float64(b) * maxTick.Seconds()))
	}

	reqs := map[uint64]sent{}
	var flushes []flushRange
	pending := map[string][]uint64{}
	texts := []string{"666", "主播太强了", "gg", "nice play", "", "a\tb", "hello world"}
	steps := 10 + rng.IntN(10)
	for step := range steps {
		n := rng.IntN(250)
		for range n {
			room := rooms[rng.IntN(len(rooms))]
			u := rng.IntN(nUsers)
			user, role := "u"+strconv.Itoa(u), userRole[u]
			if role == proto.RoleGuest {
				user = ""
			}
			var msg proto.Message
			k := kindChat
			key := ""
			switch p := rng.IntN(100); {
			case p < 70:
				text := texts[rng.IntN(len(texts))]
				if rng.IntN(3) == 0 {
					text += strconv.Itoa(rng.IntN(1000))
				}
				msg = &proto.Chat{ID: 1, Room: room, Text: text}
			case p < 80:
				k, msg = kindLike, &proto.Like{ID: 2, Room: room, Count: uint32(1 + rng.IntN(10))}
			case p < 88:
				gift := "rose"
				if rng.IntN(10) == 0 {
					gift = "bad"
				}
				key = "k" + strconv.Itoa(rng.IntN(40))
				k, msg = kindGift, &proto.Gift{ID: 3, Room: room, Gift: gift, Count: 1, Key: key}
			case p < 93:
				k, msg = kindJoin, &proto.Join{ID: 4, Room: room}
			case p < 96:
				k, msg = kindResume, &proto.Resume{ID: 5, Room: room, Epoch: h.store.Epoch(), Seq: uint64(rng.IntN(20))}
			default:
				k = kindPublish
				key = ""
				if rng.IntN(2) == 0 {
					key = "p" + strconv.Itoa(rng.IntN(20))
				}
				s := h.publish(room, proto.Entry{Kind: proto.KindNotice, Text: "notice"}, key)
				reqs[s] = sent{room: room, role: proto.RoleSystem, kind: k, key: key}
				pending[room] = append(pending[room], s)
				continue
			}
			s := h.send(user, role, msg)
			reqs[s] = sent{room: room, role: role, kind: k, user: user, key: key}
			pending[room] = append(pending[room], s)
		}
		// Close the interval: one flush per room, with the capacity in force.
		for _, room := range rooms {
			h.rec.mu.Lock()
			from := len(h.rec.batches)
			h.rec.mu.Unlock()
			active := h.m.flush(room)
			h.rec.mu.Lock()
			to := len(h.rec.batches)
			h.rec.mu.Unlock()
			if active {
				flushes = append(flushes, flushRange{room: room, from: from, to: to, capacity: capacity(room),
					sessions: pending[room], flushIndex: step})
			}
			pending[room] = nil
		}
		// Between intervals: operator actions, releases, time.
		room := rooms[rng.IntN(len(rooms))]
		switch rng.IntN(10) {
		case 0:
			sc := Sanction{Room: room, User: "u" + strconv.Itoa(rng.IntN(nUsers)), Ban: rng.IntN(3) == 0}
			if rng.IntN(4) == 0 {
				sc.Room = ""
			}
			_ = h.store.SetSanction(context.Background(), sc)
			h.m.ApplySanction(sc, false)
		case 1:
			p := Policy{VIPOnly: rng.IntN(4) == 0, Closed: rng.IntN(8) == 0}
			if rng.IntN(2) == 0 {
				p.SlowMode = time.Duration(rng.IntN(4)) * time.Second
			}
			if rng.IntN(2) == 0 {
				p.Budget = 1 + rng.IntN(8)
			}
			_ = h.store.SetPolicy(context.Background(), room, p)
			h.m.ApplyPolicy(room, p)
			budget[room] = p.Budget
		case 2:
			h.m.Release(room)
		}
		for _, r := range rooms {
			h.m.flush(r) // apply the control before the next interval (empty flushes emit nothing)
		}
		fs.failAppend.Store(rng.IntN(8) == 0) // the store is down for the next interval
		h.clock.advance(time.Duration(rng.IntN(2500)) * time.Millisecond)
	}
	total := uint64(len(reqs))
	eventually(t, 10*time.Second, "every reply", func() bool { return uint64(h.rec.nReplies()) >= total })
	for _, room := range rooms {
		h.m.flush(room) // the last gifts' batches
	}
	h.m.Close()
	checkProperties(t, h, reqs, flushes)
}

func checkProperties(t *testing.T, h *harness, reqs map[uint64]sent, flushes []flushRange) {
	t.Helper()
	batches, replies := h.rec.snapshot()
	h.rec.mu.Lock()
	batchAt := append([]int(nil), h.rec.batchAt...)
	h.rec.mu.Unlock()

	// Every request answered exactly once.
	bySession := map[uint64]gotReply{}
	for _, rp := range replies {
		if _, dup := bySession[rp.Session]; dup {
			t.Fatalf("session %d answered twice", rp.Session)
		}
		if _, ok := reqs[rp.Session]; !ok {
			t.Fatalf("reply to unknown session %d", rp.Session)
		}
		bySession[rp.Session] = rp
	}
	if len(bySession) != len(reqs) {
		t.Fatalf("%d requests, %d answered", len(reqs), len(bySession))
	}

	// Reliable lane: per room, seqs 1, 2, 3… in order, each acked before its
	// broadcast, each acked non-duplicate entry broadcast exactly once.
	type acked struct {
		msgID uint64
		at    int
	}
	ackedSeq := map[string]map[uint64]acked{}
	firstSeqOf := map[string]uint64{} // (room, user, key) → seq of the first ack
	codes := map[proto.Code]uint64{}
	var sampledOut uint64
	for s, req := range reqs {
		rp := bySession[s]
		switch m := rp.Msg.(type) {
		case *proto.Ack:
			if m.SampledOut {
				sampledOut++
			}
			codes[m.Code]++
			if (req.kind == kindGift || req.kind == kindPublish) && m.Code == "" {
				if m.Seq == 0 || m.Epoch != h.store.Epoch() {
					t.Fatalf("reliable ack without seq/epoch: %+v", m)
				}
				if req.key != "" {
					id := req.room + "/" + req.user + "/" + req.key
					if first, ok := firstSeqOf[id]; ok && first != m.Seq {
						t.Fatalf("key %s acked with seqs %d and %d", id, first, m.Seq)
					}
					firstSeqOf[id] = m.Seq
				}
				if !m.Duplicate {
					if ackedSeq[req.room] == nil {
						ackedSeq[req.room] = map[uint64]acked{}
					}
					if _, twice := ackedSeq[req.room][m.Seq]; twice {
						t.Fatalf("room %s seq %d acked twice as new", req.room, m.Seq)
					}
					ackedSeq[req.room][m.Seq] = acked{m.MsgID, rp.At}
				}
			}
		case *proto.Error:
			codes[m.Code]++
		case *proto.Joined, *proto.Resumed:
			codes[""]++
		default:
			t.Fatalf("unexpected reply %T", m)
		}
	}
	last := map[string]uint64{}
	broadcast := map[string]int{}
	var batchDropped uint64
	for i, b := range batches {
		batchDropped += uint64(b.Dropped)
		for _, e := range b.Reliable {
			if e.Seq != last[b.Room]+1 {
				t.Fatalf("room %s: seq %d after %d", b.Room, e.Seq, last[b.Room])
			}
			last[b.Room] = e.Seq
			a, ok := ackedSeq[b.Room][e.Seq]
			if !ok || a.msgID != e.MsgID {
				t.Fatalf("room %s seq %d broadcast without its ack", b.Room, e.Seq)
			}
			if a.at > batchAt[i] {
				t.Fatalf("room %s seq %d broadcast before it was acked", b.Room, e.Seq)
			}
			broadcast[b.Room]++
		}
	}
	for room, seqs := range ackedSeq {
		if broadcast[room] != len(seqs) {
			t.Fatalf("room %s: %d reliable entries acked, %d broadcast", room, len(seqs), broadcast[room])
		}
		head, _ := h.store.Head(context.Background(), room)
		if head.Seq != last[room] {
			t.Fatalf("room %s: store head %d, broadcast up to %d", room, head.Seq, last[room])
		}
	}

	// Budget and priority, per flush.
	for _, f := range flushes {
		chats := 0
		lowest := -1 // lowest priority class broadcast (highest class number)
		for _, b := range batches[f.from:f.to] {
			if b.Room != f.room {
				t.Fatalf("flush of %s produced a batch of %s", f.room, b.Room)
			}
			for _, e := range b.Lossy {
				if e.Kind == proto.KindChat {
					chats++
					lowest = max(lowest, classOf(e.Role))
				}
			}
		}
		if chats > f.capacity {
			t.Fatalf("flush %d of %s: %d chats, capacity %d", f.flushIndex, f.room, chats, f.capacity)
		}
		for _, s := range f.sessions {
			req := reqs[s]
			if a, ok := bySession[s].Msg.(*proto.Ack); ok && req.kind == kindChat && a.SampledOut &&
				classOf(req.role) < lowest {
				t.Fatalf("flush %d of %s: a %s chat was sampled out while a lower class was broadcast",
					f.flushIndex, f.room, req.role)
			}
		}
	}

	// Every drop counted with its reason.
	c := h.m.Counters()
	if c.Dropped["budget"] != sampledOut {
		t.Fatalf("budget drops %d, sampled-out acks %d", c.Dropped["budget"], sampledOut)
	}
	if batchDropped != c.Dropped["budget"]+c.Dropped["enter_budget"] {
		t.Fatalf("batches report %d dropped, counters %d+%d", batchDropped, c.Dropped["budget"], c.Dropped["enter_budget"])
	}
	var rejected, counted uint64
	for code, n := range codes {
		if code != "" {
			rejected += n
		}
	}
	for why, n := range c.Dropped {
		if why != "budget" && why != "enter_budget" {
			counted += n
		}
	}
	if rejected != counted {
		t.Fatalf("%d rejections answered, %d counted (%v vs %v)", rejected, counted, codes, c.Dropped)
	}
	for _, code := range []proto.Code{proto.CodeTooLong, proto.CodeInvalidText, proto.CodeMuted,
		proto.CodeBanned, proto.CodeVIPOnly, proto.CodeSlowMode, proto.CodeDuplicate, proto.CodeForbidden,
		proto.CodeRoomClosed, proto.CodeGiftDenied} {
		if codes[code] != c.Dropped[string(code)] {
			t.Fatalf("%s: %d answered, %d counted", code, codes[code], c.Dropped[string(code)])
		}
	}
	if got := c.Dropped["rate_limited"] + c.Dropped["like_rate"] + c.Dropped["inbox_full"]; got != codes[proto.CodeRateLimited] {
		t.Fatalf("rate_limited: %d answered, %d counted", codes[proto.CodeRateLimited], got)
	}
	if testing.Verbose() {
		fmt.Printf("seed run: %d requests, %d batches, sampled out %d, drops %v\n", len(reqs), len(batches), sampledOut, c.Dropped)
	}
}
