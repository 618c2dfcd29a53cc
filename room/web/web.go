// Package web serves the browser side of danmaku: the demo room page at "/"
// and the JavaScript SDK bundle at "/sdk/danmaku.js" (types at
// "/sdk/danmaku.d.ts"), all embedded in the binary so `make run` needs no
// Node.
//
// The SDK source is sdk/ (an ES module over @msgpack/msgpack); static/sdk/ is
// its esbuild bundle, rebuilt with `npm run build` and checked by the tests.
// See README.md. The package imports only the standard library: it knows
// nothing of the edge, the room manager or the media relay, whose endpoints
// the page calls over the network.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// contentTypes are set explicitly: the system's MIME table may lack or
// disagree on them (.ts is often video/mp2t), and a module script served with
// a wrong type does not run.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".ts":   "application/typescript; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

// Handler serves the embedded files: "/" is the demo page, every other path
// the file of that name under static/ (404 for directories and unknown
// files). Mount it at the server root, after the API routes.
func Handler() http.Handler {
	root, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	files := http.FileServerFS(root)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := path.Clean(r.URL.Path)
		if name != "/" {
			if st, err := fs.Stat(root, strings.TrimPrefix(name, "/")); err != nil || st.IsDir() {
				http.NotFound(w, r)
				return
			}
		}
		if ct, ok := contentTypes[path.Ext(name)]; ok {
			w.Header().Set("Content-Type", ct)
		}
		// The files change with the binary, which sets no modification time
		// on embedded files: make browsers revalidate rather than guess.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}
