package media

import (
	"net/http"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"

	"github.com/danmaku/danmaku/room/proto"
)

// handleWHEP is POST /api/v1/rooms/{room}/whep: a viewer's SDP offer in,
// the answer out. A room with no live stream answers 404 at once (code
// unavailable): the app learns from the room's "stream started" notice
// when to play, so parking requests would only hold connections.
func (r *Relay) handleWHEP(w http.ResponseWriter, req *http.Request) {
	room, offer, e := readBody(w, req, "application/sdp")
	if e != nil {
		r.fail(w, sessionWHEP, e)
		return
	}
	if _, e := r.authorize(req, room, false); e != nil {
		r.fail(w, sessionWHEP, e)
		return
	}
	st := r.liveStream(room)
	if st == nil {
		r.fail(w, sessionWHEP, refusal(http.StatusNotFound, proto.CodeUnavailable, refuseOffline, "no live stream in room %q", room))
		return
	}
	if e := st.admit(); e != nil {
		r.fail(w, sessionWHEP, e)
		return
	}
	sess, e := r.newSession(sessionWHEP, room, r.egress)
	if e != nil {
		st.release(nil)
		r.fail(w, sessionWHEP, e)
		return
	}
	v := &viewer{sess: sess}
	sess.onClose = func(string) { st.release(v) }
	senders, err := v.addTracks(st)
	if err != nil {
		sess.close(closeSetupFailed)
		r.log.Error("add viewer tracks", "room", room, "err", err)
		r.fail(w, sessionWHEP, refusal(http.StatusInternalServerError, proto.CodeInternal, "internal", "cannot add tracks"))
		return
	}
	ans, err := answer(req.Context(), sess.pc, offer)
	if err != nil {
		sess.close(closeSetupFailed)
		r.fail(w, sessionWHEP, offerError(err))
		return
	}
	if video, audio := acceptedMedia(ans, "sendonly"); !video && !audio {
		sess.close(closeSetupFailed)
		r.fail(w, sessionWHEP, refusal(http.StatusBadRequest, proto.CodeBadRequest, refuseCodec,
			"the offer receives neither H.264 video nor Opus audio"))
		return
	}
	sess.start()
	for i, snd := range senders {
		first := i == 0
		if !r.spawn(func() { v.readRTCP(st, snd, first) }) {
			sess.close(closeShutdown)
			break
		}
	}
	created(w, req, sess.id, ans)
}

// addTracks gives the viewer its own track per relayed kind (so its
// sequence numbers are its own) and returns their senders, video first.
func (v *viewer) addTracks(st *stream) ([]*webrtc.RTPSender, error) {
	var senders []*webrtc.RTPSender
	add := func(c webrtc.RTPCodecCapability, id string) (*webrtc.TrackLocalStaticRTP, error) {
		t, err := webrtc.NewTrackLocalStaticRTP(c, id, "danmaku-"+st.room)
		if err != nil {
			return nil, err
		}
		snd, err := v.sess.pc.AddTrack(t)
		if err != nil {
			return nil, err
		}
		senders = append(senders, snd)
		return t, nil
	}
	var err error
	if st.info.Video != "" {
		if v.video, err = add(h264Capability, "video"); err != nil {
			return nil, err
		}
	}
	if st.info.Audio != "" {
		if v.audio, err = add(opusCapability, "audio"); err != nil {
			return nil, err
		}
	}
	return senders, nil
}

// readRTCP reads a sender's RTCP (so the interceptors answer NACKs) and
// turns PLI/FIR into a keyframe for the viewer. The first sender's reader
// also activates the viewer once SRTP is ready: pion silently drops packets
// written before, which would lose the viewer's first keyframe.
func (v *viewer) readRTCP(st *stream, snd *webrtc.RTPSender, activate bool) {
	if activate {
		// Blocks until the DTLS handshake finished and SRTP keys exist, or
		// the sender stops (session closed).
		if err := snd.SetReadDeadline(time.Time{}); err != nil {
			return
		}
		if !st.activate(v) {
			v.sess.close(closeStreamEnded)
			return
		}
	}
	for {
		pkts, _, err := snd.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				st.needKeyframe(v)
			}
		}
	}
}
