package edge

import "bytes"

// What the first bytes of a connection say it speaks.
type sniffResult uint8

const (
	sniffMore sniffResult = iota // too few bytes to tell
	sniffHTTP                    // "GET ": a WebSocket upgrade (or a stray HTTP request)
	sniffTCP                     // "DMK": the raw framing's preamble (version checked after)
	sniffBad                     // neither
)

var (
	httpPrefix = []byte("GET ")
	tcpPrefix  = []byte("DMK")
)

// sniff tells the two transports apart from the first bytes, deciding as
// soon as the bytes rule one out (a single garbage byte is enough) and
// waiting otherwise. It reads at most 4 bytes.
func sniff(b []byte) sniffResult {
	if hasPrefixOrIsPrefix(b, tcpPrefix) {
		if len(b) < len(tcpPrefix)+1 {
			return sniffMore // the version byte completes the preamble
		}
		return sniffTCP
	}
	if hasPrefixOrIsPrefix(b, httpPrefix) {
		if len(b) < len(httpPrefix) {
			return sniffMore
		}
		return sniffHTTP
	}
	return sniffBad
}

// hasPrefixOrIsPrefix reports whether b starts with p, or b is shorter and
// could still become p.
func hasPrefixOrIsPrefix(b, p []byte) bool {
	n := min(len(b), len(p))
	return bytes.Equal(b[:n], p[:n])
}
