package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/danmaku/danmaku/room/auth"
	"github.com/danmaku/danmaku/room/proto"
)

// These tests run the real binary: `go build` once in TestMain, then every
// test starts `danmaku serve` processes on free loopback ports and drives
// them with `danmaku listen`, `danmaku send` and HTTP.

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "danmaku-cmd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "danmaku")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build danmaku:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// handedOut remembers the ports freeAddr gave, so two calls never return
// the same one (the kernel readily reuses a port just closed).
var (
	handedMu  sync.Mutex
	handedOut = map[string]bool{}
)

// freeAddr returns a loopback address with a port nobody listens on now
// and that no earlier call returned.
func freeAddr(t testing.TB) string {
	t.Helper()
	handedMu.Lock()
	defer handedMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !handedOut[addr] {
			handedOut[addr] = true
			return addr
		}
	}
	t.Fatal("no fresh port in 100 tries")
	return ""
}

// syncBuf is a bytes.Buffer safe for a process writing and a test reading.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a running danmaku process.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdout syncBuf
	stderr syncBuf
	done   chan struct{}
	err    error
}

func start(t testing.TB, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(binPath, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.Env = cleanEnv()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("%s %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(binPath), args, p.stdout.String(), tail(p.stderr.String(), 60))
		}
	})
	return p
}

// cleanEnv is the environment without DANMAKU_* settings of whoever runs the tests.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DANMAKU_") {
			env = append(env, kv)
		}
	}
	return env
}

func tail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

func (p *proc) signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(within time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("%v still running after %v\nstderr:\n%s", p.cmd.Args, within, tail(p.stderr.String(), 30))
	}
	return p.cmd.ProcessState.ExitCode()
}

// server is a running `danmaku serve` and its addresses.
type server struct {
	*proc
	edge, http, secret string
}

func (s *server) ws() string  { return "ws://" + s.edge + "/ws" }
func (s *server) tcp() string { return "tcp://" + s.edge }

// startServe starts a node with fresh ports and waits until /readyz says
// ready. extra flags come after the defaults, so they win.
func startServe(t testing.TB, extra ...string) *server {
	t.Helper()
	return startServeAt(t, freeAddr(t), freeAddr(t), extra...)
}

// startServeAt is startServe on given addresses (a restart comes back on them).
func startServeAt(t testing.TB, edgeAddr, httpAddr string, extra ...string) *server {
	t.Helper()
	s := &server{edge: edgeAddr, http: httpAddr, secret: "test-secret"}
	args := append([]string{"serve", "--edge", s.edge, "--http", s.http, "--secret", s.secret,
		"--rtmp", "", "--api-key", "test-api", "--admin-key", "test-admin", "--log-level", "debug"}, extra...)
	s.proc = start(t, args...)
	waitFor(t, 20*time.Second, "serve to be ready", func() bool {
		select {
		case <-s.done:
			t.Fatalf("serve exited: %v\n%s", s.err, tail(s.stderr.String(), 30))
		default:
		}
		resp, err := http.Get("http://" + s.http + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

// waitListening waits until something accepts TCP connections on addr.
func waitListening(t testing.TB, addr, what string) {
	t.Helper()
	waitFor(t, 10*time.Second, what+" to listen", func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for a condition
	}
}

// token mints a token with `danmaku token`.
func token(t testing.TB, secret, user, role string) string {
	t.Helper()
	out, err := exec.Command(binPath, "token", "--secret", secret, "--user", user, "--role", role).Output()
	if err != nil {
		t.Fatalf("danmaku token: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// mint signs a token in-process (what `danmaku token` prints), name = user.
func mint(t testing.TB, secret, user string, role proto.Role) string {
	t.Helper()
	tok, err := auth.Sign([]byte(secret), user, user, role, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// runCLI runs a short-lived danmaku command and returns stdout and the exit code.
func runCLI(t testing.TB, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("%v: %v", args, err)
		}
	}
	if cmd.ProcessState.ExitCode() != 0 {
		t.Logf("%v exited %d: %s", args[:1], cmd.ProcessState.ExitCode(), strings.TrimSpace(stderr.String()))
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// send runs `danmaku send` and decodes its JSON answer.
func send(t testing.TB, url, tok, room string, args ...string) (sendResult, int) {
	t.Helper()
	out, code := runCLI(t, append([]string{"send", "--url", url, "--token", tok, "--room", room}, args...)...)
	var r sendResult
	if code != exitConnect && code != exitUsage {
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("send output %q: %v", out, err)
		}
	}
	return r, code
}

// listener is a running `danmaku listen --json` whose lines are collected.
type listener struct {
	*proc
	mu    sync.Mutex
	lines []listenLine
}

func startListen(t testing.TB, url, tok, room string, extra ...string) *listener {
	t.Helper()
	pr, pw := io.Pipe()
	l := &listener{}
	args := append([]string{"listen", "--url", url, "--token", tok, "--room", room, "--json", "--timeout", "2m"}, extra...)
	l.proc = &proc{t: t, cmd: exec.Command(binPath, args...), done: make(chan struct{})}
	l.cmd.Stdout, l.cmd.Stderr, l.cmd.Env = pw, &l.stderr, cleanEnv()
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { l.err = l.cmd.Wait(); pw.Close(); close(l.done) }()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var ln listenLine
			if err := json.Unmarshal(sc.Bytes(), &ln); err != nil {
				t.Errorf("listen printed %q: %v", sc.Text(), err)
				continue
			}
			l.mu.Lock()
			l.lines = append(l.lines, ln)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.signal(syscall.SIGKILL)
		<-l.done
		if t.Failed() {
			t.Logf("listen %s stderr:\n%s", room, tail(l.stderr.String(), 30))
		}
	})
	waitFor(t, 10*time.Second, "listen to join", func() bool { return strings.Contains(l.stderr.String(), "joined ") })
	return l
}

// of returns the lines of kind received so far.
func (l *listener) of(kind string) []listenLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []listenLine
	for _, ln := range l.lines {
		if ln.Kind == kind {
			out = append(out, ln)
		}
	}
	return out
}

func (l *listener) waitKind(t testing.TB, kind string, n int) []listenLine {
	t.Helper()
	waitFor(t, 15*time.Second, fmt.Sprintf("%d %s lines", n, kind), func() bool { return len(l.of(kind)) >= n })
	return l.of(kind)
}

// api calls the HTTP API with a bearer key and decodes the JSON answer.
func api(t testing.TB, method, url, key string, body string, hdr ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}
