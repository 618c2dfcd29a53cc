package media

import (
	"net/url"
	"testing"
	"time"
)

func FuzzH264KeyframeStart(f *testing.F) {
	for _, s := range [][]byte{{0x65}, {0x78, 0, 2, 0x67, 0x42}, {0x7c, 0x85}, {0x78, 0, 9}, {}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) { h264KeyframeStart(b) })
}

func FuzzParseSDPFrag(f *testing.F) {
	f.Add("a=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n")
	f.Add("m=video 9 UDP/TLS/RTP/SAVPF 0\na=candidate:x\nm=audio\na=candidate:y")
	f.Add("a=mid:\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		frag, err := parseSDPFrag(s)
		if err == nil && len(frag.candidates) > maxTrickleCandidates {
			t.Fatalf("%d candidates", len(frag.candidates))
		}
	})
}

func FuzzParseStreamKey(f *testing.F) {
	f.Add("rtmp://h/live/room1/abc.def.ghi")
	f.Add("rtmp://h/live/room1?token=abc")
	f.Add("rtmp://h/live//")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		room, token, err := parseStreamKey(u)
		if err == nil && (room == "" || token == "") {
			t.Fatalf("accepted %q with room %q token %q", s, room, token)
		}
	})
}

// FuzzPacketize feeds arbitrary NAL units (as gortmplib hands them over
// from an RTMP publisher) to the packetizer.
func FuzzPacketize(f *testing.F) {
	f.Add([]byte{0x65, 1, 2}, []byte{0x67, 0x42}, []byte{0x68, 0xce})
	f.Add([]byte{0x41, 0, 0, 1}, []byte{}, []byte{0x09})
	f.Add(fill(0x65, 2500), []byte{0x78}, []byte{0x7c, 0x85})
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		z := &h264Packetizer{sps: []byte{0x67}, pps: []byte{0x68}}
		for i := range 2 {
			pkts, _ := z.packetize(time.Duration(i)*time.Millisecond, [][]byte{a, b, c})
			for _, p := range pkts {
				if len(p.Payload) > rtpMTU || len(p.Payload) == 0 {
					t.Fatalf("payload of %d bytes", len(p.Payload))
				}
			}
		}
	})
}
