package fakeedge

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/danmaku/danmaku/room/auth"
	"github.com/danmaku/danmaku/room/proto"
)

// Config configures a fake edge.
type Config struct {
	// Secret verifies hello tokens. Required.
	Secret []byte
	// Addr and MetricsAddr are where to listen. Default 127.0.0.1:0 each.
	Addr, MetricsAddr string
	// Tick is the batch interval. Default 20ms.
	Tick time.Duration
	// Budget is chat messages per second broadcast per room; the rest are
	// dropped (ack so=true, counted in batch.dr). Default 200.
	Budget int
	// Heartbeat is announced in welcome, ms. Default 25000.
	Heartbeat int
	// Retention is the reliable entries kept per room for resume. Default 1000.
	Retention int
	// Writers is how many goroutines write one batch to a room's members.
	// Default 1.
	Writers int
	// MaxConns closes connections past this many (0 = no cap).
	MaxConns int
	// Generate, when set, makes the server publish traffic itself.
	Generate *Generator
	// Faults, for tests that must see the bench fail.
	Faults Faults
}

// Generator makes the server publish traffic itself, the same in every
// process given the same Origin and Every: a reliable gift entry per Every
// whose seq is the number of periods since Origin (so separate processes
// agree on seqs, epoch and content, like the nodes of one cluster), and
// Chats chat entries per tick per room. Client gifts are refused in this mode.
type Generator struct {
	Origin time.Time
	Every  time.Duration
	Chats  int
	// Until stops the generator (zero: never), so a run's drain can settle.
	Until time.Time
}

// slot is the generator's seq at t.
func (g *Generator) slot(t time.Time) uint64 {
	if !g.Until.IsZero() && t.After(g.Until) {
		t = g.Until
	}
	if t.Before(g.Origin) {
		return 0
	}
	return uint64(t.Sub(g.Origin) / g.Every)
}

// on reports whether the generator publishes at t.
func (g *Generator) on(t time.Time) bool { return g.Until.IsZero() || !t.After(g.Until) }

// entry is the generated reliable entry of seq.
func (g *Generator) entry(seq uint64) proto.Entry {
	ct := g.Origin.Add(time.Duration(seq) * g.Every).UnixMilli()
	return proto.Entry{Kind: proto.KindGift, Seq: seq, MsgID: seq, User: "generator", Role: proto.RoleSystem,
		Gift: "gen", Count: 1, ClientTS: ct, ServerTS: ct}
}

// Faults break the fake on purpose.
type Faults struct {
	// Starve: members whose user id it returns true for get batches
	// without reliable entries and empty replays (they miss every gift).
	Starve func(user string) bool
	// SwallowGiftAck: every Nth new gift is admitted but its ack is not
	// sent, so the sender retries with the same key (a dup ack follows).
	SwallowGiftAck int
	// ForgetKeys: a retried key is admitted again under a new seq (broken
	// idempotency: the purchase is doubled).
	ForgetKeys bool
}

// Server is a running fake edge.
type Server struct {
	cfg     Config
	ln      net.Listener
	http    *http.Server
	httpLn  net.Listener
	mu      sync.Mutex
	rooms   map[string]*room
	conns   map[*conn]struct{}
	closed  chan struct{}
	wg      sync.WaitGroup
	gifts   atomic.Int64
	dropped atomic.Int64
	nconns  atomic.Int64
}

type room struct {
	mu      sync.Mutex
	id      string
	epoch   string
	seq     uint64
	members map[*conn]struct{}
	history []proto.Entry // newest Retention reliable entries
	keys    map[string]proto.Ack
	relQ    []proto.Entry
	losQ    []proto.Entry
	likes   uint64
	dropped uint32
	sent    int // chats broadcast in the current second
	second  int64
	tick    uint64
	mid     uint64
	nGifts  int
}

type conn struct {
	s    *Server
	c    net.Conn
	br   *bufio.Reader
	ws   bool
	wmu  sync.Mutex
	user string
	name string
	role proto.Role
	dec  proto.Decoder
}

// Start listens on 127.0.0.1 (a random port) for the edge and for metrics.
func Start(cfg Config) (*Server, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("fakeedge: Secret is required")
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 20 * time.Millisecond
	}
	if cfg.Budget <= 0 {
		cfg.Budget = 200
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 25000
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 1000
	}
	if cfg.Writers <= 0 {
		cfg.Writers = 1
	}
	if g := cfg.Generate; g != nil && g.Every <= 0 {
		return nil, errors.New("fakeedge: Generate.Every must be positive")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.MetricsAddr == "" {
		cfg.MetricsAddr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	hl, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, ln: ln, httpLn: hl, rooms: map[string]*room{}, conns: map[*conn]struct{}{}, closed: make(chan struct{})}
	s.http = &http.Server{Handler: http.HandlerFunc(s.metrics), ReadHeaderTimeout: 5 * time.Second}
	s.wg.Add(3)
	go s.accept()
	go s.ticker()
	go func() { defer s.wg.Done(); _ = s.http.Serve(hl) }()
	return s, nil
}

// Addr is the edge's host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// MetricsURL is the Prometheus text endpoint.
func (s *Server) MetricsURL() string { return "http://" + s.httpLn.Addr().String() + "/metrics" }

// Gifts is how many gifts were admitted (seqs assigned).
func (s *Server) Gifts() int64 { return s.gifts.Load() }

// Close stops the server and closes every connection.
func (s *Server) Close() {
	select {
	case <-s.closed:
		return
	default:
	}
	close(s.closed)
	s.ln.Close()
	s.http.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprintf(w, "# HELP process_cpu_seconds_total CPU.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\n")
	fmt.Fprintf(w, "process_resident_memory_bytes 2.5e+07\n")
	fmt.Fprintf(w, "# TYPE danmaku_lossy_dropped_total counter\ndanmaku_lossy_dropped_total{reason=\"budget\"} %d\n", s.dropped.Load())
	fmt.Fprintf(w, "danmaku_edge_connections %d\n", s.nconns.Load())
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		if s.cfg.MaxConns > 0 && s.nconns.Load() >= int64(s.cfg.MaxConns) {
			c.Close()
			continue
		}
		cn := &conn{s: s, c: c, br: bufio.NewReaderSize(c, 4096)}
		s.mu.Lock()
		s.conns[cn] = struct{}{}
		s.mu.Unlock()
		s.nconns.Add(1)
		s.wg.Add(1)
		go cn.serve()
	}
}

func (c *conn) serve() {
	s := c.s
	defer s.wg.Done()
	defer func() {
		c.c.Close()
		s.nconns.Add(-1)
		s.mu.Lock()
		delete(s.conns, c)
		rooms := make([]*room, 0, len(s.rooms))
		for _, r := range s.rooms {
			rooms = append(rooms, r)
		}
		s.mu.Unlock()
		for _, r := range rooms {
			r.mu.Lock()
			delete(r.members, c)
			r.mu.Unlock()
		}
	}()
	_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	pre, err := c.br.Peek(4)
	if err != nil {
		return
	}
	if bytes.Equal(pre[:3], []byte("DMK")) {
		if proto.CheckPreamble(pre) != nil {
			return
		}
		c.br.Discard(4)
	} else {
		if _, err := (ws.Upgrader{}).Upgrade(struct {
			io.Reader
			io.Writer
		}{c.br, c.c}); err != nil {
			return
		}
		c.ws = true
	}
	_ = c.c.SetReadDeadline(time.Time{})
	hello := false
	for {
		body, err := c.read()
		if err != nil {
			return
		}
		m, err := c.dec.Decode(body)
		if err != nil {
			c.send(&proto.Error{Code: proto.CodeBadFrame})
			return
		}
		if !hello {
			h, ok := m.(*proto.Hello)
			if !ok {
				c.send(&proto.Error{Code: proto.CodeHelloFirst})
				return
			}
			claims, err := auth.Verify(s.cfg.Secret, h.Token)
			if err != nil {
				c.send(&proto.Error{ID: h.ID, Code: proto.CodeUnauthorized, Message: err.Error()})
				return
			}
			c.user, c.name, c.role = claims.User(), claims.Name, claims.Role
			hello = true
			c.send(&proto.Welcome{ID: h.ID, Session: fmt.Sprintf("s%p", c), Node: "fake", User: c.user, Name: c.name,
				Role: c.role, Heartbeat: s.cfg.Heartbeat, ServerTime: time.Now().UnixMilli(),
				Limits: proto.Limits{MaxFrame: proto.MaxClientFrame, MaxText: proto.MaxTextRunes, ChatPerSec: 10,
					MaxRooms: 8, ServerFrame: proto.MaxServerFrame, ResumeWindow: s.cfg.Retention}})
			continue
		}
		c.handle(m)
	}
}

func (c *conn) handle(m proto.Message) {
	s := c.s
	switch m := m.(type) {
	case *proto.Ping:
		c.send(&proto.Pong{ID: m.ID, ServerTime: time.Now().UnixMilli()})
	case *proto.Join:
		r := s.room(m.Room)
		r.mu.Lock()
		r.members[c] = struct{}{}
		st := proto.RoomState{Epoch: r.epoch, Seq: r.seq, Online: int64(len(r.members)), Budget: s.cfg.Budget, Live: true}
		r.mu.Unlock()
		c.send(&proto.Joined{ID: m.ID, Room: m.Room, State: st})
	case *proto.Resume:
		r := s.room(m.Room)
		r.mu.Lock()
		r.members[c] = struct{}{}
		res := &proto.Resumed{ID: m.ID, Room: m.Room, Epoch: r.epoch, Seq: r.seq}
		oldest := r.seq - uint64(len(r.history))
		switch {
		case s.cfg.Generate != nil && m.Epoch == r.epoch && m.Seq+uint64(s.cfg.Retention) >= r.seq:
			res.Recovered = true
			for q := m.Seq + 1; q <= r.seq; q++ {
				res.Entries = append(res.Entries, s.cfg.Generate.entry(q))
			}
		case s.cfg.Generate == nil && m.Epoch == r.epoch && m.Seq >= oldest:
			res.Recovered = true
			if s.cfg.Faults.Starve == nil || !s.cfg.Faults.Starve(c.user) {
				res.Entries = append([]proto.Entry(nil), r.history[m.Seq-oldest:]...)
			}
		default:
			res.State = &proto.RoomState{Epoch: r.epoch, Seq: r.seq, Online: int64(len(r.members))}
		}
		r.mu.Unlock()
		c.send(res)
	case *proto.Chat:
		r := s.room(m.Room)
		now := time.Now()
		r.mu.Lock()
		r.mid++
		ack := &proto.Ack{ID: m.ID, MsgID: r.mid}
		if sec := now.Unix(); sec != r.second {
			r.second, r.sent = sec, 0
		}
		if r.sent >= s.cfg.Budget {
			r.dropped++
			s.dropped.Add(1)
			ack.SampledOut = true
		} else {
			r.sent++
			r.losQ = append(r.losQ, proto.Entry{Kind: proto.KindChat, MsgID: r.mid, User: c.user, Name: c.name,
				Role: c.role, Text: m.Text, ClientTS: m.ClientTS, ServerTS: now.UnixMilli()})
		}
		r.mu.Unlock()
		c.send(ack)
	case *proto.Like:
		r := s.room(m.Room)
		r.mu.Lock()
		r.likes += uint64(m.Count)
		r.mu.Unlock()
		c.send(&proto.Ack{ID: m.ID})
	case *proto.Gift:
		c.gift(m)
	default:
		c.send(&proto.Error{Code: proto.CodeUnknownType})
	}
}

func (c *conn) gift(m *proto.Gift) {
	s := c.s
	if s.cfg.Generate != nil {
		c.send(&proto.Ack{ID: m.ID, Code: proto.CodeForbidden, Message: "the generator owns this room's reliable lane"})
		return
	}
	r := s.room(m.Room)
	r.mu.Lock()
	if ack, ok := r.keys[m.Key]; ok && !s.cfg.Faults.ForgetKeys {
		r.mu.Unlock()
		ack.ID, ack.Duplicate = m.ID, true
		c.send(&ack)
		return
	}
	r.seq++
	r.mid++
	e := proto.Entry{Kind: proto.KindGift, Seq: r.seq, MsgID: r.mid, User: c.user, Name: c.name, Role: c.role,
		Gift: m.Gift, Count: m.Count, ClientTS: m.ClientTS, ServerTS: time.Now().UnixMilli()}
	r.history = append(r.history, e)
	if len(r.history) > s.cfg.Retention {
		r.history = r.history[1:]
	}
	r.relQ = append(r.relQ, e)
	ack := proto.Ack{MsgID: r.mid, Seq: r.seq, Epoch: r.epoch}
	r.keys[m.Key] = ack
	r.nGifts++
	swallow := s.cfg.Faults.SwallowGiftAck > 0 && r.nGifts%s.cfg.Faults.SwallowGiftAck == 0
	r.mu.Unlock()
	s.gifts.Add(1)
	if !swallow {
		ack.ID = m.ID
		c.send(&ack)
	}
}

func (s *Server) room(id string) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rooms[id]
	if !ok {
		r = &room{id: id, epoch: "ep-" + id, members: map[*conn]struct{}{}, keys: map[string]proto.Ack{}}
		if g := s.cfg.Generate; g != nil {
			r.seq = g.slot(time.Now())
		}
		s.rooms[id] = r
	}
	return r
}

func (c *conn) send(m proto.Message) { c.write(frames(proto.Encode(m))) }

// framed is one body framed for both transports, built once per batch.
type framed struct{ ws, tcp []byte }

func frames(body []byte) framed {
	var hdr bytes.Buffer
	_ = ws.WriteHeader(&hdr, ws.Header{Fin: true, OpCode: ws.OpBinary, Length: int64(len(body))})
	return framed{ws: append(hdr.Bytes(), body...), tcp: proto.AppendFrame(nil, body)}
}

// write sends one frame; a failed write closes the connection.
func (c *conn) write(f framed) {
	b := f.tcp
	if c.ws {
		b = f.ws
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.c.Write(b); err != nil {
		c.c.Close()
	}
}

// read returns the next client frame body.
func (c *conn) read() ([]byte, error) {
	if !c.ws {
		var hdr [4]byte
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return nil, err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 || n > proto.MaxClientFrame {
			return nil, proto.CodeBadFrame
		}
		b := make([]byte, n)
		_, err := io.ReadFull(c.br, b)
		return b, err
	}
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return nil, err
		}
		if h.Length > proto.MaxClientFrame || !h.Masked {
			return nil, proto.CodeBadFrame
		}
		b := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, b); err != nil {
			return nil, err
		}
		ws.Cipher(b, h.Mask, 0)
		switch h.OpCode {
		case ws.OpBinary:
			if !h.Fin {
				return nil, proto.CodeBadFrame // the bench never fragments
			}
			return b, nil
		case ws.OpClose:
			return nil, io.EOF
		case ws.OpPing:
			c.wmu.Lock()
			_ = ws.WriteFrame(c.c, ws.NewPongFrame(b))
			c.wmu.Unlock()
		}
	}
}
