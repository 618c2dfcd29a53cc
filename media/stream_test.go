package media

import (
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
)

// sent is one packet a fake binding saw.
type sent struct {
	seq    uint16
	ts     uint32
	marker bool
	nal    byte // first payload byte
}

// captureWriter records what a viewer's track writes (a stand-in for the
// SRTP stream pion binds after negotiation).
type captureWriter struct {
	mu      sync.Mutex
	keep    bool
	packets []sent
}

func (c *captureWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if c.keep {
		c.mu.Lock()
		c.packets = append(c.packets, sent{h.SequenceNumber, h.Timestamp, h.Marker, payload[0]})
		c.mu.Unlock()
	}
	return len(payload), nil
}

func (c *captureWriter) Write(b []byte) (int, error) { return len(b), nil }

func (c *captureWriter) take() []sent {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.packets
	c.packets = nil
	return p
}

// fakeBinding is a webrtc.TrackLocalContext binding a track to a writer.
type fakeBinding struct{ w *captureWriter }

func (b fakeBinding) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{
		{RTPCodecCapability: h264Capability, PayloadType: 102},
		{RTPCodecCapability: opusCapability, PayloadType: 111},
	}
}
func (b fakeBinding) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (b fakeBinding) SSRC() webrtc.SSRC                                      { return 1234 }
func (b fakeBinding) WriteStream() webrtc.TrackLocalWriter                   { return b.w }
func (b fakeBinding) ID() string                                             { return "fake" }
func (b fakeBinding) RTCPReader() interceptor.RTCPReader                     { return nil }

// unitRelay is a relay with no network, for stream unit tests.
func unitRelay(t testing.TB) *Relay {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Relay{cfg: DefaultConfig(), log: slog.New(slog.NewTextHandler(io.Discard, nil)), m: m}
}

// boundViewer is a viewer whose video and audio tracks write to captures.
func boundViewer(t testing.TB, keep bool) (*viewer, *captureWriter, *captureWriter) {
	vw, aw := &captureWriter{keep: keep}, &captureWriter{keep: keep}
	v := &viewer{}
	var err error
	if v.video, err = webrtc.NewTrackLocalStaticRTP(h264Capability, "video", "s"); err != nil {
		t.Fatal(err)
	}
	if v.audio, err = webrtc.NewTrackLocalStaticRTP(opusCapability, "audio", "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.video.Bind(fakeBinding{vw}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.audio.Bind(fakeBinding{aw}); err != nil {
		t.Fatal(err)
	}
	return v, vw, aw
}

func addViewer(s *stream, v *viewer) {
	vs := append(*s.viewers.Load(), v)
	s.viewers.Store(&vs)
}

func checkContiguous(t *testing.T, what string, got []sent, from uint16) {
	t.Helper()
	for i, p := range got {
		if p.seq != from+uint16(i) {
			t.Fatalf("%s: packet %d has seq %d, want %d (%+v)", what, i, p.seq, from+uint16(i), got)
		}
	}
}

// RTMP fan-out: a viewer starts at a keyframe; a late joiner gets the
// cached keyframe stamped "now", then nothing until the next keyframe;
// every viewer's sequence numbers stay contiguous.
func TestWriteVideoAUKeyframes(t *testing.T) {
	s := newStream(unitRelay(t), "r", "u", ProtocolRTMP, true)
	z := &h264Packetizer{seq: 65530, base: 1000} // wraps during the test
	key := [][]byte{{0x67, 1, 2}, {0x68, 3}, fill(0x65, 3000)}
	delta := [][]byte{fill(0x41, 200)}
	frame := 0
	write := func(au [][]byte) []*rtp.Packet {
		pkts, isKey := z.packetize(time.Duration(frame)*40*time.Millisecond, au)
		frame++
		s.writeVideoAU(pkts, isKey)
		return pkts
	}

	early, ew, _ := boundViewer(t, true)
	addViewer(s, early)
	s.needKeyframe(early) // as activate does: nothing is cached yet
	write(delta)
	if got := ew.take(); len(got) != 0 {
		t.Fatalf("a viewer got %d packets before any keyframe", len(got))
	}
	kp := write(key)
	got := ew.take()
	if len(got) != len(kp) || got[0].nal&0x1f != naluSTAPA || !got[len(got)-1].marker {
		t.Fatalf("keyframe: got %+v", got)
	}
	checkContiguous(t, "early viewer keyframe", got, 0)
	write(delta)
	checkContiguous(t, "early viewer delta", ew.take(), uint16(len(kp)))

	late, lw, _ := boundViewer(t, true)
	addViewer(s, late)
	s.needKeyframe(late)
	dp := write(delta)
	got = lw.take()
	if len(got) != len(kp) || got[0].nal&0x1f != naluSTAPA {
		t.Fatalf("late viewer got %d packets, want the %d of the cached keyframe", len(got), len(kp))
	}
	checkContiguous(t, "cached keyframe", got, 0)
	for _, p := range got {
		if p.ts != dp[0].Timestamp {
			t.Fatalf("cached keyframe stamped %d, want the current frame's %d", p.ts, dp[0].Timestamp)
		}
	}
	write(delta)
	if got := lw.take(); len(got) != 0 {
		t.Fatalf("late viewer got %d delta packets before the next keyframe", len(got))
	}
	kp2 := write(key)
	checkContiguous(t, "late viewer next keyframe", lw.take(), uint16(len(kp)))
	ew.take()

	// A PLI from the early viewer re-serves the cache, throttled.
	early.lastCached.Store(0)
	s.needKeyframe(early)
	s.needKeyframe(early) // within minKeyframeInterval: ignored
	write(delta)
	if got := ew.take(); len(got) != len(kp2) {
		t.Fatalf("after a PLI the viewer got %d packets, want the cached keyframe's %d", len(got), len(kp2))
	}
}

// WHIP fan-out: the source's loss shows through (so NACKs name real
// packets), late retransmissions do not move the viewer back, and each
// viewer starts at a keyframe.
func TestForwardVideoSequence(t *testing.T) {
	s := newStream(unitRelay(t), "r", "u", ProtocolWHIP, false)
	s.pub = &rtmpPublisher{} // requestKeyframe is a no-op
	v, w, aw := boundViewer(t, true)
	addViewer(s, v)
	pkt := func(seq uint16, payload ...byte) *rtp.Packet {
		return &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 10}, Payload: payload}
	}
	s.forwardVideo(pkt(100, 0x41, 1))       // delta before any keyframe: skipped
	s.forwardVideo(pkt(101, 0x7c, 0x85, 1)) // FU-A start of an IDR
	s.forwardVideo(pkt(102, 0x7c, 0x45, 1)) // FU-A end
	s.forwardVideo(pkt(105, 0x41, 1))       // 103, 104 lost upstream
	s.forwardVideo(pkt(104, 0x41, 1))       // late retransmission
	s.forwardVideo(pkt(106, 0x41, 1))
	got := w.take()
	want := []uint16{0, 1, 4, 3, 5}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i, p := range got {
		if p.seq != want[i] {
			t.Fatalf("seqs %+v, want %v", got, want)
		}
	}
	s.writeAudio(pkt(7, 0xfc))
	s.writeAudio(pkt(8, 0xfc))
	checkContiguous(t, "audio", aw.take(), 0)
}

func TestStreamInfoText(t *testing.T) {
	for _, tc := range []struct {
		info          StreamInfo
		media, notice string
	}{
		{StreamInfo{Protocol: "whip", Video: "h264", Audio: "opus"}, "h264+opus", "Stream started (WHIP, h264+opus)"},
		{StreamInfo{Protocol: "rtmp", Video: "h264", DroppedAudio: "aac"}, "h264",
			"Stream started (RTMP, h264): video only, AAC audio is not relayed to WebRTC"},
		{StreamInfo{Protocol: "whip", Audio: "opus"}, "opus", "Stream started (WHIP, opus)"},
	} {
		if got := tc.info.Media(); got != tc.media {
			t.Errorf("Media() = %q, want %q", got, tc.media)
		}
		if got := tc.info.Notice(); got != tc.notice {
			t.Errorf("Notice() = %q, want %q", got, tc.notice)
		}
	}
}

// countingPublisher counts keyframe requests.
type countingPublisher struct{ n atomic.Int64 }

func (p *countingPublisher) requestKeyframe() { p.n.Add(1) }
func (p *countingPublisher) stop(string)      {}

// Viewers joining a WHIP stream together cost the publisher one PLI now and
// one when the interval ends, never one each, and none is lost.
func TestPLICoalescing(t *testing.T) {
	s := newStream(unitRelay(t), "r", "u", ProtocolWHIP, false)
	p := &countingPublisher{}
	s.pub = p
	for range 5 {
		s.needKeyframe(&viewer{})
	}
	if got := p.n.Load(); got != 1 {
		t.Fatalf("%d PLIs at once, want 1", got)
	}
	eventually(t, 5*time.Second, "the coalesced PLI", func() bool { return p.n.Load() == 2 })
	s.pliMu.Lock()
	pending := s.pliPending
	s.pliMu.Unlock()
	if pending {
		t.Error("a PLI is still pending")
	}
}
