package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/danmaku/danmaku/bench/load"
)

// WorkerEnv is set in every worker's environment. A test binary that runs
// RunScenario checks it in TestMain and runs WorkerMain instead of its tests.
const WorkerEnv = "DANMAKU_BENCH_WORKER"

// stderrTail is how much of a worker's log the coordinator keeps to explain
// a worker's failure.
const stderrTail = 40

// killGrace is how long a worker gets to exit after its stdin closes.
const killGrace = 5 * time.Second

// workerProc is one worker process.
type workerProc struct {
	idx    int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	mu     sync.Mutex // serialises writes to stdin
	enc    *json.Encoder
	tail   *lineTail
	exited chan struct{} // closed when the process has exited
	err    error         // its exit error, valid after exited
}

// event is something a worker process said or did.
type event struct {
	worker int
	msg    *load.Message
	err    error // the worker's output ended: nil after a clean exit
	done   bool
}

// spawn starts worker idx; its messages and its end arrive on events.
func spawn(idx int, opts *Options, events chan<- event, log *slog.Logger) (*workerProc, error) {
	exe := opts.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find own executable: %w", err)
		}
	}
	args := opts.WorkerArgs
	if args == nil {
		args = []string{"bench-worker"}
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), WorkerEnv+"=1")
	detach(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &workerProc{idx: idx, cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin),
		tail: &lineTail{max: stderrTail, log: log, worker: idx}, exited: make(chan struct{})}
	cmd.Stderr = p.tail
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %d: %w", idx, err)
	}
	go func() {
		dec := json.NewDecoder(bufio.NewReaderSize(stdout, 64<<10))
		var rerr error
		for {
			var m load.Message
			if err := dec.Decode(&m); err != nil {
				if !errors.Is(err, io.EOF) {
					rerr = fmt.Errorf("worker %d output: %w", idx, err)
				}
				break
			}
			events <- event{worker: idx, msg: &m}
		}
		p.err = cmd.Wait()
		if rerr == nil && p.err != nil {
			rerr = fmt.Errorf("worker %d: %w%s", idx, p.err, p.tail.String())
		}
		close(p.exited)
		events <- event{worker: idx, err: rerr, done: true}
	}()
	return p, nil
}

// send writes one line to the worker.
func (p *workerProc) send(v any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.enc.Encode(v); err != nil {
		return fmt.Errorf("write to worker %d: %w", p.idx, err)
	}
	return nil
}

// stop closes the worker's stdin (it then shuts down) and kills it if it
// has not exited after killGrace.
func (p *workerProc) stop() {
	p.mu.Lock()
	_ = p.stdin.Close()
	p.mu.Unlock()
	select {
	case <-p.exited:
	case <-time.After(killGrace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// lineTail keeps the last lines a worker logged and passes each to the
// coordinator's log at debug level.
type lineTail struct {
	mu     sync.Mutex
	max    int
	lines  []string
	part   []byte
	log    *slog.Logger
	worker int
}

func (t *lineTail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part = append(t.part, b...)
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		line := string(t.part[:i])
		t.part = t.part[i+1:]
		t.log.Debug("worker log", "worker", t.worker, "line", line)
		t.lines = append(t.lines, line)
		if len(t.lines) > t.max {
			t.lines = t.lines[1:]
		}
	}
	if len(t.part) > 4096 { // a line without end: keep it bounded
		t.part = t.part[:0]
	}
	return len(b), nil
}

// String is the kept lines, for an error message ("" when none).
func (t *lineTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return ""
	}
	return "; its last log lines:\n  " + strings.Join(t.lines, "\n  ")
}
