package media

import (
	"errors"
	"net/http"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/danmaku/danmaku/room/proto"
)

// receiveBuffer holds one incoming RTP packet: pion's receive MTU (1460)
// plus slack; a larger datagram would have been cut by pion already.
const receiveBuffer = 1500

// whipPublisher is a stream's WHIP source: its packets are relayed as they
// come (H.264 and Opus, no re-encoding); a viewer needing a picture makes it
// send a PLI to the publisher.
type whipPublisher struct {
	sess      *session
	stream    *stream
	videoSSRC atomic.Uint32 // 0 until the video track's first packet
}

// handleWHIP is POST /api/v1/rooms/{room}/whip: a streamer's SDP offer in,
// the answer out (201, Location = the session's resource URL).
func (r *Relay) handleWHIP(w http.ResponseWriter, req *http.Request) {
	room, offer, e := readBody(w, req, "application/sdp")
	if e != nil {
		r.fail(w, sessionWHIP, e)
		return
	}
	claims, e := r.authorize(req, room, true)
	if e != nil {
		r.fail(w, sessionWHIP, e)
		return
	}
	sess, e := r.newSession(sessionWHIP, room, r.ingest)
	if e != nil {
		r.fail(w, sessionWHIP, e)
		return
	}
	st := r.newPublishedStream(room, claims, ProtocolWHIP)
	p := &whipPublisher{sess: sess, stream: st}
	st.pub = p
	sess.onConnected = func() {
		if !st.goLive() {
			sess.close(closeStreamEnded)
		}
	}
	sess.onClose = func(reason string) { st.end(endReason(reason)) }
	sess.pc.OnTrack(p.onTrack)
	if e := r.claim(st); e != nil {
		sess.close(closeSetupFailed)
		r.fail(w, sessionWHIP, e)
		return
	}
	ans, err := answer(req.Context(), sess.pc, offer)
	if err != nil {
		sess.close(closeSetupFailed)
		r.fail(w, sessionWHIP, offerError(err))
		return
	}
	video, audio := acceptedMedia(ans, "recvonly")
	if !video && !audio {
		sess.close(closeSetupFailed)
		r.fail(w, sessionWHIP, refusal(http.StatusBadRequest, proto.CodeBadRequest, refuseCodec,
			"the offer sends neither H.264 video nor Opus audio"))
		return
	}
	if video {
		st.info.Video = CodecH264
	}
	if audio {
		st.info.Audio = CodecOpus
	}
	sess.start()
	created(w, req, sess.id, ans)
}

// offerError maps a negotiation failure to a refusal.
func offerError(err error) *httpError {
	if errors.Is(err, errBadOffer) {
		return refusal(http.StatusBadRequest, proto.CodeBadRequest, refuseBadRequest, "%v", err)
	}
	return refusal(http.StatusInternalServerError, proto.CodeInternal, "internal", "%v", err)
}

// endReason is the stream-end reason for a publisher session's close reason.
func endReason(closeReason string) string {
	switch closeReason {
	case closeDeleted, closeTrackEnded, closePeerClosed:
		return EndPublisherLeft
	case closeICEFailed, closeConnectTimeout:
		return EndTimeout
	case closeReplaced, closeStopped, closeShutdown:
		return closeReason // same words as EndReplaced, EndStopped, EndShutdown
	}
	return EndError
}

func (p *whipPublisher) requestKeyframe() {
	ssrc := p.videoSSRC.Load()
	if ssrc == 0 {
		return
	}
	if err := p.sess.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		p.sess.r.log.Debug("send PLI", "room", p.sess.room, "err", err)
	}
}

func (p *whipPublisher) stop(reason string) { p.sess.close(reason) }

// onTrack starts relaying a publisher's track (called by pion on the
// track's first packet).
func (p *whipPublisher) onTrack(t *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	r := p.sess.r
	// Reading RTCP lets the interceptors see the sender reports.
	r.spawn(func() {
		for {
			if _, _, err := recv.ReadRTCP(); err != nil {
				return
			}
		}
	})
	r.spawn(func() { p.relay(t) })
}

// relay reads a track's packets and fans them out until the session ends.
func (p *whipPublisher) relay(t *webrtc.TrackRemote) {
	m, st := p.sess.r.m, p.stream
	video := t.Kind() == webrtc.RTPCodecTypeVideo
	if video {
		p.videoSSRC.Store(uint32(t.SSRC()))
		if len(*st.viewers.Load()) > 0 {
			p.requestKeyframe() // viewers that came before the track asked in vain
		}
	}
	buf := make([]byte, receiveBuffer)
	var pkt rtp.Packet
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			p.sess.close(closeTrackEnded)
			return
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			m.dropped.WithLabelValues(dropBadPacket).Inc()
			continue
		}
		if len(pkt.Payload) == 0 {
			m.dropped.WithLabelValues(dropPadding).Inc()
			continue
		}
		m.countIn(len(pkt.Payload))
		if video {
			st.forwardVideo(&pkt)
		} else {
			st.writeAudio(&pkt)
		}
	}
}
