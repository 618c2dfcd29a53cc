package media

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/danmaku/danmaku/room/auth"
	"github.com/danmaku/danmaku/room/proto"
)

// maxSDPBytes bounds an offer or trickle body: a browser offer with every
// codec is ~6 KiB; 64 KiB leaves room for many candidates and extensions.
const maxSDPBytes = 64 << 10

// API paths. {room} passes proto.ValidRoom; {id} is a session's resource id
// from the Location header of the POST that created it.
const (
	pathWHIP = "/api/v1/rooms/{room}/whip"
	pathWHEP = "/api/v1/rooms/{room}/whep"
)

// Handler serves the WHIP and WHEP endpoints:
//
//	POST   /api/v1/rooms/{room}/whip        SDP offer in, answer out (201, Location)
//	POST   /api/v1/rooms/{room}/whep        same, for a viewer
//	PATCH  /api/v1/rooms/{room}/whip/{id}   trickle ICE (application/trickle-ice-sdpfrag)
//	PATCH  /api/v1/rooms/{room}/whep/{id}
//	DELETE /api/v1/rooms/{room}/whip/{id}   end the session (a publisher's ends the stream)
//	DELETE /api/v1/rooms/{room}/whep/{id}
//	OPTIONS on each, when Config.AllowOrigin is set (CORS preflight)
//
// Errors are JSON {"code": "...", "message": "..."} with codes from
// room/proto (see README.md for the status of each).
func (r *Relay) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathWHIP, r.handleWHIP)
	mux.HandleFunc("POST "+pathWHEP, r.handleWHEP)
	for _, p := range []string{pathWHIP, pathWHEP} {
		mux.HandleFunc("PATCH "+p+"/{id}", r.handlePatch)
		mux.HandleFunc("DELETE "+p+"/{id}", r.handleDelete)
		mux.HandleFunc("OPTIONS "+p, r.handleOptions)
		mux.HandleFunc("OPTIONS "+p+"/{id}", r.handleOptions)
	}
	return r.cors(mux)
}

// httpError is a refusal: HTTP status, wire code, metric reason, text.
type httpError struct {
	status int
	code   proto.Code
	reason string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func refusal(status int, code proto.Code, reason, format string, args ...any) *httpError {
	return &httpError{status: status, code: code, reason: reason, msg: fmt.Sprintf(format, args...)}
}

// fail writes e as JSON and counts it.
func (r *Relay) fail(w http.ResponseWriter, kind string, e *httpError) {
	r.m.refused.WithLabelValues(kind, e.reason).Inc()
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="danmaku"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(struct {
		Code    proto.Code `json:"code"`
		Message string     `json:"message"`
	}{e.code, e.msg})
}

// authorize checks the bearer token of a WHIP (publish) or WHEP request for
// room. It returns nil claims for a guest viewer.
func (r *Relay) authorize(req *http.Request, room string, publish bool) (*auth.Claims, *httpError) {
	h := req.Header.Get("Authorization")
	if h == "" {
		if !publish && r.cfg.Guests {
			return nil, nil
		}
		return nil, refusal(http.StatusUnauthorized, proto.CodeUnauthorized, refuseUnauthorized, "missing bearer token")
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, refusal(http.StatusUnauthorized, proto.CodeUnauthorized, refuseUnauthorized, "authorization is not a bearer token")
	}
	return r.checkToken(strings.TrimSpace(token), room, publish)
}

// checkToken verifies token for room; publish also needs the streamer or
// admin role. Shared by WHIP, WHEP and RTMP.
func (r *Relay) checkToken(token, room string, publish bool) (*auth.Claims, *httpError) {
	c, err := auth.Verify(r.secret, token)
	switch {
	case errors.Is(err, proto.CodeTokenExpired):
		return nil, refusal(http.StatusUnauthorized, proto.CodeTokenExpired, refuseExpired, "token expired")
	case err != nil:
		return nil, refusal(http.StatusUnauthorized, proto.CodeUnauthorized, refuseUnauthorized, "invalid token")
	}
	if publish && c.Role != proto.RoleStreamer && c.Role != proto.RoleAdmin {
		return nil, refusal(http.StatusForbidden, proto.CodeForbidden, refuseForbidden, "role %q may not publish", c.Role)
	}
	if !c.AllowsRoom(room) {
		return nil, refusal(http.StatusForbidden, proto.CodeForbidden, refuseForbidden, "token is not valid for room %q", room)
	}
	return c, nil
}

// readBody checks the room id and content type and reads the body
// (≤ maxSDPBytes).
func readBody(w http.ResponseWriter, req *http.Request, contentType string) (room string, body string, e *httpError) {
	room = req.PathValue("room")
	if !proto.ValidRoom(room) {
		return "", "", refusal(http.StatusBadRequest, proto.CodeBadRequest, refuseBadRequest, "invalid room id")
	}
	if mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || mt != contentType {
		return "", "", refusal(http.StatusUnsupportedMediaType, proto.CodeBadRequest, refuseBadRequest, "content type must be %s", contentType)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxSDPBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return "", "", refusal(http.StatusRequestEntityTooLarge, proto.CodeTooLarge, refuseTooLarge, "body above %d bytes", maxSDPBytes)
		}
		return "", "", refusal(http.StatusBadRequest, proto.CodeBadRequest, refuseBadRequest, "read body: %v", err)
	}
	if len(b) == 0 {
		return "", "", refusal(http.StatusBadRequest, proto.CodeBadRequest, refuseBadRequest, "empty body")
	}
	return room, string(b), nil
}

// created answers a WHIP/WHEP POST: 201, the answer, and the session's
// resource URL.
func created(w http.ResponseWriter, req *http.Request, id, sdpAnswer string) {
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", strings.TrimSuffix(req.URL.Path, "/")+"/"+id)
	w.Header().Set("ETag", `"`+id+`"`)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, sdpAnswer)
}

// lookup finds the session a PATCH or DELETE names: right room and kind.
func (r *Relay) lookup(req *http.Request) (*session, string, *httpError) {
	kind := sessionWHEP
	if strings.Contains(req.URL.Path, "/whip/") {
		kind = sessionWHIP
	}
	r.mu.Lock()
	s := r.sessions[req.PathValue("id")]
	r.mu.Unlock()
	if s == nil || s.room != req.PathValue("room") || s.kind != kind {
		return nil, kind, refusal(http.StatusNotFound, proto.CodeBadRequest, refuseBadRequest, "no such session")
	}
	return s, kind, nil
}

// handleDelete ends a session: the resource id is its capability (128
// random bits, only ever sent to the client that created it).
func (r *Relay) handleDelete(w http.ResponseWriter, req *http.Request) {
	s, kind, e := r.lookup(req)
	if e != nil {
		r.fail(w, kind, e)
		return
	}
	s.close(closeDeleted)
	w.WriteHeader(http.StatusOK)
}

// handlePatch adds trickled ICE candidates to a session. ICE restarts are
// not supported (the client makes a new session instead).
func (r *Relay) handlePatch(w http.ResponseWriter, req *http.Request) {
	s, kind, e := r.lookup(req)
	if e != nil {
		r.fail(w, kind, e)
		return
	}
	_, body, e := readBody(w, req, "application/trickle-ice-sdpfrag")
	if e != nil {
		r.fail(w, kind, e)
		return
	}
	frag, err := parseSDPFrag(body)
	if err != nil {
		r.fail(w, kind, refusal(http.StatusBadRequest, proto.CodeBadRequest, refuseBadRequest, "trickle: %v", err))
		return
	}
	for _, c := range frag.candidates {
		if err := s.pc.AddICECandidate(c); err != nil {
			r.fail(w, kind, refusal(http.StatusBadRequest, proto.CodeBadRequest, refuseBadRequest, "trickle: %v", err))
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleOptions answers CORS preflights and WHIP clients' capability probes.
func (r *Relay) handleOptions(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Accept-Post", "application/sdp")
	w.WriteHeader(http.StatusNoContent)
}

// cors adds the CORS headers when Config.AllowOrigin is set.
func (r *Relay) cors(next http.Handler) http.Handler {
	if r.cfg.AllowOrigin == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", r.cfg.AllowOrigin)
		h.Set("Access-Control-Allow-Methods", "POST, PATCH, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
		h.Set("Access-Control-Expose-Headers", "Location, ETag, Accept-Post")
		next.ServeHTTP(w, req)
	})
}
