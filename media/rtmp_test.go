package media

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/danmaku/danmaku/room/proto"
)

// needFFmpeg returns ffmpeg's path, skipping the test when it is missing
// unless DANMAKU_REQUIRE_FFMPEG is set (CI sets it, so there it must run).
func needFFmpeg(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("ffmpeg")
	if err != nil {
		if os.Getenv("DANMAKU_REQUIRE_FFMPEG") != "" {
			t.Fatalf("ffmpeg is required (DANMAKU_REQUIRE_FFMPEG is set): %v", err)
		}
		t.Skip("ffmpeg not installed (apt-get install ffmpeg); set DANMAKU_REQUIRE_FFMPEG to make this a failure")
	}
	return path
}

// ffmpegProc is a running ffmpeg publisher.
type ffmpegProc struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 64<<10 { // keep the first 64 KiB: enough to see why it failed
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ffmpegArgs publishes a 25 fps test pattern (H.264, keyframe every gop
// frames, no B-frames) with AAC audio to url for at most 60 s.
func ffmpegArgs(url string, gop int, size string) []string {
	return []string{
		"-hide_banner", "-loglevel", "error", "-nostdin",
		"-re", "-f", "lavfi", "-i", "testsrc=size=" + size + ":rate=25",
		"-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "60",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", fmt.Sprint(gop), "-bf", "0",
		"-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "64k",
		"-f", "flv", url,
	}
}

func startFFmpeg(t testing.TB, bin string, args []string) *ffmpegProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	p := &ffmpegProc{cmd: exec.CommandContext(ctx, bin, args...), cancel: cancel, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("ffmpeg stderr:\n%s", p.stderr.String())
		}
	})
	return p
}

// stop kills ffmpeg (its TCP connection drops, as when OBS crashes) and waits.
func (p *ffmpegProc) stop() {
	p.cancel()
	<-p.done
}

func (p *ffmpegProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func rtmpURL(tr *testRelay, room, tok string) string {
	return "rtmp://" + tr.RTMPAddr().String() + "/live/" + room + "/" + tok
}

// ffmpeg publishes a test pattern over RTMP; a pion WHEP viewer that joins
// long after the first keyframe (GOP 24 s) still reassembles an IDR at
// once, from the relay's cached keyframe. AAC audio is dropped and the room
// state says so. Killing ffmpeg ends the stream with a notice.
func TestRTMPToWHEP(t *testing.T) {
	bin := needFFmpeg(t)
	tr := startRelay(t, nil)
	tok := token(t, "alice", proto.RoleStreamer, "live1")
	ff := startFFmpeg(t, bin, ffmpegArgs(rtmpURL(tr, "live1", tok), 600, "320x240"))
	eventually(t, 20*time.Second, "RTMP stream live", func() bool { _, ok := tr.Stream("live1"); return ok })

	info, _ := tr.Stream("live1")
	if info.Protocol != ProtocolRTMP || info.Video != CodecH264 || info.Audio != "" || info.DroppedAudio != CodecAAC || info.User != "alice" {
		t.Fatalf("info = %+v", info)
	}
	eventually(t, 5*time.Second, "stream-started notice", func() bool { return tr.notes.has("started live1 h264") })
	if n := tr.notes.lastInfo().Notice(); !strings.Contains(n, "AAC audio is not relayed") {
		t.Errorf("notice %q does not say the audio is dropped", n)
	}

	api := clientAPI(t)
	v, status, body := watch(t, api, tr.srv.URL, "live1", token(t, "bob", proto.RoleViewer))
	if v == nil {
		t.Fatalf("watch: %d %s", status, body)
	}
	// The next keyframe from ffmpeg is ~20 s away: only the cache can
	// deliver one within this wait.
	eventually(t, 10*time.Second, "an IDR reassembled from the relayed RTP", func() bool { return v.idrs.Load() > 0 })
	if !v.firstVideoKey.Load() {
		t.Error("first video NAL the viewer got was not a keyframe")
	}
	// What the viewer got decodes to a 320x240 picture: the cached keyframe
	// carries its SPS and PPS.
	f := t.TempDir() + "/received.h264"
	if err := os.WriteFile(f, v.h264(), 0o600); err != nil {
		t.Fatal(err)
	}
	probe, err := exec.Command(strings.TrimSuffix(bin, "ffmpeg")+"ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=width,height,nb_read_frames", "-of", "csv=p=0", f).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(probe), "320,240,") || strings.HasPrefix(string(probe), "320,240,0") {
		t.Errorf("ffprobe of the received H.264: %v: %s", err, probe)
	}
	t.Logf("received H.264 probes as width,height,frames = %s", strings.TrimSpace(string(probe)))
	if got := testutil.ToFloat64(tr.m.keyframeReqs.WithLabelValues("cached")); got < 1 {
		t.Errorf("cached keyframes served = %v", got)
	}
	if got := testutil.ToFloat64(tr.m.dropped.WithLabelValues(dropAudioCodec)); got < 1 {
		t.Errorf("AAC frames dropped = %v", got)
	}
	if ff.exited() {
		t.Fatalf("ffmpeg exited early: %v", ff.err)
	}

	ff.stop()
	eventually(t, 15*time.Second, "stream-ended notice", func() bool { return tr.notes.has("ended live1 publisher_left") })
	eventually(t, 5*time.Second, "viewer session closed", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.sessions) == 0
	})
}

// Wrong or missing tokens, a viewer's role, another user's live room and
// RTMP playback are refused; nothing goes live.
func TestRTMPRefusals(t *testing.T) {
	bin := needFFmpeg(t)
	tr := startRelay(t, nil)
	api := clientAPI(t)
	if p, status, body := publishWHIP(t, api, tr.srv.URL, "busy", token(t, "carol", proto.RoleStreamer)); p == nil {
		t.Fatalf("publish: %d %s", status, body)
	}
	eventually(t, 10*time.Second, "WHIP stream live", func() bool { _, ok := tr.Stream("busy"); return ok })
	addr := "rtmp://" + tr.RTMPAddr().String()
	for _, tc := range []struct {
		name, url, reason string
	}{
		{"garbage token", addr + "/live/r1/not-a-token", refuseUnauthorized},
		{"no token", addr + "/live/r1", refuseBadRequest},
		{"wrong app", addr + "/other/r1/" + token(t, "alice", proto.RoleStreamer), refuseBadRequest},
		{"viewer role", addr + "/live/r1/" + token(t, "bob", proto.RoleViewer), refuseForbidden},
		{"other room", addr + "/live/r1/" + token(t, "alice", proto.RoleStreamer, "r2"), refuseForbidden},
		{"room busy", addr + "/live/busy/" + token(t, "alice", proto.RoleStreamer), refuseStreamLive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(tr.m.refused.WithLabelValues(ProtocolRTMP, tc.reason))
			ff := startFFmpeg(t, bin, ffmpegArgs(tc.url, 25, "160x120"))
			select {
			case <-ff.done:
			case <-time.After(30 * time.Second):
				t.Fatal("ffmpeg still publishing after 30 s")
			}
			if ff.err == nil {
				t.Error("ffmpeg exited 0 after a refusal")
			}
			if got := testutil.ToFloat64(tr.m.refused.WithLabelValues(ProtocolRTMP, tc.reason)); got != before+1 {
				t.Errorf("refused{%s} went %v → %v", tc.reason, before, got)
			}
		})
	}
	// Playback over RTMP is refused too.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-hide_banner", "-loglevel", "error", "-nostdin",
		"-i", addr+"/live/busy", "-t", "1", "-f", "null", "-").CombinedOutput()
	if err == nil {
		t.Errorf("RTMP playback succeeded: %s", out)
	}
	if got := testutil.ToFloat64(tr.m.refused.WithLabelValues(ProtocolRTMP, refuseRTMPPlay)); got != 1 {
		t.Errorf("refused{rtmp_play} = %v", got)
	}
	if got := tr.notes.list(); len(got) > 1 {
		t.Errorf("notices = %v, want only the WHIP start", got)
	}
}
