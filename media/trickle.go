package media

import (
	"errors"
	"strings"

	"github.com/pion/webrtc/v3"
)

// maxTrickleCandidates bounds the candidates of one PATCH: a client has a
// few per interface; 64 is generous and bounds the ICE agent's work.
const maxTrickleCandidates = 64

// sdpFrag is what the relay uses of a trickle-ice-sdpfrag body (RFC 8840):
// candidates, each with the media id it belongs to.
type sdpFrag struct {
	candidates []webrtc.ICECandidateInit
	end        bool // a=end-of-candidates
}

// parseSDPFrag reads a trickle body. Lines other than a=mid, a=candidate and
// a=end-of-candidates are ignored (ice-ufrag/pwd, m=). It reads untrusted
// text: never panics, bounded by maxSDPBytes and maxTrickleCandidates.
func parseSDPFrag(body string) (sdpFrag, error) {
	var f sdpFrag
	var mid *string
	var mline uint16
	seenM := false
	for line := range strings.Lines(body) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "m="):
			if seenM {
				mline++
			}
			seenM, mid = true, nil
		case strings.HasPrefix(line, "a=mid:"):
			m := strings.TrimSpace(line[len("a=mid:"):])
			if m == "" {
				return f, errors.New("empty a=mid")
			}
			mid = &m
		case strings.HasPrefix(line, "a=candidate:"):
			if len(f.candidates) == maxTrickleCandidates {
				return f, errors.New("too many candidates")
			}
			c := webrtc.ICECandidateInit{Candidate: line[len("a="):]}
			if mid != nil {
				c.SDPMid = mid
			} else {
				idx := mline
				c.SDPMLineIndex = &idx
			}
			f.candidates = append(f.candidates, c)
		case line == "a=end-of-candidates":
			f.end = true
		}
	}
	return f, nil
}
