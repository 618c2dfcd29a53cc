package media

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/danmaku/danmaku/room/auth"
	"github.com/danmaku/danmaku/room/proto"
)

// A pion WHIP publisher fans out to two WHEP viewers: both receive video
// (starting at a keyframe, which only a PLI through the relay can produce
// after the first) and audio; the room hears start and end in order, and a
// DELETE of the publisher's resource closes the viewers' sessions.
func TestWHIPToTwoViewers(t *testing.T) {
	tr := startRelay(t, nil)
	api := clientAPI(t)
	pub, status, body := publishWHIP(t, api, tr.srv.URL, "r1", token(t, "alice", proto.RoleStreamer, "r1"))
	if pub == nil {
		t.Fatalf("publish: %d %s", status, body)
	}
	eventually(t, 10*time.Second, "stream live", func() bool { _, ok := tr.Stream("r1"); return ok })
	eventually(t, 5*time.Second, "stream-started notice", func() bool { return len(tr.notes.list()) > 0 })
	if got := tr.notes.list(); !slices.Equal(got, []string{"started r1 h264+opus"}) {
		t.Fatalf("notices = %v", got)
	}
	if info := tr.notes.lastInfo(); info.Protocol != ProtocolWHIP || info.User != "alice" || info.DroppedAudio != "" {
		t.Fatalf("info = %+v", info)
	}

	var viewers []*viewerClient
	for i, tok := range []string{token(t, "bob", proto.RoleViewer), token(t, "carol", proto.RoleVIP, "r1")} {
		v, status, body := watch(t, api, tr.srv.URL, "r1", tok)
		if v == nil {
			t.Fatalf("viewer %d: %d %s", i, status, body)
		}
		viewers = append(viewers, v)
	}
	for i, v := range viewers {
		eventually(t, 10*time.Second, "viewer receives a keyframe and audio", func() bool {
			return v.idrs.Load() > 0 && v.audioPackets.Load() > 10 && v.videoPackets.Load() > 10
		})
		if !v.firstVideoKey.Load() {
			t.Errorf("viewer %d: first video NAL was not a keyframe", i)
		}
	}
	if pub.plis.Load() == 0 {
		t.Error("the publisher got no PLI")
	}
	if s := tr.Streams(); len(s) != 1 || s[0].Viewers != 2 || s[0].Media() != "h264+opus" {
		t.Fatalf("Streams() = %+v", s)
	}
	if got := testutil.ToFloat64(tr.m.viewers); got != 2 {
		t.Errorf("viewers gauge = %v", got)
	}

	if code := deleteResource(t, pub.location); code != http.StatusOK {
		t.Fatalf("DELETE = %d", code)
	}
	eventually(t, 5*time.Second, "stream-ended notice", func() bool { return tr.notes.has("ended r1 publisher_left") })
	if _, ok := tr.Stream("r1"); ok {
		t.Error("stream still listed after DELETE")
	}
	eventually(t, 5*time.Second, "sessions closed", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.sessions) == 0
	})
	if got := testutil.ToFloat64(tr.m.viewers); got != 0 {
		t.Errorf("viewers gauge after end = %v", got)
	}
	if code := deleteResource(t, viewers[0].location); code != http.StatusNotFound {
		t.Errorf("DELETE of a closed viewer = %d, want 404", code)
	}
}

// A publisher that vanishes without DELETE ends the stream once ICE fails.
func TestWHIPPublisherVanishes(t *testing.T) {
	tr := startRelay(t, nil)
	api := clientAPI(t)
	pub, status, body := publishWHIP(t, api, tr.srv.URL, "r2", token(t, "alice", proto.RoleStreamer))
	if pub == nil {
		t.Fatalf("publish: %d %s", status, body)
	}
	eventually(t, 10*time.Second, "stream live", func() bool { _, ok := tr.Stream("r2"); return ok })
	v, status, body := watch(t, api, tr.srv.URL, "r2", token(t, "bob", proto.RoleViewer))
	if v == nil {
		t.Fatalf("watch: %d %s", status, body)
	}
	eventually(t, 10*time.Second, "viewer receives", func() bool { return v.videoPackets.Load() > 0 })
	pub.close()
	eventually(t, 20*time.Second, "stream-ended notice", func() bool { return tr.notes.has("ended r2 timeout") })
	eventually(t, 5*time.Second, "viewer session closed", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.sessions) == 0
	})
}

// One stream per room: another user is refused (409); the same user
// replaces the stream (ended "replaced", then started again, in order).
func TestWHIPSecondPublisher(t *testing.T) {
	tr := startRelay(t, nil)
	api := clientAPI(t)
	alice := token(t, "alice", proto.RoleStreamer)
	if p, status, body := publishWHIP(t, api, tr.srv.URL, "r3", alice); p == nil {
		t.Fatalf("publish: %d %s", status, body)
	}
	eventually(t, 10*time.Second, "stream live", func() bool { _, ok := tr.Stream("r3"); return ok })

	p, status, body := publishWHIP(t, api, tr.srv.URL, "r3", token(t, "mallory", proto.RoleAdmin))
	if p != nil || status != http.StatusConflict || errCode(t, body) != proto.CodeUnavailable {
		t.Fatalf("second user: %d %s", status, body)
	}
	p, status, body = publishWHIP(t, api, tr.srv.URL, "r3", alice)
	if p == nil {
		t.Fatalf("same user again: %d %s", status, body)
	}
	want := []string{"started r3 h264+opus", "ended r3 replaced", "started r3 h264+opus"}
	eventually(t, 10*time.Second, "replacement notices", func() bool { return len(tr.notes.list()) == 3 })
	if got := tr.notes.list(); !slices.Equal(got, want) {
		t.Fatalf("notices = %v, want %v", got, want)
	}
}

func errCode(t testing.TB, body string) proto.Code {
	t.Helper()
	var e struct {
		Code    proto.Code `json:"code"`
		Message string     `json:"message"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if e.Message == "" {
		t.Errorf("error body %q has no message", body)
	}
	return e.Code
}

func expiredToken(t testing.TB) string {
	t.Helper()
	c := auth.Claims{Role: proto.RoleStreamer, RegisteredClaims: jwt.RegisteredClaims{
		Subject: "alice", ExpiresAt: jwt.NewNumericDate(time.Now().Add(-time.Hour)),
	}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Refusals happen before any WebRTC work: wrong or missing token, wrong
// role or room, bad room id, content type, size, unusable SDP.
func TestWHIPRefusals(t *testing.T) {
	tr := startRelay(t, nil)
	other, err := auth.Sign([]byte("another secret"), "alice", "", proto.RoleStreamer, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	streamer := token(t, "alice", proto.RoleStreamer, "r1")
	for _, tc := range []struct {
		name, room, auth, ctype, body string
		status                        int
		code                          proto.Code
	}{
		{"no token", "r1", "", "application/sdp", "v=0", 401, proto.CodeUnauthorized},
		{"not bearer", "r1", "Basic YWxpY2U6eA==", "application/sdp", "v=0", 401, proto.CodeUnauthorized},
		{"garbage token", "r1", "Bearer abc.def.ghi", "application/sdp", "v=0", 401, proto.CodeUnauthorized},
		{"other secret", "r1", "Bearer " + other, "application/sdp", "v=0", 401, proto.CodeUnauthorized},
		{"expired", "r1", "Bearer " + expiredToken(t), "application/sdp", "v=0", 401, proto.CodeTokenExpired},
		{"viewer role", "r1", "Bearer " + token(t, "bob", proto.RoleViewer), "application/sdp", "v=0", 403, proto.CodeForbidden},
		{"moderator role", "r1", "Bearer " + token(t, "mod", proto.RoleModerator), "application/sdp", "v=0", 403, proto.CodeForbidden},
		{"other room", "r2", "Bearer " + streamer, "application/sdp", "v=0", 403, proto.CodeForbidden},
		{"bad room id", "r.1", "Bearer " + streamer, "application/sdp", "v=0", 400, proto.CodeBadRequest},
		{"content type", "r1", "Bearer " + streamer, "text/plain", "v=0", 415, proto.CodeBadRequest},
		{"empty body", "r1", "Bearer " + streamer, "application/sdp", "", 400, proto.CodeBadRequest},
		{"too large", "r1", "Bearer " + streamer, "application/sdp", strings.Repeat("a", maxSDPBytes+1), 413, proto.CodeTooLarge},
		{"garbage sdp", "r1", "Bearer " + streamer, "application/sdp", "v=0\r\nthis is not sdp", 400, proto.CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, tr.srv.URL+"/api/v1/rooms/"+tc.room+"/whip", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.ctype)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct{ Code proto.Code }
			_ = json.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != tc.status || e.Code != tc.code {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, e.Code, tc.status, tc.code)
			}
		})
	}
	if got := testutil.ToFloat64(tr.m.refused.WithLabelValues(sessionWHIP, refuseUnauthorized)); got != 4 {
		t.Errorf("refused{unauthorized} = %v, want 4", got)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.sessions) != 0 || len(tr.streams) != 0 {
		t.Errorf("refusals left %d sessions, %d streams", len(tr.sessions), len(tr.streams))
	}
}

// WHEP: offline rooms get 404 at once; tokens are checked (guests only when
// enabled); the per-stream viewer cap holds.
func TestWHEPRefusals(t *testing.T) {
	tr := startRelay(t, func(c *Config) { c.MaxViewersPerStream = 1 })
	api := clientAPI(t)
	viewer := token(t, "bob", proto.RoleViewer)

	_, status, body := watch(t, api, tr.srv.URL, "r4", viewer)
	if status != http.StatusNotFound || errCode(t, body) != proto.CodeUnavailable {
		t.Fatalf("offline room: %d %s", status, body)
	}
	if p, status, body := publishWHIP(t, api, tr.srv.URL, "r4", token(t, "alice", proto.RoleStreamer)); p == nil {
		t.Fatalf("publish: %d %s", status, body)
	}
	eventually(t, 10*time.Second, "stream live", func() bool { _, ok := tr.Stream("r4"); return ok })

	_, status, body = watch(t, api, tr.srv.URL, "r4", "")
	if status != http.StatusUnauthorized || errCode(t, body) != proto.CodeUnauthorized {
		t.Fatalf("guest while guests are off: %d %s", status, body)
	}
	_, status, body = watch(t, api, tr.srv.URL, "r4", token(t, "bob", proto.RoleViewer, "elsewhere"))
	if status != http.StatusForbidden || errCode(t, body) != proto.CodeForbidden {
		t.Fatalf("token for another room: %d %s", status, body)
	}
	if v, status, body := watch(t, api, tr.srv.URL, "r4", viewer); v == nil {
		t.Fatalf("first viewer: %d %s", status, body)
	}
	_, status, body = watch(t, api, tr.srv.URL, "r4", viewer)
	if status != http.StatusServiceUnavailable || errCode(t, body) != proto.CodeServerFull {
		t.Fatalf("viewer past the cap: %d %s", status, body)
	}
}

func TestWHEPGuests(t *testing.T) {
	tr := startRelay(t, func(c *Config) { c.Guests = true })
	api := clientAPI(t)
	if p, status, body := publishWHIP(t, api, tr.srv.URL, "r5", token(t, "alice", proto.RoleStreamer)); p == nil {
		t.Fatalf("publish: %d %s", status, body)
	}
	eventually(t, 10*time.Second, "stream live", func() bool { _, ok := tr.Stream("r5"); return ok })
	v, status, body := watch(t, api, tr.srv.URL, "r5", "")
	if v == nil {
		t.Fatalf("guest viewer: %d %s", status, body)
	}
	eventually(t, 10*time.Second, "guest receives a keyframe", func() bool { return v.idrs.Load() > 0 })
	// Publishing still needs a token.
	if _, status, _ := publishWHIP(t, api, tr.srv.URL, "r6", ""); status != http.StatusUnauthorized {
		t.Fatalf("tokenless WHIP with guests on: %d", status)
	}
}

// PATCH adds trickled candidates to a session; unknown resources are 404.
func TestTrickleAndResources(t *testing.T) {
	tr := startRelay(t, nil)
	api := clientAPI(t)
	pub, status, body := publishWHIP(t, api, tr.srv.URL, "r7", token(t, "alice", proto.RoleStreamer))
	if pub == nil {
		t.Fatalf("publish: %d %s", status, body)
	}
	patch := func(url, ctype, body string) int {
		req, _ := http.NewRequest(http.MethodPatch, url, strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	frag := "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef01234567\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
		"a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\na=end-of-candidates\r\n"
	if got := patch(pub.location, "application/trickle-ice-sdpfrag", frag); got != http.StatusNoContent {
		t.Errorf("PATCH = %d, want 204", got)
	}
	if got := patch(pub.location, "application/sdp", frag); got != http.StatusUnsupportedMediaType {
		t.Errorf("PATCH with the wrong type = %d, want 415", got)
	}
	unknown := tr.srv.URL + "/api/v1/rooms/r7/whip/00112233445566778899aabbccddeeff"
	if got := patch(unknown, "application/trickle-ice-sdpfrag", frag); got != http.StatusNotFound {
		t.Errorf("PATCH unknown = %d, want 404", got)
	}
	if got := deleteResource(t, unknown); got != http.StatusNotFound {
		t.Errorf("DELETE unknown = %d, want 404", got)
	}
	wrongKind := strings.Replace(pub.location, "/whip/", "/whep/", 1)
	if got := deleteResource(t, wrongKind); got != http.StatusNotFound {
		t.Errorf("DELETE of a WHIP session as WHEP = %d, want 404", got)
	}
	if got := deleteResource(t, pub.location); got != http.StatusOK {
		t.Errorf("DELETE = %d, want 200", got)
	}
}

// With AllowOrigin set, every answer carries the CORS headers and
// preflights are answered.
func TestCORS(t *testing.T) {
	tr := startRelay(t, func(c *Config) { c.AllowOrigin = "*" })
	req, _ := http.NewRequest(http.MethodOptions, tr.srv.URL+"/api/v1/rooms/r1/whep", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(h.Get("Access-Control-Expose-Headers"), "Location") || h.Get("Accept-Post") != "application/sdp" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, h)
	}
	status, _, _ := postSDP(t, tr.srv.URL+"/api/v1/rooms/r1/whep", "", "v=0")
	if status != http.StatusUnauthorized {
		t.Fatalf("POST without token = %d", status)
	}
}

// EndStream stops a stream with reason "stopped"; Close ends the rest with
// "shutdown" and has delivered that notice when it returns.
func TestEndStreamAndClose(t *testing.T) {
	tr := startRelay(t, nil)
	api := clientAPI(t)
	for _, room := range []string{"e1", "e2"} {
		if p, status, body := publishWHIP(t, api, tr.srv.URL, room, token(t, "alice", proto.RoleStreamer)); p == nil {
			t.Fatalf("publish %s: %d %s", room, status, body)
		}
		eventually(t, 10*time.Second, "stream live", func() bool { _, ok := tr.Stream(room); return ok })
	}
	v, status, body := watch(t, api, tr.srv.URL, "e1", token(t, "bob", proto.RoleViewer))
	if v == nil {
		t.Fatalf("watch: %d %s", status, body)
	}
	eventually(t, 10*time.Second, "viewer attached", func() bool { i, _ := tr.Stream("e1"); return i.Viewers == 1 })
	if !tr.EndStream("e1") {
		t.Fatal("EndStream found no stream")
	}
	if tr.EndStream("e1") {
		t.Error("EndStream ended a stream twice")
	}
	eventually(t, 5*time.Second, "stopped notice", func() bool { return tr.notes.has("ended e1 stopped") })
	if s := tr.Streams(); len(s) != 1 || s[0].Room != "e2" {
		t.Fatalf("Streams() = %+v", s)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if !tr.notes.has("ended e2 shutdown") {
		t.Fatalf("notices after Close = %v", tr.notes.list())
	}
	if _, status, _ := publishWHIP(t, api, tr.srv.URL, "e3", token(t, "alice", proto.RoleStreamer)); status != http.StatusServiceUnavailable {
		t.Errorf("WHIP after Close = %d, want 503", status)
	}
}
