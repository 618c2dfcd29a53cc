package media

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/danmaku/danmaku/room/proto"
)

// benchViewers binds n viewers whose tracks discard what they are given.
func benchViewers(b *testing.B, s *stream, n int) {
	for range n {
		v, _, _ := boundViewer(b, false)
		addViewer(s, v)
	}
}

// BenchmarkWriteVideoAU is the RTMP hot path: one 4-packet frame to 50
// viewers (pion's WriteRTP included, SRTP and sockets not). Run with
// -benchmem: it must not allocate per viewer.
func BenchmarkWriteVideoAU(b *testing.B) {
	s := newStream(unitRelay(b), "r", "u", ProtocolRTMP, true)
	benchViewers(b, s, 50)
	z := &h264Packetizer{}
	key, _ := z.packetize(0, [][]byte{{0x67, 1}, {0x68, 2}, fill(0x65, 4000)})
	s.writeVideoAU(key, true)
	delta, _ := z.packetize(40*time.Millisecond, [][]byte{fill(0x41, 4000)})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.writeVideoAU(delta, false)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*50*len(delta)), "ns/viewer-packet")
}

// BenchmarkForwardVideo is the WHIP hot path: one packet to 50 viewers.
func BenchmarkForwardVideo(b *testing.B) {
	s := newStream(unitRelay(b), "r", "u", ProtocolWHIP, false)
	benchViewers(b, s, 50)
	p := &rtp.Packet{Header: rtp.Header{Version: 2}, Payload: fill(0x65, 1100)}
	s.forwardVideo(p) // a keyframe start: every viewer is on
	p.Payload[0] = 0x41
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p.SequenceNumber++
		s.forwardVideo(p)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*50), "ns/viewer-packet")
}

// Fleet child process: the viewers of TestViewerCost run in another
// process so the relay's getrusage counts the relay alone.
const (
	fleetURLEnv   = "DANMAKU_MEDIA_FLEET_URL"
	fleetCountEnv = "DANMAKU_MEDIA_FLEET_N"
	fleetTokenEnv = "DANMAKU_MEDIA_FLEET_TOKEN"
)

// TestViewerFleet is not a test on its own: run by TestViewerCost in a
// child process, it opens N WHEP viewers, says "ready" once all of them got
// a keyframe, and reports the packets they received when stdin closes.
func TestViewerFleet(t *testing.T) {
	base := os.Getenv(fleetURLEnv)
	if base == "" {
		t.Skip("helper process of TestViewerCost")
	}
	n, _ := strconv.Atoi(os.Getenv(fleetCountEnv))
	api := clientAPI(t)
	var vs []*viewerClient
	for i := range n {
		v, status, body := watch(t, api, base, "bench", os.Getenv(fleetTokenEnv))
		if v == nil {
			t.Fatalf("viewer %d: %d %s", i, status, body)
		}
		vs = append(vs, v)
	}
	eventually(t, 30*time.Second, "every viewer has a keyframe", func() bool {
		for _, v := range vs {
			if v.idrs.Load() == 0 {
				return false
			}
		}
		return true
	})
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	var pkts int64
	for _, v := range vs {
		pkts += v.videoPackets.Load()
	}
	fmt.Printf("received %d\n", pkts)
}

type usage struct {
	cpu  time.Duration // user + system
	heap uint64        // HeapInuse after GC
	rss  uint64        // VmRSS
	at   time.Time
	out  float64 // packets relayed
}

func sample(tr *testRelay) usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u := usage{
		cpu:  time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		heap: ms.HeapInuse,
		at:   time.Now(),
		out:  testutil.ToFloat64(tr.m.outPackets),
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				u.rss = kb << 10
			}
		}
	}
	return u
}

// TestViewerCost measures the relay's CPU and memory per WebRTC viewer:
// ffmpeg publishes 640x360 H.264 at 1 Mbit/s over RTMP, 50 WHEP viewers (a
// child process) watch it. Skipped with -short and under -race. The figures go to
// docs/BENCHMARKS.md with the command:
//
//	go test -run TestViewerCost -v ./media/
func TestViewerCost(t *testing.T) {
	if testing.Short() {
		t.Skip("benchmark: skipped with -short")
	}
	if raceEnabled {
		t.Skip("benchmark: CPU figures under -race mean nothing (and 50 race-instrumented viewers overload 2 cores)")
	}
	bin := needFFmpeg(t)
	const viewers, window = 50, 10 * time.Second
	tr := startRelay(t, func(c *Config) { c.MaxViewersPerStream = viewers })
	tok := token(t, "alice", proto.RoleStreamer)
	args := []string{
		"-hide_banner", "-loglevel", "error", "-nostdin",
		"-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25", "-t", "90",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "50", "-bf", "0",
		"-b:v", "1000k", "-maxrate", "1000k", "-bufsize", "500k", "-pix_fmt", "yuv420p",
		"-f", "flv", rtmpURL(tr, "bench", tok),
	}
	startFFmpeg(t, bin, args)
	eventually(t, 20*time.Second, "stream live", func() bool { _, ok := tr.Stream("bench"); return ok })
	time.Sleep(2 * time.Second) // measuring: let the ingest settle (not a wait for a condition)

	measure := func() (usage, usage) {
		a := sample(tr)
		time.Sleep(window)
		return a, sample(tr)
	}
	b0, b1 := measure()

	cmd := exec.Command(os.Args[0], "-test.run=^TestViewerFleet$", "-test.v=false")
	cmd.Env = append(os.Environ(), fleetURLEnv+"="+tr.srv.URL, fleetCountEnv+"="+strconv.Itoa(viewers),
		fleetTokenEnv+"="+token(t, "viewer", proto.RoleViewer))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("viewer fleet: %v", err)
		}
	})
	lines := bufio.NewScanner(stdout)
	ready := false
	for lines.Scan() {
		if lines.Text() == "ready" {
			ready = true
			break
		}
	}
	if !ready {
		t.Fatal("viewer fleet did not get ready")
	}
	if info, _ := tr.Stream("bench"); info.Viewers != viewers {
		t.Fatalf("%d viewers attached, want %d", info.Viewers, viewers)
	}
	time.Sleep(2 * time.Second)
	v0, v1 := measure()
	_ = stdin.Close()
	for lines.Scan() {
		t.Log("fleet:", lines.Text())
	}

	secs := window.Seconds()
	cpuBase := (b1.cpu - b0.cpu).Seconds() / secs
	cpuLoad := (v1.cpu - v0.cpu).Seconds() / secs
	perViewerCPU := (cpuLoad - cpuBase) / viewers
	pps := (v1.out - v0.out) / v1.at.Sub(v0.at).Seconds()
	heapPer := (float64(v1.heap) - float64(b1.heap)) / viewers
	rssPer := (float64(v1.rss) - float64(b1.rss)) / viewers
	t.Logf("stream: 640x360 H.264 1 Mbit/s 25 fps over RTMP (ffmpeg), %d WHEP viewers in a child process, %v windows", viewers, window)
	t.Logf("relay CPU, 0 viewers: %.1f%% of a core (RTMP ingest + packetizing)", 100*cpuBase)
	t.Logf("relay CPU, %d viewers: %.1f%% of a core → %.2f%% of a core per viewer (%.0f µs CPU per viewer per second)",
		viewers, 100*cpuLoad, 100*perViewerCPU, perViewerCPU*1e6)
	t.Logf("relayed %.0f packets/s to viewers (%.0f per viewer) → %.1f µs CPU per viewer-packet",
		pps, pps/viewers, (cpuLoad-cpuBase)*1e6/pps)
	t.Logf("heap in use: %.1f MB → %.1f MB: %.0f KB per viewer; RSS %.1f MB → %.1f MB: %.0f KB per viewer",
		float64(b1.heap)/1e6, float64(v1.heap)/1e6, heapPer/1e3, float64(b1.rss)/1e6, float64(v1.rss)/1e6, rssPer/1e3)
}
