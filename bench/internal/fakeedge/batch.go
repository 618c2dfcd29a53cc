package fakeedge

import (
	"sync"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// ticker builds one batch per room per tick, encodes it once and writes it
// to every member (split over Writers goroutines).
func (s *Server) ticker() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case now := <-t.C:
			s.mu.Lock()
			rooms := make([]*room, 0, len(s.rooms))
			for _, r := range s.rooms {
				rooms = append(rooms, r)
			}
			s.mu.Unlock()
			for _, r := range rooms {
				s.flush(r, now)
			}
		}
	}
}

func (s *Server) flush(r *room, now time.Time) {
	r.mu.Lock()
	if g := s.cfg.Generate; g != nil {
		for q, top := r.seq+1, g.slot(now); q <= top; q++ {
			r.relQ = append(r.relQ, g.entry(q))
			r.seq = q
		}
		for i := 0; i < g.Chats && g.on(now); i++ {
			r.mid++
			r.losQ = append(r.losQ, proto.Entry{Kind: proto.KindChat, MsgID: r.mid, User: "generator",
				Role: proto.RoleSystem, Text: "gen", ClientTS: now.UnixMilli(), ServerTS: now.UnixMilli()})
		}
	}
	if len(r.relQ) == 0 && len(r.losQ) == 0 && r.likes == 0 && r.dropped == 0 {
		r.mu.Unlock()
		return
	}
	r.tick++
	b := &proto.Batch{Room: r.id, Tick: r.tick, ServerTS: now.UnixMilli(), Epoch: r.epoch,
		Reliable: r.relQ, Lossy: r.losQ, Likes: r.likes, Dropped: r.dropped}
	r.relQ, r.losQ, r.likes, r.dropped = nil, nil, 0, 0
	members := make([]*conn, 0, len(r.members))
	for c := range r.members {
		members = append(members, c)
	}
	r.mu.Unlock()
	f := frames(proto.Encode(b))
	var starved *framed
	if s.cfg.Faults.Starve != nil {
		nb := *b
		nb.Reliable = nil
		sf := frames(proto.Encode(&nb))
		starved = &sf
	}
	write := func(cs []*conn) {
		for _, c := range cs {
			if starved != nil && s.cfg.Faults.Starve(c.user) {
				c.write(*starved)
				continue
			}
			c.write(f)
		}
	}
	if s.cfg.Writers == 1 || len(members) < 2*s.cfg.Writers {
		write(members)
		return
	}
	var wg sync.WaitGroup
	per := (len(members) + s.cfg.Writers - 1) / s.cfg.Writers
	for i := 0; i < len(members); i += per {
		wg.Add(1)
		go func(cs []*conn) { defer wg.Done(); write(cs) }(members[i:min(i+per, len(members))])
	}
	wg.Wait()
}
