package media

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/danmaku/danmaku/room/auth"
	"github.com/danmaku/danmaku/room/proto"
)

var testSecret = []byte("media-test-secret")

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recorder is a RoomNotifier that keeps what it heard.
type recorder struct {
	mu     sync.Mutex
	events []string // "started room media" / "ended room reason"
	infos  []StreamInfo
}

func (n *recorder) StreamStarted(room string, info StreamInfo) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.events = append(n.events, "started "+room+" "+info.Media())
	n.infos = append(n.infos, info)
}

func (n *recorder) StreamEnded(room, reason string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.events = append(n.events, "ended "+room+" "+reason)
}

func (n *recorder) list() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.events...)
}

func (n *recorder) has(ev string) bool {
	for _, e := range n.list() {
		if e == ev {
			return true
		}
	}
	return false
}

func (n *recorder) lastInfo() StreamInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.infos) == 0 {
		return StreamInfo{}
	}
	return n.infos[len(n.infos)-1]
}

// testConfig is a loopback-only relay config with short ICE timeouts.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.RTMPAddr = "127.0.0.1:0"
	cfg.Interfaces = []string{"lo"}
	cfg.Loopback = true
	cfg.ConnectTimeout = 10 * time.Second
	cfg.ICEDisconnectedTimeout = time.Second
	cfg.ICEFailedTimeout = time.Second
	return cfg
}

type testRelay struct {
	*Relay
	srv   *httptest.Server
	notes *recorder
	reg   *prometheus.Registry
}

// startRelay starts a relay (RTMP on a random port) behind an httptest
// server; both stop at cleanup.
func startRelay(t testing.TB, mutate func(*Config)) *testRelay {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	notes := &recorder{}
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("MEDIA_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r, err := New(cfg, testSecret, notes, WithLogger(log), WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(func() {
		srv.Close()
		_ = r.Close()
	})
	return &testRelay{Relay: r, srv: srv, notes: notes, reg: reg}
}

func token(t testing.TB, user string, role proto.Role, rooms ...string) string {
	t.Helper()
	tk, err := auth.Sign(testSecret, user, user, role, rooms, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// clientAPI is a pion API for test clients: default codecs and
// interceptors, loopback candidates only.
func clientAPI(t testing.TB) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(n string) bool { return n == "lo" })
	se.SetIncludeLoopbackCandidate(true)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// postSDP sends an offer and returns the status, body and Location.
func postSDP(t testing.TB, url, tok, offer string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(offer))
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true // no idle keep-alive connection outlives the test (goleak)
	req.Header.Set("Content-Type", "application/sdp")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Location")
}

// negotiate makes pc's offer (all candidates in it), posts it and applies
// the answer. It returns the resource URL, or the status and body on refusal.
func negotiate(t testing.TB, pc *webrtc.PeerConnection, url, tok string) (location string, status int, body string) {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	status, body, loc := postSDP(t, url, tok, pc.LocalDescription().SDP)
	if status != http.StatusCreated {
		return "", status, body
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
		t.Fatal(err)
	}
	return loc, status, body
}

// viewerClient is a pion WHEP client that counts what it receives and
// reassembles H.264 to find IDR NAL units.
type viewerClient struct {
	pc            *webrtc.PeerConnection
	location      string
	videoPackets  atomic.Int64
	audioPackets  atomic.Int64
	idrs          atomic.Int64
	firstVideoKey atomic.Bool // the first reassembled video NAL was SPS or IDR
	gotVideo      atomic.Bool
	wg            sync.WaitGroup

	mu     sync.Mutex
	annexB []byte // the H.264 received, from the first keyframe on (≤ maxKeep)
}

// maxKeep bounds what a test viewer keeps of the H.264 it received.
const maxKeep = 4 << 20

// h264 returns the Annex-B stream received so far.
func (v *viewerClient) h264() []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]byte(nil), v.annexB...)
}

// watch opens a WHEP session (recvonly video and audio). On refusal it
// returns nil and the status.
func watch(t testing.TB, api *webrtc.API, base, room, tok string) (*viewerClient, int, string) {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	v := &viewerClient{pc: pc}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.wg.Add(1)
		defer v.wg.Done()
		video := tr.Kind() == webrtc.RTPCodecTypeVideo
		var dep codecs.H264Packet
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if !video {
				v.audioPackets.Add(1)
				continue
			}
			v.videoPackets.Add(1)
			v.scan(&dep, p)
		}
	})
	loc, status, body := negotiate(t, pc, base+"/api/v1/rooms/"+room+"/whep", tok)
	if loc == "" {
		_ = pc.Close()
		return nil, status, body
	}
	v.location = base + loc
	t.Cleanup(v.close)
	return v, status, body
}

// scan depacketizes one H.264 packet and looks at the NAL types.
func (v *viewerClient) scan(dep *codecs.H264Packet, p *rtp.Packet) {
	annexB, err := dep.Unmarshal(p.Payload)
	if err != nil || len(annexB) == 0 {
		return
	}
	v.mu.Lock()
	if len(v.annexB)+len(annexB) <= maxKeep {
		v.annexB = append(v.annexB, annexB...)
	}
	v.mu.Unlock()
	for _, n := range bytes.Split(annexB, []byte{0, 0, 0, 1}) {
		if len(n) == 0 {
			continue
		}
		t := n[0] & 0x1f
		if !v.gotVideo.Swap(true) {
			v.firstVideoKey.Store(t == naluSPS || t == naluIDR)
		}
		if t == naluIDR {
			v.idrs.Add(1)
		}
	}
}

func (v *viewerClient) close() {
	_ = v.pc.Close()
	v.wg.Wait()
}

// deleteResource sends DELETE to a session's resource URL.
func deleteResource(t testing.TB, url string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, url, nil)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
