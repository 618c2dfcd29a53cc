package media

import (
	"bytes"
	"net/url"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"
)

func TestH264KeyframeStart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		want    bool
	}{
		{"empty", nil, false},
		{"sps", []byte{0x67, 0x42}, true},
		{"idr", []byte{0x65, 0x88}, true},
		{"pps alone", []byte{0x68, 0xce}, false},
		{"p slice", []byte{0x41, 0x9a}, false},
		{"sei", []byte{0x06, 0x05}, false},
		{"stap-a sps pps", []byte{0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce}, true},
		{"stap-a pps idr", []byte{0x78, 0, 1, 0x68, 0, 1, 0x65}, true},
		{"stap-a sei p", []byte{0x78, 0, 1, 0x06, 0, 1, 0x41}, false},
		{"stap-a truncated", []byte{0x78, 0, 9, 0x67}, false},
		{"stap-a zero size", []byte{0x78, 0, 0, 0x67}, false},
		{"fu-a idr start", []byte{0x7c, 0x85, 1}, true},
		{"fu-a idr middle", []byte{0x7c, 0x05, 1}, false},
		{"fu-a p start", []byte{0x5c, 0x81, 1}, false},
		{"fu-a header only", []byte{0x7c}, false},
	} {
		if got := h264KeyframeStart(tc.payload); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRTPTime(t *testing.T) {
	for _, tc := range []struct {
		pts   time.Duration
		clock int64
		want  uint32
	}{
		{0, videoClock, 0},
		{40 * time.Millisecond, videoClock, 3600},
		{time.Second + 20*time.Millisecond, audioClock, 48960},
		{30 * time.Hour, videoClock, uint32(uint64(30*3600*90000) % (1 << 32))}, // no int64 overflow
	} {
		if got := rtpTime(tc.pts, tc.clock); got != tc.want {
			t.Errorf("rtpTime(%v, %d) = %d, want %d", tc.pts, tc.clock, got, tc.want)
		}
	}
}

// depacketize reassembles packets into Annex-B with pion's depacketizer.
func depacketize(t *testing.T, payloads [][]byte) []byte {
	t.Helper()
	var dep codecs.H264Packet
	var out []byte
	for _, p := range payloads {
		b, err := dep.Unmarshal(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

func TestPacketize(t *testing.T) {
	sps, pps := []byte{0x67, 0x42, 0xe0, 0x1f}, []byte{0x68, 0xce, 0x3c, 0x80}
	idr := fill(0x65, 3000)
	z := &h264Packetizer{sps: sps, pps: pps, seq: 7, base: 100}

	// An IDR without in-band parameter sets gets them prepended (and AUD dropped).
	pkts, key := z.packetize(40*time.Millisecond, [][]byte{{0x09, 0xf0}, idr})
	if !key || len(pkts) < 3 {
		t.Fatalf("key=%v, %d packets", key, len(pkts))
	}
	var payloads [][]byte
	for i, p := range pkts {
		if p.SequenceNumber != uint16(7+i) || p.Timestamp != 100+3600 || p.Marker != (i == len(pkts)-1) {
			t.Fatalf("packet %d header %+v", i, p.Header)
		}
		if len(p.Payload) > rtpMTU {
			t.Fatalf("packet %d has %d bytes", i, len(p.Payload))
		}
		payloads = append(payloads, p.Payload)
	}
	if !h264KeyframeStart(pkts[0].Payload) {
		t.Error("first packet does not start a keyframe")
	}
	want := annexB(sps, pps, idr)
	if got := depacketize(t, payloads); !bytes.Equal(got, want) {
		t.Errorf("round trip: got %d bytes, want %d", len(got), len(want))
	}

	// A parameter-set-only access unit updates the cache and sends nothing.
	sps2 := []byte{0x67, 0x64, 0x00, 0x28}
	if pkts, _ := z.packetize(80*time.Millisecond, [][]byte{sps2, pps}); pkts != nil {
		t.Fatalf("parameter sets alone made %d packets", len(pkts))
	}
	pkts, _ = z.packetize(120*time.Millisecond, [][]byte{idr})
	payloads = payloads[:0]
	for _, p := range pkts {
		payloads = append(payloads, p.Payload)
	}
	if got := depacketize(t, payloads); !bytes.HasPrefix(got, annexB(sps2, pps)) {
		t.Error("the IDR did not carry the updated SPS")
	}

	// A delta frame is not a keyframe and carries no parameter sets.
	pkts, key = z.packetize(160*time.Millisecond, [][]byte{{0x41, 1, 2, 3}})
	if key || len(pkts) != 1 || pkts[0].Payload[0] != 0x41 {
		t.Fatalf("delta: key=%v %+v", key, pkts)
	}
	if pkts, _ := z.packetize(0, [][]byte{{}, nil}); pkts != nil {
		t.Error("empty access unit made packets")
	}
}

func TestParseStreamKey(t *testing.T) {
	for _, tc := range []struct {
		url, room, token string
		ok               bool
	}{
		{"rtmp://h/live/room1/abc.def.ghi", "room1", "abc.def.ghi", true},
		{"rtmp://h:1935/live/room_1-x/tok/", "room_1-x", "tok", true},
		{"rtmp://h/live/room1?token=abc.def", "room1", "abc.def", true},
		{"rtmp://h/live/room1", "", "", false},
		{"rtmp://h/live/room1?token=", "", "", false},
		{"rtmp://h/other/room1/tok", "", "", false},
		{"rtmp://h/live", "", "", false},
		{"rtmp://h/live/room.1/tok", "", "", false},
		{"rtmp://h/live/room1/tok/extra", "", "", false},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		room, token, err := parseStreamKey(u)
		if (err == nil) != tc.ok || room != tc.room || token != tc.token {
			t.Errorf("%s: got %q %q %v", tc.url, room, token, err)
		}
	}
	if _, _, err := parseStreamKey(nil); err == nil {
		t.Error("nil URL accepted")
	}
}

func TestParseSDPFrag(t *testing.T) {
	frag := "a=ice-ufrag:x\r\na=ice-pwd:y\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
		"a=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\n" +
		"a=candidate:2 1 udp 1 127.0.0.1 5002 typ host\na=end-of-candidates\n"
	f, err := parseSDPFrag(frag)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.candidates) != 2 || !f.end {
		t.Fatalf("got %+v", f)
	}
	c0, c1 := f.candidates[0], f.candidates[1]
	if c0.Candidate != "candidate:1 1 udp 1 127.0.0.1 5000 typ host" || c0.SDPMid == nil || *c0.SDPMid != "0" {
		t.Errorf("candidate 0 = %+v", c0)
	}
	if c1.SDPMid != nil || c1.SDPMLineIndex == nil || *c1.SDPMLineIndex != 1 {
		t.Errorf("candidate 1 (no mid, second m-line) = %+v", c1)
	}
	many := ""
	for range maxTrickleCandidates + 1 {
		many += "a=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n"
	}
	if _, err := parseSDPFrag(many); err == nil {
		t.Error("too many candidates accepted")
	}
	if _, err := parseSDPFrag("a=mid:\r\n"); err == nil {
		t.Error("empty mid accepted")
	}
}
