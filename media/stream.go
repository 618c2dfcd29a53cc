package media

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/danmaku/danmaku/room/proto"
)

// minKeyframeInterval throttles keyframe requests: a WHIP publisher gets at
// most one PLI per interval per stream however many viewers join or lose a
// picture (requests in between are coalesced into one at the interval's
// end; each keyframe costs the encoder several times a P frame's bits), and
// an RTMP viewer is re-served the cached keyframe at most that often.
const minKeyframeInterval = 500 * time.Millisecond

// publisher is a stream's source: an RTMP connection or a WHIP session.
type publisher interface {
	// requestKeyframe asks the source for a keyframe (WHIP: an RTCP PLI).
	requestKeyframe()
	// stop disconnects the source (reason: one of the End* words). It must
	// not block for long.
	stop(reason string)
}

// stream is one room's live stream: a source and its viewers. The source's
// goroutines write packets through writeVideoAU / forwardVideo / writeAudio;
// viewers are a copy-on-write slice so that path takes no lock.
type stream struct {
	r    *Relay
	room string
	user string
	pub  publisher
	// cached is true for RTMP: a viewer needing a picture is sent the last
	// keyframe from the cache, since the source cannot be asked for one.
	cached bool

	// info is complete before live is set and read-only after.
	info StreamInfo
	live atomic.Bool

	// life orders the two notifier events: goLive and end hold it across the
	// check and the enqueue, so StreamEnded never precedes StreamStarted.
	life  sync.Mutex
	ended bool
	// ending makes end run once (a flag, not a sync.Once: end stops the
	// publisher, whose own close path calls end again); done is closed when
	// that run finished.
	ending atomic.Bool
	done   chan struct{}

	vmu      sync.Mutex
	admitted int  // viewers admitted (connecting or active), ≤ MaxViewersPerStream
	closing  bool // the stream ended: no more viewers
	viewers  atomic.Pointer[[]*viewer]

	pliMu      sync.Mutex
	lastPLI    time.Time // last keyframe request to the source
	pliPending bool      // a request is scheduled for the end of the interval

	// keyframe is the last keyframe's packets (RTMP only). Owned by the
	// video goroutine; the packets are never modified after packetizing.
	keyframe []*rtp.Packet
}

func newStream(r *Relay, room, user, protocol string, cached bool) *stream {
	s := &stream{r: r, room: room, user: user, cached: cached, done: make(chan struct{})}
	s.info = StreamInfo{Room: room, Protocol: protocol, User: user}
	s.viewers.Store(&[]*viewer{})
	return s
}

// snapshot returns the stream's info with the current viewer count.
func (s *stream) snapshot() StreamInfo {
	i := s.info
	i.Viewers = len(*s.viewers.Load())
	return i
}

// goLive publishes the stream: Stream and Streams list it and the notifier
// hears StreamStarted. It is false when the stream already ended.
func (s *stream) goLive() bool {
	s.life.Lock()
	defer s.life.Unlock()
	if s.ended {
		return false
	}
	s.info.Started = time.Now()
	s.live.Store(true)
	s.r.m.streams.WithLabelValues(s.info.Protocol).Inc()
	s.r.log.Info("stream live", "room", s.room, "protocol", s.info.Protocol, "user", s.user, "media", s.info.Media())
	s.r.notify(event{room: s.room, started: true, info: s.info})
	return true
}

// end stops the stream once: it leaves the registry, the source is
// disconnected, the notifier hears StreamEnded (if it was live) and every
// viewer is closed. Later calls return at once; wait on done to know it
// finished.
func (s *stream) end(reason string) {
	if !s.ending.CompareAndSwap(false, true) {
		return
	}
	defer close(s.done)
	s.r.unregister(s)
	s.pub.stop(reason)
	s.life.Lock()
	s.ended = true
	if s.live.Load() {
		s.r.m.streams.WithLabelValues(s.info.Protocol).Dec()
		s.r.log.Info("stream ended", "room", s.room, "reason", reason)
		s.r.notify(event{room: s.room, reason: reason})
	}
	s.life.Unlock()
	s.vmu.Lock()
	s.closing = true
	vs := *s.viewers.Load()
	s.viewers.Store(&[]*viewer{})
	s.vmu.Unlock()
	for _, v := range vs {
		s.r.m.viewers.Dec()
		v.sess.close(closeStreamEnded)
	}
}

// admit reserves a viewer slot, or says why it cannot.
func (s *stream) admit() *httpError {
	s.vmu.Lock()
	defer s.vmu.Unlock()
	switch {
	case s.closing:
		return refusal(http.StatusNotFound, proto.CodeUnavailable, refuseOffline, "the stream in room %q just ended", s.room)
	case s.admitted >= s.r.cfg.MaxViewersPerStream:
		return refusal(http.StatusServiceUnavailable, proto.CodeServerFull, refuseServerFull,
			"the stream has its maximum of %d viewers", s.r.cfg.MaxViewersPerStream)
	}
	s.admitted++
	return nil
}

// activate starts sending to v (its SRTP is ready). False when the stream
// ended meanwhile.
func (s *stream) activate(v *viewer) bool {
	s.vmu.Lock()
	if s.closing {
		s.vmu.Unlock()
		return false
	}
	old := *s.viewers.Load()
	vs := append(make([]*viewer, 0, len(old)+1), old...)
	vs = append(vs, v)
	s.viewers.Store(&vs)
	s.vmu.Unlock()
	s.r.m.viewers.Inc()
	s.needKeyframe(v)
	return true
}

// release frees v's slot and stops sending to it.
func (s *stream) release(v *viewer) {
	s.vmu.Lock()
	defer s.vmu.Unlock()
	if s.closing {
		return // end already dropped every viewer
	}
	s.admitted--
	old := *s.viewers.Load()
	for i, x := range old {
		if x == v {
			vs := make([]*viewer, 0, len(old)-1)
			vs = append(append(vs, old[:i]...), old[i+1:]...)
			s.viewers.Store(&vs)
			s.r.m.viewers.Dec()
			return
		}
	}
}

// needKeyframe gets v a picture as soon as possible: from the cache (RTMP)
// or by asking the publisher (WHIP). Requests within minKeyframeInterval of
// the last PLI are coalesced into one sent when the interval ends, so every
// viewer that asked gets a keyframe and the encoder makes at most two a
// second.
func (s *stream) needKeyframe(v *viewer) {
	if s.cached {
		now := time.Now().UnixNano()
		if last := v.lastCached.Load(); last != 0 && now-last < int64(minKeyframeInterval) {
			s.r.m.keyframeReqs.WithLabelValues("throttled").Inc() // it was just served one
			return
		}
		v.lastCached.Store(now)
		v.wantCached.Store(true)
		return
	}
	s.pliMu.Lock()
	wait := time.Until(s.lastPLI.Add(minKeyframeInterval))
	switch {
	case s.pliPending:
		s.pliMu.Unlock()
		s.r.m.keyframeReqs.WithLabelValues("coalesced").Inc()
	case wait > 0:
		s.pliPending = true
		s.pliMu.Unlock()
		s.r.m.keyframeReqs.WithLabelValues("coalesced").Inc()
		time.AfterFunc(wait, s.sendPLI)
	default:
		s.pliMu.Unlock()
		s.sendPLI()
	}
}

// sendPLI asks the publisher for a keyframe now.
func (s *stream) sendPLI() {
	s.pliMu.Lock()
	s.pliPending = false
	s.lastPLI = time.Now()
	s.pliMu.Unlock()
	if s.ending.Load() {
		return
	}
	s.r.m.keyframeReqs.WithLabelValues("pli").Inc()
	s.pub.requestKeyframe()
}

// viewer is one WHEP session's sending side.
type viewer struct {
	sess         *session
	video, audio *webrtc.TrackLocalStaticRTP // nil when the stream has no such track
	// wantCached asks the video goroutine to send the cached keyframe (RTMP).
	wantCached atomic.Bool
	lastCached atomic.Int64 // unix ns of the last wantCached request
	// Each is owned by the goroutine writing that kind of packet.
	vseq, aseq seqState
}

// seqState maps the source's sequence numbers onto the viewer's own, which
// stay contiguous across the packets skipped for it (before its first
// keyframe, around a cached keyframe) while the source's own gaps (loss)
// pass through, so the viewer's NACKs stay meaningful.
type seqState struct {
	on     bool   // forwarding; false while waiting for a keyframe
	offset uint16 // viewer seq = source seq - offset
	next   uint16 // the viewer's next sequence number
}

// send writes p to t as the viewer's packet: its own sequence number, and no
// header extensions or padding (their ids belong to the source's session).
// It copies the header on the stack and shares the payload.
func send(t *webrtc.TrackLocalStaticRTP, p *rtp.Packet, seq uint16, ts uint32) error {
	out := rtp.Packet{Header: rtp.Header{
		Version:        2,
		Marker:         p.Marker,
		SequenceNumber: seq,
		Timestamp:      ts,
		CSRC:           p.CSRC,
	}, Payload: p.Payload}
	return t.WriteRTP(&out)
}

// writeVideoAU sends the packets of one RTMP access unit to every viewer,
// first sending the cached keyframe to viewers that asked for a picture, and
// then caches the access unit if it is a keyframe.
//
// Hot path (once per video frame, on the RTMP connection's goroutine): it
// must not lock, allocate per viewer, or wait for a viewer; pion's
// WriteRTP does the per-viewer SRTP work without blocking on the network.
func (s *stream) writeVideoAU(pkts []*rtp.Packet, key bool) {
	var sent, bytes, skipped, failed int
	for _, v := range *s.viewers.Load() {
		if v.video == nil {
			continue
		}
		st := &v.vseq
		if v.wantCached.Load() {
			v.wantCached.Store(false)
			if !key && s.keyframe != nil {
				for _, p := range s.keyframe {
					// Stamped "now" so the jitter buffer does not hold it back.
					if send(v.video, p, st.next, pkts[0].Timestamp) != nil {
						failed++
					}
					st.next++
					sent++
					bytes += len(p.Payload)
				}
				st.on = false // then wait for the next keyframe: the P frames in between reference frames it lacks
				s.r.m.keyframeReqs.WithLabelValues("cached").Inc()
			}
		}
		if !st.on {
			if !key {
				skipped += len(pkts)
				continue
			}
			st.on, st.offset = true, pkts[0].SequenceNumber-st.next
		}
		for _, p := range pkts {
			if send(v.video, p, p.SequenceNumber-st.offset, p.Timestamp) != nil {
				failed++
			}
			sent++
			bytes += len(p.Payload)
		}
		st.next = pkts[len(pkts)-1].SequenceNumber - st.offset + 1
	}
	if key {
		s.keyframe = pkts
		s.r.m.keyframes.Inc()
	}
	s.r.m.countOut(sent, bytes, skipped, failed)
}

// forwardVideo sends one WHIP video packet to every viewer, starting each
// viewer at a keyframe.
//
// Hot path (once per packet, on the publisher's video track goroutine): no
// lock, no per-viewer allocation, no waiting for a viewer.
func (s *stream) forwardVideo(p *rtp.Packet) {
	key := h264KeyframeStart(p.Payload)
	if key {
		s.r.m.keyframes.Inc()
	}
	var sent, bytes, skipped, failed int
	for _, v := range *s.viewers.Load() {
		if v.video == nil {
			continue
		}
		st := &v.vseq
		if !st.on {
			if !key {
				skipped++
				continue
			}
			st.on, st.offset = true, p.SequenceNumber-st.next
		}
		seq := p.SequenceNumber - st.offset
		if send(v.video, p, seq, p.Timestamp) != nil {
			failed++
		}
		if int16(seq-st.next) >= 0 { // not a late (retransmitted) packet
			st.next = seq + 1
		}
		sent++
		bytes += len(p.Payload)
	}
	s.r.m.countOut(sent, bytes, skipped, failed)
}

// writeAudio sends one audio packet to every viewer (no keyframes: each
// viewer starts at the packet after it joined).
//
// Hot path, like forwardVideo.
func (s *stream) writeAudio(p *rtp.Packet) {
	var sent, bytes, failed int
	for _, v := range *s.viewers.Load() {
		if v.audio == nil {
			continue
		}
		st := &v.aseq
		if !st.on {
			st.on, st.offset = true, p.SequenceNumber-st.next
		}
		seq := p.SequenceNumber - st.offset
		if send(v.audio, p, seq, p.Timestamp) != nil {
			failed++
		}
		if int16(seq-st.next) >= 0 {
			st.next = seq + 1
		}
		sent++
		bytes += len(p.Payload)
	}
	s.r.m.countOut(sent, bytes, 0, failed)
}
