package media

import (
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// H.264 NAL unit types (ITU-T H.264 table 7-1) and RTP packet types (RFC 6184).
const (
	naluSlice  = 1  // non-IDR slice (P/B frame)
	naluIDR    = 5  // IDR slice: decoding can start here
	naluSPS    = 7  // sequence parameter set
	naluPPS    = 8  // picture parameter set
	naluAUD    = 9  // access unit delimiter: dropped, WebRTC does not use it
	naluFiller = 12 // filler data: dropped
	naluSTAPA  = 24 // RTP aggregation packet
	naluFUA    = 28 // RTP fragmentation unit
)

// rtpMTU is the RTP payload size we packetize RTMP video to: pion's default
// outbound MTU, which leaves room for SRTP and IP/UDP headers on any path.
const rtpMTU = 1200

// Clock rates of the relayed codecs (RFC 6184, RFC 7587).
const (
	videoClock = 90000
	audioClock = 48000
)

// h264KeyframeStart reports whether an H.264 RTP payload begins a keyframe:
// a single SPS or IDR NAL unit, an aggregation (STAP-A) holding one, or the
// first fragment (FU-A) of an IDR. A viewer waiting for a picture starts
// forwarding at such a packet. It reads untrusted bytes: never panics.
func h264KeyframeStart(payload []byte) bool {
	if len(payload) == 0 {
		return false
	}
	switch t := payload[0] & 0x1f; t {
	case naluSPS, naluIDR:
		return true
	case naluSTAPA:
		for b := payload[1:]; len(b) > 2; {
			n := int(b[0])<<8 | int(b[1])
			if n == 0 || len(b) < 2+n {
				return false
			}
			if nt := b[2] & 0x1f; nt == naluSPS || nt == naluIDR {
				return true
			}
			b = b[2+n:]
		}
	case naluFUA:
		return len(payload) > 1 && payload[1]&0x80 != 0 && payload[1]&0x1f == naluIDR
	}
	return false
}

// rtpTime converts a presentation time to RTP clock units without overflow
// (pts*90000 in nanoseconds would overflow int64 after 28 hours).
func rtpTime(pts time.Duration, clock int64) uint32 {
	sec, rem := int64(pts/time.Second), int64(pts%time.Second)
	return uint32(sec*clock + rem*clock/int64(time.Second))
}

// h264Packetizer turns RTMP access units (AVCC NAL units) into RTP packets,
// keeping the last SPS and PPS so every IDR it emits carries them: a viewer
// that starts at any keyframe can decode it.
type h264Packetizer struct {
	sps, pps []byte
	seq      uint16
	base     uint32 // random RTP timestamp origin (RFC 3550 §5.1)
	buf      []byte // Annex-B scratch, reused per access unit
}

// packetize returns the RTP packets of one access unit (fresh packets that
// the caller may keep, e.g. as the cached keyframe) and whether it is a
// keyframe. An access unit with no picture in it (a parameter-set update)
// only updates the SPS/PPS and returns nil.
func (z *h264Packetizer) packetize(pts time.Duration, au [][]byte) ([]*rtp.Packet, bool) {
	key, vcl, hasSPS := false, false, false
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch n[0] & 0x1f {
		case naluSPS:
			z.sps, hasSPS = append(z.sps[:0], n...), true
		case naluPPS:
			z.pps = append(z.pps[:0], n...)
		case naluIDR:
			key, vcl = true, true
		case naluSlice, 2, 3, 4:
			vcl = true
		}
	}
	if !vcl {
		return nil, false
	}
	z.buf = z.buf[:0]
	if key && !hasSPS && z.sps != nil && z.pps != nil {
		z.buf = appendNALU(appendNALU(z.buf, z.sps), z.pps)
	}
	for _, n := range au {
		if len(n) == 0 || n[0]&0x1f == naluAUD || n[0]&0x1f == naluFiller {
			continue
		}
		z.buf = appendNALU(z.buf, n)
	}
	// A fresh payloader per access unit: pion's keeps references to the last
	// SPS/PPS between calls, and z.buf is reused.
	var pl codecs.H264Payloader
	payloads := pl.Payload(rtpMTU, z.buf)
	if len(payloads) == 0 {
		return nil, false
	}
	ts := z.base + rtpTime(pts, videoClock)
	pkts := make([]*rtp.Packet, len(payloads))
	for i, p := range payloads {
		pkts[i] = &rtp.Packet{
			Header: rtp.Header{
				Version:        2,
				Marker:         i == len(payloads)-1,
				SequenceNumber: z.seq,
				Timestamp:      ts,
			},
			Payload: p,
		}
		z.seq++
	}
	return pkts, key
}

func appendNALU(b, n []byte) []byte { return append(append(b, 0, 0, 0, 1), n...) }
