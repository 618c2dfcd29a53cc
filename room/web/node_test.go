//go:build unix

package web

// The JavaScript side, run from `go test`: the bundle check, the SDK's unit
// tests, the SDK against a real `danmaku serve`, and the demo page in
// headless Chromium against `danmaku serve --demo`. They skip only when node
// (or, for the browser test, chromium) is not installed; node_modules is
// installed with `npm ci` when missing.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of one run (the brief: each under a minute on a shared 2-core box).
const (
	nodeRunTimeout = 90 * time.Second // one `node --test` file, browser included
	serverReady    = 30 * time.Second // danmaku serve up and /readyz 200
	buildTimeout   = 5 * time.Minute  // go build ./cmd/danmaku on a cold cache
)

// Secrets of the test server (loopback only, one test's life).
const (
	testSecret   = "web-test-secret"
	testAPIKey   = "web-test-api-key"
	testAdminKey = "web-test-admin-key"
)

// needNode returns the node binary, skipping the test when node is missing,
// and makes sure node_modules is installed.
func needNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (apt-get install nodejs npm)")
	}
	if err := exec.Command(node, "-e", nodeVersionCheck).Run(); err != nil {
		out, _ := exec.Command(node, "--version").Output()
		t.Fatalf("node %s is too old: the SDK and its tests need Node >= 20.10 (WebSocket)", bytes.TrimSpace(out))
	}
	modulesOnce.Do(func() { modulesErr = installModules() })
	if errors.Is(modulesErr, exec.ErrNotFound) {
		t.Skip("npm is not installed (apt-get install npm)")
	}
	if modulesErr != nil {
		t.Fatal(modulesErr)
	}
	return node
}

// nodeVersionCheck exits 1 on Node older than 20.10, the first with WebSocket
// (behind --experimental-websocket; global from 22).
const nodeVersionCheck = `const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 10) ? 0 : 1)`

var (
	modulesOnce sync.Once
	modulesErr  error
)

// installModules runs `npm ci` when node_modules is missing.
func installModules() error {
	if _, err := os.Stat(filepath.Join("node_modules", ".package-lock.json")); err == nil {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund").CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm ci in room/web: %v\n%s", err, out)
	}
	return nil
}

// runNode runs node with args in this directory and env, in its own process
// group so that whatever it starts (chromium) ends with it. It fails the test
// when node fails and logs its output either way.
func runNode(t *testing.T, node string, env []string, args ...string) {
	t.Helper()
	if !globalWebSocket(node) {
		args = append([]string{"--experimental-websocket"}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeRunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // leftovers of the group, if any
	}
	t.Logf("node %s:\n%s", strings.Join(args, " "), out.String())
	if ctx.Err() != nil {
		t.Fatalf("node %s: killed after %v", strings.Join(args, " "), nodeRunTimeout)
	}
	if err != nil {
		t.Fatalf("node %s: %v", strings.Join(args, " "), err)
	}
}

// globalWebSocket reports whether node has WebSocket without a flag (22+).
func globalWebSocket(node string) bool {
	return exec.Command(node, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)").Run() == nil
}

func TestBundleUpToDate(t *testing.T) {
	node := needNode(t)
	runNode(t, node, nil, "build.mjs", "--check")
}

func TestSDKUnit(t *testing.T) {
	node := needNode(t)
	runNode(t, node, nil, "--test", "--test-reporter=spec", "test/tracker.test.mjs")
}

func TestSDKAgainstServer(t *testing.T) {
	node := needNode(t)
	s := startServer(t)
	runNode(t, node, s.env(), "--test", "--test-reporter=spec", "test/sdk.test.mjs")
}

func TestDemoPageInBrowser(t *testing.T) {
	node := needNode(t)
	chromium := os.Getenv("DANMAKU_CHROMIUM")
	if chromium == "" {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				chromium = p
				break
			}
		}
	}
	if chromium == "" {
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	rtmp := freeAddr(t)
	s := startServer(t, "--demo", "--rtmp", rtmp)
	res, err := http.Get(s.http + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("danmaku serve --demo answers %d at /: it must mount web.Handler()", res.StatusCode)
	}
	artifacts := os.Getenv("DANMAKU_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join(os.TempDir(), "danmaku-web-artifacts")
	}
	env := append(s.env(), "DANMAKU_CHROMIUM="+chromium, "DANMAKU_ARTIFACTS="+artifacts, "DANMAKU_RTMP="+rtmp)
	runNode(t, node, env, "--test", "--test-reporter=spec", "test/browser.test.mjs")
	t.Logf("screenshots and render.json in %s", artifacts)
}

// server is one running `danmaku serve`.
type server struct {
	bin, ws, http string
}

func (s *server) env() []string {
	return []string{
		"DANMAKU_BIN=" + s.bin, "DANMAKU_WS=" + s.ws, "DANMAKU_HTTP=" + s.http,
		"DANMAKU_SECRET=" + testSecret, "DANMAKU_API_KEY=" + testAPIKey, "DANMAKU_ADMIN_KEY=" + testAdminKey,
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// danmakuBinary builds ./cmd/danmaku once per test process (or returns
// $DANMAKU_WEB_TEST_BIN, a binary built beforehand).
func danmakuBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("DANMAKU_WEB_TEST_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "danmaku-web-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "danmaku")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", binPath, "../../cmd/danmaku").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/danmaku: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// startServer runs `danmaku serve` on free loopback ports (RTMP off unless
// extra sets --rtmp) until the test ends, and returns once /readyz answers 200.
func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	bin := danmakuBinary(t)
	edge, httpAddr := freeAddr(t), freeAddr(t)
	args := []string{"serve", "--edge", edge, "--http", httpAddr,
		"--secret", testSecret, "--api-key", testAPIKey, "--admin-key", testAdminKey, "--log-level", "warn"}
	if !slices.Contains(extra, "--rtmp") {
		args = append(args, "--rtmp", "")
	}
	args = append(args, extra...)
	logPath := filepath.Join(t.TempDir(), "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("danmaku serve log:\n%s", b)
			}
		}
	})
	s := &server{bin: bin, ws: "ws://" + edge + "/ws", http: "http://" + httpAddr}
	deadline := time.Now().Add(serverReady)
	for {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("danmaku serve exited before it was ready: %v\n%s", err, b)
		default:
		}
		if res, err := http.Get(s.http + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("danmaku serve not ready after %v", serverReady)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
