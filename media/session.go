package media

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/danmaku/danmaku/room/proto"
)

// Session kinds (label of the session metrics).
const (
	sessionWHIP = "whip"
	sessionWHEP = "whep"
)

// Why a WebRTC session closed (label of danmaku_media_sessions_closed_total).
const (
	closeDeleted        = "deleted"         // the client sent DELETE
	closeConnectTimeout = "connect_timeout" // not connected within ConnectTimeout
	closeICEFailed      = "ice_failed"      // the peer went silent (ICE failed)
	closeStreamEnded    = "stream_ended"    // a viewer's stream ended
	closeReplaced       = "replaced"        // a publisher replaced by the same user's new stream
	closeStopped        = "stopped"         // Relay.EndStream
	closeShutdown       = "shutdown"        // Relay.Close
	closeTrackEnded     = "track_ended"     // a publisher's track stopped (peer closed)
	closeSetupFailed    = "setup_failed"    // the offer/answer exchange failed
	closePeerClosed     = "closed"          // the peer connection closed by itself
)

// session is one WebRTC peer connection: a WHIP publisher or a WHEP viewer.
type session struct {
	r    *Relay
	id   string // resource id: 128 random bits, hex
	room string
	kind string
	pc   *webrtc.PeerConnection

	// onConnected runs once when ICE and DTLS are up; onClose runs once when
	// the session closes, before the peer connection is closed. Both are set
	// before the peer connection can change state.
	onConnected func()
	onClose     func(reason string)

	connected atomic.Bool
	closing   atomic.Bool
	timer     *time.Timer
}

// newSession reserves a session slot and creates its peer connection. The
// caller sets the hooks, negotiates, then calls start.
func (r *Relay) newSession(kind, room string, api *webrtc.API) (*session, *httpError) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		r.log.Error("new peer connection", "err", err)
		return nil, refusal(http.StatusInternalServerError, proto.CodeInternal, "internal", "cannot create a peer connection")
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	s := &session{r: r, id: hex.EncodeToString(b[:]), room: room, kind: kind, pc: pc}
	r.mu.Lock()
	var e *httpError
	switch {
	case r.closed:
		e = refusal(http.StatusServiceUnavailable, proto.CodeShutdown, refuseShutdown, "relay is shutting down")
	case len(r.sessions) >= r.cfg.MaxSessions:
		e = refusal(http.StatusServiceUnavailable, proto.CodeServerFull, refuseServerFull, "too many WebRTC sessions on this node")
	default:
		r.sessions[s.id] = s
	}
	r.mu.Unlock()
	if e != nil {
		_ = pc.Close()
		return nil, e
	}
	r.m.sessions.Inc()
	return s, nil
}

// start arms the connect timeout and follows the connection state.
func (s *session) start() {
	s.timer = time.AfterFunc(s.r.cfg.ConnectTimeout, func() {
		if !s.connected.Load() {
			s.close(closeConnectTimeout)
		}
	})
	s.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			if s.connected.CompareAndSwap(false, true) && s.onConnected != nil {
				s.onConnected()
			}
		case webrtc.PeerConnectionStateFailed:
			s.close(closeICEFailed)
		case webrtc.PeerConnectionStateClosed:
			s.close(closePeerClosed) // a no-op when we closed it
		}
	})
}

// close ends the session once: it leaves the registry, runs onClose and
// closes the peer connection (which ends its goroutines).
func (s *session) close(reason string) {
	if !s.closing.CompareAndSwap(false, true) {
		return
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.r.dropSession(s)
	s.r.m.closed.WithLabelValues(s.kind, reason).Inc()
	if s.onClose != nil {
		s.onClose(reason)
	}
	if err := s.pc.Close(); err != nil {
		s.r.log.Debug("close peer connection", "kind", s.kind, "room", s.room, "err", err)
	}
}

// dropSession frees s's slot.
func (r *Relay) dropSession(s *session) {
	r.mu.Lock()
	_, ok := r.sessions[s.id]
	delete(r.sessions, s.id)
	r.mu.Unlock()
	if ok {
		r.m.sessions.Dec()
	}
}
