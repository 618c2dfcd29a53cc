package media

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"
	pionmedia "github.com/pion/webrtc/v3/pkg/media"
)

// Synthetic H.264 access units (Annex-B). The relay never decodes, so
// these only need the right NAL types: SPS+PPS+IDR for a keyframe, a non-IDR
// slice otherwise, big enough to be fragmented (FU-A).
var (
	fakeKeyframe = annexB([]byte{0x67, 0x42, 0xe0, 0x1f, 0xda, 0x01}, []byte{0x68, 0xce, 0x3c, 0x80}, fill(0x65, 3000))
	fakeDelta    = annexB(fill(0x41, 800))
)

func fill(header byte, n int) []byte {
	b := make([]byte, n)
	b[0] = header
	for i := 1; i < n; i++ {
		b[i] = byte(i%250) + 1 // no 0 0 1 start code inside
	}
	return b
}

func annexB(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = appendNALU(b, n)
	}
	return b
}

// whipPublisherClient is a pion WHIP publisher sending synthetic H.264 at
// 25 fps and Opus at 50 packets/s. It sends a keyframe first and then only
// when asked by a PLI, so viewers that see a keyframe prove the PLI path.
type whipPublisherClient struct {
	pc       *webrtc.PeerConnection
	location string
	plis     atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
}

func publishWHIP(t testing.TB, api *webrtc.API, base, room, tok string) (*whipPublisherClient, int, string) {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	video, err := webrtc.NewTrackLocalStaticSample(h264Capability, "video", "pub")
	if err != nil {
		t.Fatal(err)
	}
	audio, err := webrtc.NewTrackLocalStaticSample(opusCapability, "audio", "pub")
	if err != nil {
		t.Fatal(err)
	}
	p := &whipPublisherClient{pc: pc, stop: make(chan struct{})}
	var senders []*webrtc.RTPSender
	for _, tr := range []webrtc.TrackLocal{video, audio} {
		tx, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		senders = append(senders, tx.Sender())
	}
	loc, status, body := negotiate(t, pc, base+"/api/v1/rooms/"+room+"/whip", tok)
	if loc == "" {
		_ = pc.Close()
		return nil, status, body
	}
	p.location = base + loc
	wantKey := atomic.Bool{}
	wantKey.Store(true)
	for _, s := range senders {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				pkts, _, err := s.ReadRTCP()
				if err != nil {
					return
				}
				for _, pk := range pkts {
					if _, ok := pk.(*rtcp.PictureLossIndication); ok {
						p.plis.Add(1)
						wantKey.Store(true)
					}
				}
			}
		}()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		opus := make([]byte, 80)
		for n := 0; ; n++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			_ = audio.WriteSample(pionmedia.Sample{Data: opus, Duration: 20 * time.Millisecond})
			if n%2 == 1 {
				continue
			}
			au := fakeDelta
			if wantKey.Swap(false) {
				au = fakeKeyframe
			}
			_ = video.WriteSample(pionmedia.Sample{Data: au, Duration: 40 * time.Millisecond})
		}
	}()
	t.Cleanup(p.close)
	return p, status, body
}

// close stops sending and closes the peer connection without DELETE (an
// abrupt disconnect, as far as the relay can tell).
func (p *whipPublisherClient) close() {
	p.once.Do(func() {
		close(p.stop)
		_ = p.pc.Close()
		p.wg.Wait()
	})
}
