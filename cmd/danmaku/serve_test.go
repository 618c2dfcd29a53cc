package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestCLITrio: the documented token / listen / send loop against one real
// node, over both transports: a listener on WebSocket and one on TCP see a
// chat, likes and a gift sent over the other transport, as JSON lines.
func TestCLITrio(t *testing.T) {
	s := startServe(t)
	alice := token(t, s.secret, "alice", "viewer")
	bob := token(t, s.secret, "bob", "vip")
	lws := startListen(t, s.ws(), alice, "trio")
	ltcp := startListen(t, s.tcp(), bob, "trio")

	chat, code := send(t, s.tcp(), bob, "trio", "hello", "over", "tcp")
	if code != exitOK || !chat.OK || chat.Kind != "chat" || chat.MsgID == 0 {
		t.Fatalf("chat: exit %d %+v", code, chat)
	}
	if r, code := send(t, s.ws(), alice, "trio", "--like", "7"); code != exitOK || !r.OK {
		t.Fatalf("like: exit %d %+v", code, r)
	}
	gift, code := send(t, s.ws(), alice, "trio", "--gift", "rose", "--count", "3", "--key", "k-1")
	if code != exitOK || gift.Seq == 0 || gift.Epoch == "" || gift.Key != "k-1" {
		t.Fatalf("gift: exit %d %+v", code, gift)
	}
	// The same key again: the original ack, nothing new broadcast.
	again, code := send(t, s.tcp(), alice, "trio", "--gift", "rose", "--count", "3", "--key", "k-1")
	if code != exitOK || !again.Duplicate || again.Seq != gift.Seq {
		t.Fatalf("gift retry: exit %d %+v, first %+v", code, again, gift)
	}
	for name, l := range map[string]*listener{"ws": lws, "tcp": ltcp} {
		c := l.waitKind(t, "chat", 1)[0]
		if c.Text != "hello over tcp" || c.User != "bob" || c.Name != "bob" || c.Role != "vip" || c.TS == 0 || c.ClientTS == 0 {
			t.Errorf("%s listener chat %+v", name, c)
		}
		g := l.waitKind(t, "gift", 1)[0]
		if g.Gift != "rose" || g.Count != 3 || g.Seq != gift.Seq || g.User != "alice" {
			t.Errorf("%s listener gift %+v", name, g)
		}
		likes := uint64(0)
		waitFor(t, 10*time.Second, "7 likes", func() bool {
			likes = 0
			for _, ln := range l.of("like") {
				likes += ln.Count
			}
			return likes >= 7
		})
		if likes != 7 {
			t.Errorf("%s listener likes %d, want 7", name, likes)
		}
	}
	// A second gift shows the duplicate was not broadcast: exactly one gift line before it.
	if _, code := send(t, s.tcp(), alice, "trio", "--gift", "rocket", "--key", "k-2"); code != exitOK {
		t.Fatal("second gift failed")
	}
	if gs := lws.waitKind(t, "gift", 2); len(gs) != 2 || gs[1].Gift != "rocket" || gs[1].Seq != gift.Seq+1 {
		t.Fatalf("gifts seen %+v", gs)
	}
}

// TestListenCount: listen exits 0 after --count entries and non-zero on a
// timeout; send fails with the wire code for a bad token and for bad text.
func TestListenCount(t *testing.T) {
	s := startServe(t)
	tok := token(t, s.secret, "carol", "viewer")
	l := start(t, "listen", "--url", s.ws(), "--token", tok, "--room", "count", "--count", "2", "--json", "--timeout", "20s")
	waitFor(t, 10*time.Second, "listen to join", func() bool { return strings.Contains(l.stderr.String(), "joined ") })
	for i := range 2 {
		if _, code := send(t, s.tcp(), tok, "count", fmt.Sprintf("line %d", i)); code != exitOK {
			t.Fatalf("send %d: exit %d", i, code)
		}
	}
	if code := l.wait(20 * time.Second); code != exitOK {
		t.Fatalf("listen --count 2 exited %d", code)
	}
	if n := strings.Count(l.stdout.String(), `"kind":"chat"`); n != 2 {
		t.Fatalf("listen printed %d chats:\n%s", n, l.stdout.String())
	}
	if _, code := runCLI(t, "listen", "--url", s.ws(), "--token", tok, "--room", "count", "--count", "1", "--timeout", "1s"); code != exitFailed {
		t.Fatalf("listen timeout exited %d, want %d", code, exitFailed)
	}
	forged := token(t, "another-secret", "mallory", "admin")
	if _, code := send(t, s.tcp(), forged, "count", "hi"); code != exitConnect {
		t.Fatalf("forged token: exit %d, want %d", code, exitConnect)
	}
	r, code := send(t, s.tcp(), tok, "count", strings.Repeat("长", 101))
	if code != exitFailed || r.Code != "too_long" {
		t.Fatalf("too long: exit %d %+v", code, r)
	}
}

// TestPublishAPI: the backend publish endpoint with and without an
// Idempotency-Key, its auth, and its errors.
func TestPublishAPI(t *testing.T) {
	s := startServe(t)
	l := startListen(t, s.ws(), token(t, s.secret, "v", "viewer"), "pub")
	url := "http://" + s.http + "/api/v1/rooms/pub/publish"
	gift := `{"kind":"gift","user":"u42","name":"Big Fan","gift":"yacht","count":1}`

	code, first := api(t, "POST", url, "test-api", gift, "Idempotency-Key", "order-1")
	if code != http.StatusOK || first["seq"].(float64) != 1 || first["duplicate"] != false {
		t.Fatalf("publish: %d %v", code, first)
	}
	code, dup := api(t, "POST", url, "test-api", gift, "Idempotency-Key", "order-1")
	if code != http.StatusOK || dup["seq"] != first["seq"] || dup["duplicate"] != true {
		t.Fatalf("publish retry: %d %v", code, dup)
	}
	code, notice := api(t, "POST", url, "test-api", `{"kind":"notice","text":"welcome"}`)
	if code != http.StatusOK || notice["seq"].(float64) != 2 {
		t.Fatalf("notice: %d %v", code, notice)
	}
	if gs := l.waitKind(t, "gift", 1); gs[0].Gift != "yacht" || gs[0].Name != "Big Fan" {
		t.Fatalf("gift seen %+v", gs)
	}
	if ns := l.waitKind(t, "notice", 1); ns[0].Text != "welcome" || ns[0].Seq != 2 || ns[0].Level != "info" {
		t.Fatalf("notice seen %+v", ns)
	}
	if got := len(l.of("gift")); got != 1 {
		t.Fatalf("%d gifts broadcast for one key", got)
	}
	for _, c := range []struct {
		name, url, key, body string
		status               int
		code                 string
	}{
		{"no key", url, "", gift, 401, "unauthorized"},
		{"wrong key", url, "nope", gift, 401, "unauthorized"},
		{"lossy kind", url, "test-api", `{"kind":"chat","text":"x"}`, 400, "bad_request"},
		{"unknown field", url, "test-api", `{"kind":"notice","txt":"x"}`, 400, "bad_request"},
		{"bad room", "http://" + s.http + "/api/v1/rooms/bad.room/publish", "test-api", gift, 400, "bad_request"},
	} {
		code, body := api(t, "POST", c.url, c.key, c.body)
		if code != c.status || body["code"] != c.code {
			t.Errorf("%s: %d %v, want %d %s", c.name, code, body, c.status, c.code)
		}
	}
}

// TestGiftWebhook: allow, deny and timeout paths of --gift-webhook, and
// what the webhook is told.
func TestGiftWebhook(t *testing.T) {
	var calls atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var g giftCall
		if err := json.NewDecoder(r.Body).Decode(&g); err != nil || g.Room != "hook" || g.User != "dave" || g.Key == "" {
			t.Errorf("webhook got %+v %v", g, err)
		}
		switch g.Gift {
		case "allowed":
			fmt.Fprint(w, `{"allow":true}`)
		case "slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		case "broken":
			http.Error(w, "oops", http.StatusInternalServerError)
		default:
			fmt.Fprint(w, `{"allow":false,"reason":"insufficient balance"}`)
		}
	}))
	defer hook.Close()
	s := startServe(t, "--gift-webhook", hook.URL, "--gift-webhook-timeout", "300ms")
	tok := token(t, s.secret, "dave", "viewer")
	for _, c := range []struct {
		gift string
		ok   bool
	}{{"allowed", true}, {"denied", false}, {"slow", false}, {"broken", false}} {
		r, code := send(t, s.tcp(), tok, "hook", "--gift", c.gift)
		if r.OK != c.ok || (c.ok && (code != exitOK || r.Seq == 0)) || (!c.ok && (code != exitFailed || r.Code != "gift_denied")) {
			t.Errorf("gift %s: exit %d %+v", c.gift, code, r)
		}
	}
	if calls.Load() < 4 {
		t.Fatalf("webhook called %d times", calls.Load())
	}
}

// TestAdminAPI: mute with a duration blocks chat, unmute lifts it; policy,
// listing, notices, kick; every route refuses a wrong key.
func TestAdminAPI(t *testing.T) {
	s := startServe(t)
	base := "http://" + s.http + "/api/v1/admin"
	eve := token(t, s.secret, "eve", "viewer")
	l := startListen(t, s.ws(), token(t, s.secret, "watcher", "viewer"), "adm")

	if code, _ := api(t, "GET", base+"/rooms", "wrong", ""); code != 401 {
		t.Fatalf("wrong admin key: %d", code)
	}
	if code, body := api(t, "POST", base+"/users/eve/mute", "test-admin", `{"room":"adm","duration":"1m"}`); code != 200 {
		t.Fatalf("mute: %d %v", code, body)
	}
	if r, code := send(t, s.tcp(), eve, "adm", "let me talk"); code != exitFailed || r.Code != "muted" {
		t.Fatalf("muted send: exit %d %+v", code, r)
	}
	if code, body := api(t, "POST", base+"/users/eve/unmute", "test-admin", `{"room":"adm"}`); code != 200 {
		t.Fatalf("unmute: %d %v", code, body)
	}
	waitFor(t, 5*time.Second, "the unmute", func() bool {
		r, _ := send(t, s.tcp(), eve, "adm", fmt.Sprintf("back %d", time.Now().UnixNano()))
		return r.OK
	})
	// A ban stops a user whose token is still valid: joins and sends.
	if code, body := api(t, "POST", base+"/users/eve/ban", "test-admin", `{"room":"adm","duration":"1h"}`); code != 200 {
		t.Fatalf("ban: %d %v", code, body)
	}
	if _, code := send(t, s.tcp(), eve, "adm", "banned words"); code != exitConnect {
		t.Fatalf("banned user's send: exit %d, want %d (join refused)", code, exitConnect)
	}
	if code, body := api(t, "POST", base+"/users/eve/unban", "test-admin", `{"room":"adm"}`); code != 200 {
		t.Fatalf("unban: %d %v", code, body)
	}
	if code, body := api(t, "PUT", base+"/rooms/adm/policy", "test-admin", `{"title":"Final","budget":50,"slow_mode":"2s"}`); code != 200 {
		t.Fatalf("policy: %d %v", code, body)
	}
	waitFor(t, 5*time.Second, "the policy in the room list", func() bool {
		_, body := api(t, "GET", base+"/rooms/adm", "test-admin", "")
		p, _ := body["policy"].(map[string]any)
		return p != nil && p["title"] == "Final" && body["budget"] == 50.0 && p["slow_mode"] == "2s"
	})
	if code, body := api(t, "POST", base+"/notice", "test-admin", `{"room":"adm","text":"maintenance at 2am","level":"warn"}`); code != 200 {
		t.Fatalf("notice: %d %v", code, body)
	}
	if ns := l.waitKind(t, "notice", 1); ns[0].Text != "maintenance at 2am" || ns[0].Level != "warn" {
		t.Fatalf("notice seen %+v", ns)
	}
	if code, body := api(t, "GET", base+"/nodes", "test-admin", ""); code != 200 || len(body["nodes"].([]any)) != 1 {
		t.Fatalf("nodes: %d %v", code, body)
	}
	if code, _ := api(t, "POST", base+"/users/watcher/kick", "test-admin", `{"room":"adm"}`); code != 200 {
		t.Fatalf("kick: %d", code)
	}
	waitFor(t, 10*time.Second, "the kicked listener to hear it", func() bool {
		return strings.Contains(l.stderr.String(), "kicked")
	})
	if code, body := api(t, "POST", base+"/users/eve/dance", "test-admin", ""); code != 404 || body["code"] != "not_found" {
		t.Fatalf("unknown action: %d %v", code, body)
	}
}

// TestDrainOnSIGTERM: SIGTERM makes every connected client receive
// reconnect, and serve exits 0.
func TestDrainOnSIGTERM(t *testing.T) {
	s := startServe(t)
	tok := token(t, s.secret, "f", "viewer")
	ls := []*listener{startListen(t, s.ws(), tok, "drain"), startListen(t, s.tcp(), tok, "drain")}
	s.signal(syscall.SIGTERM)
	for _, l := range ls {
		waitFor(t, 20*time.Second, "reconnect at the listener", func() bool {
			return strings.Contains(l.stderr.String(), "reconnect_requested")
		})
	}
	if code := s.wait(45 * time.Second); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM", code)
	}
}

// TestHealth: /healthz, /readyz and /metrics answer.
func TestHealth(t *testing.T) {
	s := startServe(t)
	for path, want := range map[string]string{"/healthz": `"ok"`, "/readyz": `"ready"`, "/metrics": "danmaku_edge_connections"} {
		resp, err := http.Get("http://" + s.http + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d %q", path, resp.StatusCode, tail(string(b), 3))
		}
	}
}
