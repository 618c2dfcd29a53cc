package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/danmaku/danmaku/media"
	"github.com/danmaku/danmaku/room/auth"
	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
	"github.com/danmaku/danmaku/room/web"
)

// apiError is every error answer of the HTTP APIs: {"code": ..., "message": ...}
// with a wire code where one applies (docs/OPERATIONS.md lists them).
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, format string, args ...any) {
	writeJSON(w, status, apiError{Code: code, Message: fmt.Sprintf(format, args...)})
}

// statusOf maps a wire code to the HTTP status of an API answer.
func statusOf(c proto.Code) int {
	switch c {
	case proto.CodeBadRequest, proto.CodeTooLong, proto.CodeInvalidText, proto.CodeTooLarge:
		return http.StatusBadRequest
	case proto.CodeUnavailable:
		return http.StatusServiceUnavailable
	case proto.CodeRoomClosed, proto.CodeForbidden:
		return http.StatusForbidden
	default:
		return http.StatusInternalServerError
	}
}

// codeOf is the wire code inside err (proto.Code is an error), internal when none.
func codeOf(err error) proto.Code {
	var c proto.Code
	if errors.As(err, &c) {
		return c
	}
	return proto.CodeInternal
}

func (n *node) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": n.cfg.NodeID})
	})
	mux.HandleFunc("GET /readyz", n.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))

	api := n.bearer(n.cfg.HTTP.APIKey, "api key")
	mux.Handle("POST /api/v1/rooms/{room}/publish", api(http.HandlerFunc(n.handlePublish)))
	mux.HandleFunc("POST /api/v1/demo/token", n.handleDemoToken)

	m := n.media.Handler()
	for _, p := range []string{"whip", "whep"} {
		mux.Handle("/api/v1/rooms/{room}/"+p, m)
		mux.Handle("/api/v1/rooms/{room}/"+p+"/{id}", m)
	}
	n.adminRoutes(mux)
	mux.Handle("/", web.Handler()) // the demo room page and the JS SDK bundle
	return http.MaxBytesHandler(mux, n.cfg.HTTP.MaxBody)
}

func (n *node) handleReady(w http.ResponseWriter, r *http.Request) {
	var problems []string
	if err := n.bus.Healthy(); err != nil {
		problems = append(problems, "bus: "+err.Error())
	}
	if n.redis != nil {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		if err := n.redis.Ping(ctx); err != nil {
			problems = append(problems, "store: "+err.Error())
		}
		cancel()
	}
	if n.edge.Draining() {
		problems = append(problems, "draining")
	}
	if len(problems) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "problems": problems})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "node": n.cfg.NodeID})
}

// bearer guards a handler with "Authorization: Bearer <key>"; an empty key
// means the API is off.
func (n *node) bearer(key, what string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if key == "" {
				writeErr(w, http.StatusUnauthorized, string(proto.CodeUnauthorized), "this API is off: the server has no %s", what)
				return
			}
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(key)) != 1 {
				writeErr(w, http.StatusUnauthorized, string(proto.CodeUnauthorized), "missing or wrong %s (Authorization: Bearer ...)", what)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// publishRequest is the body of POST /api/v1/rooms/{room}/publish.
type publishRequest struct {
	Kind  proto.Kind `json:"kind"`  // gift, notice, state or mod
	User  string     `json:"user"`  // gift: the sender
	Name  string     `json:"name"`  // gift: the sender's display name
	Text  string     `json:"text"`  // notice text
	Level string     `json:"level"` // notice: info (default), warn, critical
	Gift  string     `json:"gift"`  // gift id
	Count uint32     `json:"count"` // gift count (default 1)
	Data  string     `json:"data"`  // JSON payload (state, mod, app data)
}

type publishResponse struct {
	Room      string `json:"room"`
	Seq       uint64 `json:"seq"`
	Epoch     string `json:"epoch"`
	MsgID     uint64 `json:"msg_id,omitempty"`
	Duplicate bool   `json:"duplicate"`
}

func (n *node) handlePublish(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !proto.ValidRoom(room) {
		writeErr(w, http.StatusBadRequest, string(proto.CodeBadRequest), "room id %q: want 1-64 of [A-Za-z0-9_-]", room)
		return
	}
	var req publishRequest
	if err := decodeBody(r, &req); err != nil {
		writeErr(w, http.StatusBadRequest, string(proto.CodeBadRequest), "%v", err)
		return
	}
	if !req.Kind.Reliable() {
		writeErr(w, http.StatusBadRequest, string(proto.CodeBadRequest), "kind %q: want gift, notice, state or mod", req.Kind)
		return
	}
	e := proto.Entry{Kind: req.Kind, User: req.User, Name: req.Name, Text: req.Text, Level: req.Level,
		Gift: req.Gift, Count: req.Count, Data: req.Data, Role: proto.RoleSystem}
	if e.Kind == proto.KindNotice && e.Level == "" {
		e.Level = "info"
	}
	if e.Kind == proto.KindGift && e.Count == 0 {
		e.Count = 1
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 128 || !utf8.ValidString(key) {
		writeErr(w, http.StatusBadRequest, string(proto.CodeBadRequest), "Idempotency-Key: at most 128 bytes of UTF-8")
		return
	}
	ack, err := n.bus.Broadcast(r.Context(), room, manager.Publish{Entry: e, Key: key})
	if err != nil {
		c := codeOf(err)
		writeErr(w, statusOf(c), string(c), "publish to room %q: %v", room, err)
		return
	}
	writeJSON(w, http.StatusOK, publishResponse{Room: room, Seq: ack.Seq, Epoch: ack.Epoch, MsgID: ack.MsgID, Duplicate: ack.Duplicate})
}

// decodeBody reads a JSON body, refusing unknown fields (a typo must not pass).
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	return nil
}

// handleDemoToken gives the demo page a guest viewer token; only with --demo.
func (n *node) handleDemoToken(w http.ResponseWriter, r *http.Request) {
	if !n.cfg.Demo {
		writeErr(w, http.StatusNotFound, "not_found", "demo tokens are off (start with --demo)")
		return
	}
	var req struct {
		Name string `json:"name"`
		Room string `json:"room"`
	}
	if err := decodeBody(r, &req); err != nil {
		writeErr(w, http.StatusBadRequest, string(proto.CodeBadRequest), "%v", err)
		return
	}
	if req.Room != "" && !proto.ValidRoom(req.Room) {
		writeErr(w, http.StatusBadRequest, string(proto.CodeBadRequest), "room id %q: want 1-64 of [A-Za-z0-9_-]", req.Room)
		return
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" || utf8.RuneCountInString(req.Name) > 32 || !utf8.ValidString(req.Name) {
		writeErr(w, http.StatusBadRequest, string(proto.CodeBadRequest), "name: 1-32 characters")
		return
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	user := "guest-" + hex.EncodeToString(b)
	var rooms []string
	if req.Room != "" {
		rooms = []string{req.Room}
	}
	tok, err := auth.Sign([]byte(n.cfg.Secret), user, req.Name, proto.RoleViewer, rooms, 12*time.Hour)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, string(proto.CodeInternal), "sign: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok, "user": user, "name": req.Name,
		"role": string(proto.RoleViewer), "url": n.publicEdgeURL()})
}

func (n *node) publicEdgeURL() string {
	if n.cfg.HTTP.PublicEdgeURL != "" {
		return n.cfg.HTTP.PublicEdgeURL
	}
	return "ws://" + n.edge.Addr().String() + "/ws"
}

// roomNotifier turns the media relay's stream start and end into a state
// entry (the live flag in every joiner's RoomState) and a notice.
type roomNotifier struct{ n *node }

func (rn *roomNotifier) publish(room string, entries ...proto.Entry) {
	for _, e := range entries {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := rn.n.bus.Broadcast(ctx, room, manager.Publish{Entry: e}); err != nil {
			rn.n.log.Warn("stream notice not published", "room", room, "kind", e.Kind, "err", err)
		}
		cancel()
	}
}

func (rn *roomNotifier) StreamStarted(room string, info media.StreamInfo) {
	data, _ := json.Marshal(map[string]any{"live": true, "media": info.Media(), "protocol": info.Protocol,
		"publisher": info.User, "dropped_audio": info.DroppedAudio})
	rn.publish(room, proto.Entry{Kind: proto.KindState, Role: proto.RoleSystem, Data: string(data)},
		proto.Entry{Kind: proto.KindNotice, Role: proto.RoleSystem, Level: "info", Text: info.Notice()})
}

func (rn *roomNotifier) StreamEnded(room, reason string) {
	data, _ := json.Marshal(map[string]any{"live": false, "reason": reason})
	rn.publish(room, proto.Entry{Kind: proto.KindState, Role: proto.RoleSystem, Data: string(data)},
		proto.Entry{Kind: proto.KindNotice, Role: proto.RoleSystem, Level: "info", Text: "the stream ended (" + reason + ")"})
}
