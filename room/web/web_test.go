package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHandler checks what the embedded file server answers, with the types
// browsers need to run the page's module scripts.
func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)
	cases := []struct {
		method, path string
		status       int
		ctype        string
		body         string // a substring of the body
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", `<canvas id="overlay"`},
		{"GET", "/sdk/danmaku.js", 200, "text/javascript; charset=utf-8", `"danmaku-js"`},
		{"GET", "/sdk/danmaku.d.ts", 200, "application/typescript; charset=utf-8", "export class Client"},
		{"GET", "/app.js", 200, "text/javascript; charset=utf-8", `from "./sdk/danmaku.js"`},
		{"GET", "/overlay.js", 200, "text/javascript; charset=utf-8", "export class Overlay"},
		{"GET", "/whep.js", 200, "text/javascript; charset=utf-8", "/whep"},
		{"GET", "/app.css", 200, "text/css; charset=utf-8", ".video-box"},
		{"HEAD", "/sdk/danmaku.js", 200, "text/javascript; charset=utf-8", ""},
		{"GET", "/sdk/", 404, "", ""},
		{"GET", "/nope.js", 404, "", ""},
		{"GET", "/../web.go", 404, "", ""},
		{"POST", "/", 405, "", ""},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			req, err := http.NewRequest(c.method, srv.URL+c.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != c.status {
				t.Fatalf("status %d, want %d (%s)", res.StatusCode, c.status, body)
			}
			if c.ctype != "" && res.Header.Get("Content-Type") != c.ctype {
				t.Errorf("Content-Type %q, want %q", res.Header.Get("Content-Type"), c.ctype)
			}
			if c.body != "" && !strings.Contains(string(body), c.body) {
				t.Errorf("body lacks %q", c.body)
			}
		})
	}
}
