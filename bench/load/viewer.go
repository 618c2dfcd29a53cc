package load

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/danmaku/danmaku/bench/stats"
	"github.com/danmaku/danmaku/room/auth"
	"github.com/danmaku/danmaku/room/proto"
)

// Protocol constants a viewer uses.
const (
	// defaultHeartbeatMs is used when welcome has no hb: the protocol's default.
	defaultHeartbeatMs = 25000
	// writeTimeout bounds one write; a server that stopped reading for this
	// long is dead to the viewer, which reconnects.
	writeTimeout = 5 * time.Second
	// maxHeld bounds the batches a viewer holds while its first join is in
	// flight (the protocol lets batches arrive before joined).
	maxHeld = 64
	sdkName = "danmaku-bench"
)

// viewer is one simulated viewer: one connection at a time, one room.
//
// A connection is made and greeted (hello, welcome, join or resume) by a
// short-lived goroutine, then handed to one of the worker's poll loops,
// which reads it: a connected viewer costs no goroutine and no buffer of
// its own.
//
// Ownership: the reader fields are touched by one party at a time — the
// connecting goroutine, then the poll loop (adopt to close), then the
// goroutine closed starts; mu guards the connection for writes and close,
// and the sender state; the atomics are read by the sweeper and the stats.
type viewer struct {
	w    *worker
	idx  int // global index in the run
	room *room
	user string
	role proto.Role
	ep   *endpoint
	src  netip.Addr
	send *senderState // nil unless it sends chat, likes or gifts

	mu        sync.Mutex
	fc        *frameConn // while connecting
	pc        *pconn     // once in a poll loop
	ws        bool       // transport of the current connection
	nextID    uint32
	cutReason string    // why the bench closed the current connection ("" = it did not)
	dropAt    time.Time // when a drop step cut it
	noReturn  bool      // the drop step said: do not reconnect

	joined    atomic.Bool   // joined or resumed on the current connection
	last      atomic.Uint64 // mirror of seqs.Last() for progress
	lastRead  atomic.Int64  // Unix ms
	lastWrite atomic.Int64  // Unix ms
	hbMs      atomic.Int64  // heartbeat of the current connection, 0 before welcome
	phaseAt   atomic.Int64  // Unix ms a join/resume was sent and not answered, 0 = none

	// reader
	hasBase       bool // the first join completed: seqs has its window
	epoch         string
	seqs          stats.SeqSet
	resumeOut     bool   // a resume is in flight on this connection
	reqID         uint32 // id of the join or resume in flight
	replayHigh    uint64 // highest seq of the latest replay: repeats up to it are overlaps
	wireDups      uint64
	overlaps      uint64
	lostOnResume  uint64 // seqs a rec=false resume said were gone
	epochBroken   bool
	steady        bool   // joined before traffic started, never disconnected since
	chatsIn       uint64 // chat entries received
	droppedIn     uint64 // sum of batch.dr
	held          [][]byte
	scratch       []int64
	inbuf         []byte // the start of a frame whose rest has not arrived
	frag          []byte // a fragmented WebSocket message being assembled
	endErr        error  // why the viewer itself ended the connection
	joinSent      time.Time
	reconnectFrom time.Time // start of the break being repaired; zero when none
	needOpen      bool      // a needed connect is not done yet
	attempt       int       // failed attempts since the last success
}

// sessionEnd says why a connection ended.
type sessionEnd struct {
	joined bool   // the session reached joined/resumed
	err    error  // what ended it
	cut    string // the bench closed it: "drop", "heartbeat", "join_timeout", "finish", "write", "dial"
}

// reconnectMsg ends a session on the server's reconnect message.
type reconnectMsg struct{ after time.Duration }

func (r *reconnectMsg) Error() string {
	return fmt.Sprintf("server asked to reconnect after %s", r.after)
}

// run connects the viewer, retrying until a connection is handed to a poll
// loop (whose close calls next) or the viewer is done. The ramp
// counted the viewer in w.wg; the viewer's last goroutine calls Done.
func (v *viewer) run(ctx context.Context) {
	for {
		end, enrolled := v.session(ctx)
		if enrolled {
			return
		}
		if !v.next(ctx, end) {
			v.w.wg.Done()
			return
		}
	}
}

// next counts how a session ended, decides whether and when to reconnect
// and waits; false when the viewer is done.
func (v *viewer) next(ctx context.Context, end sessionEnd) bool {
	w := v.w
	if w.stopping.Load() || ctx.Err() != nil {
		return false
	}
	var wait time.Duration
	var rc *reconnectMsg
	switch {
	case end.cut == "drop":
		v.mu.Lock()
		gone, at := v.noReturn, v.dropAt
		v.mu.Unlock()
		if gone {
			w.counters.reason("viewers_left")
			return false
		}
		v.breakAt(at)
		v.attempt = 0
		wait = w.backoff(0)
	case errors.As(end.err, &rc):
		w.counters.inc(ServerReconnects)
		if end.joined {
			v.breakAt(time.Now())
		}
		wait = rc.after
	case end.joined:
		w.counters.inc(Disconnects)
		w.counters.reason("disconnect." + reasonOf(end))
		v.breakAt(time.Now())
		v.attempt = 0
		wait = w.backoff(0)
	default: // the attempt failed before joined/resumed
		w.counters.inc(DialFailures)
		w.counters.reason("fail." + reasonOf(end))
		v.attempt++
		wait = w.backoff(v.attempt)
	}
	return sleepCtx(ctx, wait)
}

// breakAt starts a break of a joined viewer: it needs a reconnect, which is
// timed from at.
func (v *viewer) breakAt(at time.Time) {
	v.steady = false
	v.need()
	if v.reconnectFrom.IsZero() {
		v.reconnectFrom = at
	}
}

// need counts a connect the viewer needs (its first, or one after a
// break); setJoined counts it done.
func (v *viewer) need() {
	if !v.needOpen {
		v.needOpen = true
		v.w.counters.inc(ConnectsNeeded)
	}
}

func reasonOf(e sessionEnd) string {
	if e.cut != "" {
		return e.cut
	}
	var c proto.Code
	switch {
	case errors.As(e.err, &c):
		return string(c)
	case errors.Is(e.err, errServerClosed):
		return "ws_close"
	case errors.Is(e.err, context.DeadlineExceeded):
		return "timeout"
	}
	return "io"
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// session makes one connection, greets the server and hands the connection
// to a poll loop (true); false with why when that failed.
func (v *viewer) session(ctx context.Context) (sessionEnd, bool) {
	w := v.w
	select {
	case w.dialSem <- struct{}{}:
	case <-ctx.Done():
		return sessionEnd{err: ctx.Err()}, false
	}
	t0 := time.Now()
	w.counters.inc(Dials)
	fc, err := v.ep.dial(ctx, v.src, w.dialTimeout)
	if err != nil {
		<-w.dialSem
		return sessionEnd{err: err, cut: "dial"}, false
	}
	fc.onPingWS = func(p []byte) { v.pongWS(p) }
	v.mu.Lock()
	v.fc, v.cutReason, v.ws = fc, "", fc.ws
	v.mu.Unlock()
	w.counters.add(Connected, 1)

	welcome, err := v.handshake(fc, t0.Add(w.dialTimeout))
	<-w.dialSem
	if err != nil {
		return v.failed(fc, err), false
	}
	w.connectH.Record(v.idx, []int64{int64(time.Since(t0) / time.Microsecond)})
	hb := int64(welcome.Heartbeat)
	if hb <= 0 {
		hb = defaultHeartbeatMs
	}
	v.lastRead.Store(time.Now().UnixMilli())
	v.hbMs.Store(hb)
	if err := v.enter(); err != nil {
		return v.failed(fc, err), false
	}
	// Frames the handshake's reader already holds are read here; a partial
	// one waits in inbuf for the rest, which the poll loop reads.
	fc.release() // what welcome took
	if n := fc.br.Buffered(); n > 0 {
		b, _ := fc.br.Peek(n)
		used, err := v.consume(b)
		v.inbuf = append(v.inbuf[:0], b[used:]...)
		if err != nil {
			return v.failed(fc, err), false
		}
	}
	if err := w.pollers.adopt(fc.c, v); err != nil { // closes fc.c; the loop has a dup
		return v.failed(fc, fmt.Errorf("hand over to a poll loop: %w", err)), false
	}
	return sessionEnd{}, true
}

// failed ends a session that never reached a poll loop.
func (v *viewer) failed(fc *frameConn, err error) sessionEnd {
	v.mu.Lock()
	end := sessionEnd{err: err, cut: v.cutReason, joined: v.joined.Load()}
	v.fc = nil
	v.mu.Unlock()
	fc.release()
	_ = fc.Close()
	v.connectionGone()
	return end
}

// opened makes pc the viewer's connection; false when the bench cut it
// during the hand-over.
func (v *viewer) opened(pc *pconn) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cutReason != "" {
		return false
	}
	v.pc, v.fc = pc, nil
	return true
}

// closed is called by the poll loop once it closed the connection: count
// the end and start the next connection (or the viewer's end) in a
// goroutine of its own.
func (v *viewer) closed(err error) {
	v.mu.Lock()
	end := sessionEnd{joined: v.joined.Load(), err: cmp.Or(v.endErr, err), cut: v.cutReason}
	v.mu.Unlock()
	v.endErr = nil
	v.connectionGone()
	ctx := v.w.runCtx
	go func() {
		if v.next(ctx, end) {
			v.run(ctx)
		} else {
			v.w.wg.Done()
		}
	}()
}

// connectionGone forgets what was in flight on a connection that ended.
func (v *viewer) connectionGone() {
	w := v.w
	if v.send != nil {
		v.mu.Lock()
		v.send.connectionLost(w)
		v.mu.Unlock()
	}
	w.counters.add(Connected, -1)
	if v.joined.Swap(false) {
		w.counters.add(Joined, -1)
	}
	v.hbMs.Store(0)
	v.phaseAt.Store(0)
	v.resumeOut = false
	v.held = nil
	v.inbuf = v.inbuf[:0]
	if cap(v.inbuf) > readBufSize {
		v.inbuf = nil // a big frame grew it: give it back
	}
	v.frag = nil
}

// traffic takes bytes the poll loop read: it handles every complete frame
// and keeps a partial one for the next read. An error closes the connection.
//
// Hot path: runs for every frame every viewer reads. It must not allocate
// (inbuf grows only for a frame split across reads).
func (v *viewer) traffic(data []byte) error {
	v.lastRead.Store(time.Now().UnixMilli())
	if len(v.inbuf) > 0 {
		v.inbuf = append(v.inbuf, data...)
		data = v.inbuf
	}
	used, err := v.consume(data)
	rest := data[used:]
	switch {
	case len(rest) == 0:
		v.inbuf = v.inbuf[:0]
	case len(v.inbuf) > 0: // data is inbuf: move the rest to its front
		v.inbuf = v.inbuf[:copy(v.inbuf, rest)]
	default:
		v.inbuf = append(v.inbuf[:0], rest...)
	}
	if err != nil {
		v.endErr = err
	}
	return err
}

// consume reads the complete frames at the start of b and returns the bytes
// they took.
func (v *viewer) consume(b []byte) (int, error) {
	used := 0
	for {
		op, fin, body, n, err := nextFrame(b[used:], v.ws)
		if err != nil || n == 0 {
			return used, err
		}
		used += n
		switch op {
		case ws.OpBinary, ws.OpContinuation:
			if op == ws.OpBinary && fin && v.frag == nil {
				if err := v.handle(body); err != nil {
					return used, err
				}
				continue
			}
			if (op == ws.OpBinary) == (v.frag != nil) {
				return used, fmt.Errorf("websocket fragments out of order: %w", proto.CodeBadFrame)
			}
			if len(v.frag)+len(body) > proto.MaxServerFrame {
				return used, fmt.Errorf("fragmented websocket message: %w", proto.CodeTooLarge)
			}
			v.frag = append(v.frag, body...)
			if fin {
				msg := v.frag
				v.frag = nil
				if err := v.handle(msg); err != nil {
					return used, err
				}
			}
		case ws.OpPing:
			v.pongWS(body)
		case ws.OpPong:
		case ws.OpClose:
			return used, errServerClosed
		default:
			return used, fmt.Errorf("websocket opcode %d: %w", op, proto.CodeBadFrame)
		}
	}
}

// handshake sends hello and waits for welcome.
func (v *viewer) handshake(fc *frameConn, deadline time.Time) (*proto.Welcome, error) {
	tok, err := auth.Sign([]byte(v.w.plan.Secret), v.user, "", v.role, nil, v.w.tokenTTL)
	if err != nil {
		return nil, fmt.Errorf("mint token: %w", err)
	}
	v.mu.Lock()
	hello := &proto.Hello{ID: v.id(), Version: proto.Version, SDK: sdkName, SDKVersion: "1", Platform: "bench", Token: tok}
	err = fc.writeMsg(hello, deadline)
	v.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("write hello: %w", err)
	}
	v.lastWrite.Store(time.Now().UnixMilli())
	_ = fc.c.SetReadDeadline(deadline)
	defer fc.c.SetReadDeadline(time.Time{})
	for {
		body, err := fc.Next()
		if err != nil {
			return nil, fmt.Errorf("read welcome: %w", err)
		}
		m, err := v.w.decode(body)
		if err != nil {
			return nil, fmt.Errorf("decode welcome: %w", err)
		}
		switch m := m.(type) {
		case *proto.Welcome:
			return m, nil
		case *proto.Error:
			return nil, fmt.Errorf("hello refused: %s: %w", m.Message, m.Code)
		}
	}
}

// id returns the next request id; mu is held.
func (v *viewer) id() uint32 {
	v.nextID++
	return v.nextID
}

// enter sends join (first time) or resume (after a break).
func (v *viewer) enter() error {
	if v.hasBase {
		return v.sendResume()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.reqID = v.id()
	v.joinSent = time.Now()
	v.phaseAt.Store(v.joinSent.UnixMilli())
	return v.writeLocked(&proto.Join{ID: v.reqID, Room: v.room.id})
}

// sendResume asks for the entries after the last contiguous seq.
func (v *viewer) sendResume() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.reqID = v.id()
	v.resumeOut = true
	v.phaseAt.Store(time.Now().UnixMilli())
	return v.writeLocked(&proto.Resume{ID: v.reqID, Room: v.room.id, Epoch: v.epoch, Seq: v.seqs.Last()})
}

// writeLocked writes m on the current connection; mu is held. In a poll
// loop the socket is non-blocking (a frame that does not fit is an error);
// while connecting it is written with a deadline. A failed write closes the
// connection (the viewer then reconnects).
func (v *viewer) writeLocked(m proto.Message) error {
	now := time.Now()
	var err error
	switch {
	case v.pc != nil:
		err = writeFrame(v.pc, v.ws, m)
	case v.fc != nil:
		err = v.fc.writeMsg(m, now.Add(writeTimeout))
	default:
		return errNotConnected
	}
	if err != nil {
		v.cutLocked("write")
		return err
	}
	v.lastWrite.Store(now.UnixMilli())
	return nil
}

var errNotConnected = errors.New("not connected")

// pongWS answers a WebSocket ping.
func (v *viewer) pongWS(p []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.pc != nil:
		b, off := appendWSFrame(nil, ws.OpPong, func(w *proto.Writer) { w.B = append(w.B, p...) })
		_ = v.pc.write(b[off:])
	case v.fc != nil:
		_ = v.fc.writeControl(ws.OpPong, p, time.Now().Add(writeTimeout))
	}
}

// cut closes the current connection for reason; the reader sees the error.
func (v *viewer) cut(reason string) {
	v.mu.Lock()
	v.cutLocked(reason)
	v.mu.Unlock()
}

func (v *viewer) cutLocked(reason string) {
	if v.cutReason != "" {
		return
	}
	switch {
	case v.pc != nil:
		v.cutReason = reason
		v.pc.shutdown()
	case v.fc != nil:
		v.cutReason = reason
		_ = v.fc.Close()
	}
}

// drop is a drop step cutting this viewer's connection.
func (v *viewer) drop(reconnect bool) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if (v.fc == nil && v.pc == nil) || v.cutReason != "" {
		return false
	}
	v.dropAt, v.noReturn = time.Now(), !reconnect
	v.cutLocked("drop")
	return true
}

// ping sends a heartbeat if the connection is open.
func (v *viewer) ping() {
	v.mu.Lock()
	if v.fc != nil || v.pc != nil {
		_ = v.writeLocked(&proto.Ping{ID: v.id()})
	}
	v.mu.Unlock()
}

// backoff is the SDK's reconnect delay: random(0, min(cap, base·2^attempt)).
func (w *worker) backoff(attempt int) time.Duration {
	d := w.reconnectCap
	if attempt < 30 {
		d = min(w.reconnectCap, w.reconnectBase<<attempt)
	}
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}
