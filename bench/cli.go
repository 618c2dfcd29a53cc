package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"

	"github.com/danmaku/danmaku/bench/load"
	"github.com/danmaku/danmaku/bench/scenario"
)

// Exit codes of `danmaku bench` (a contract: scripts and CI read them).
const (
	ExitPass      = 0 // every target met
	ExitMissed    = 1 // a target missed
	ExitCannotRun = 2 // bad scenario, no target reachable, a worker failed, interrupted
)

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// Main is `danmaku bench`: it parses args (without the command name), runs
// the scenario and returns the exit code.
func Main(args []string) int {
	return mainWith(args, os.Stdout, os.Stderr)
}

func mainWith(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("scenario", "", "scenario file (YAML), required; see bench/README.md")
	var targets, metrics multiFlag
	fs.Var(&targets, "target", "edge URL, ws://host:port/ws or tcp://host:port (repeatable; replaces the file's targets)")
	secret := fs.String("secret", "", "token signing key shared with the servers (replaces the file's; default $DANMAKU_SECRET when the file has none)")
	duration := fs.Duration("duration", 0, "run length from the first dial, e.g. 90s (replaces the file's)")
	jsonOut := fs.String("json", "", "write every figure of the run to this JSON file")
	htmlOut := fs.String("html", "", "write an HTML report with charts to this file")
	fs.Var(&metrics, "metrics", "a server's Prometheus URL, http://host:port/metrics (repeatable; replaces the file's)")
	workers := fs.Int("workers", 0, "worker processes (default: enough for the open-files limit)")
	quiet := fs.Bool("quiet", false, "no progress display")
	verbose := fs.Bool("v", false, "debug logging (workers' logs included)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: danmaku bench --scenario FILE [--target URL]... [--secret S] [--duration D] [--json FILE] [--html FILE]")
		fmt.Fprintln(stderr, "\nRuns a load scenario against real edges and says pass (exit 0) or fail (exit 1); exit 2 means it could not run.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return ExitCannotRun
	}
	if *path == "" || fs.NArg() > 0 {
		fs.Usage()
		return ExitCannotRun
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	sc, err := scenario.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "danmaku bench: %v\n", err)
		return ExitCannotRun
	}
	if *secret == "" && sc.Secret == "" {
		*secret = os.Getenv("DANMAKU_SECRET")
	}
	sc.Override(scenario.Overrides{Targets: targets, Secret: *secret, Duration: *duration, Metrics: metrics, Workers: *workers})
	if err := sc.Validate(); err != nil {
		fmt.Fprintf(stderr, "danmaku bench: %v\n", err)
		return ExitCannotRun
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := Options{Logger: log}
	if !*quiet {
		opts.Progress = stderr
	}
	rep, err := RunScenario(ctx, sc, opts)
	if rep != nil {
		rep.WriteSummary(stdout)
		for _, out := range []struct {
			path  string
			write func(string) error
		}{{*jsonOut, rep.WriteJSON}, {*htmlOut, rep.WriteHTML}} {
			if out.path == "" {
				continue
			}
			if werr := out.write(out.path); werr != nil {
				fmt.Fprintf(stderr, "danmaku bench: %v\n", werr)
				err = errors.Join(err, werr)
			}
		}
	}
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "danmaku bench: %v\n", err)
		return ExitCannotRun
	case rep.Passed:
		return ExitPass
	default:
		return ExitMissed
	}
}

// ProfileEnv names a directory: when set, every worker writes a CPU profile
// there (worker-<n>.pprof), to see where the bench's own time goes.
const ProfileEnv = "DANMAKU_BENCH_CPUPROFILE"

func startProfile(dir string, worker int) (func(), error) {
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("worker-%d.pprof", worker)))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// WorkerMain is the hidden `danmaku bench-worker` subcommand: one worker
// process of a run. It reads its plan and commands as JSON lines on stdin,
// writes its stats and result as JSON lines on stdout and logs on stderr.
// It exits when the run is finished or its stdin closes.
func WorkerMain(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if len(args) > 0 {
		log.Warn("bench-worker takes no arguments; it is started by danmaku bench", "args", args)
	}
	dec := json.NewDecoder(bufio.NewReader(os.Stdin))
	var plan load.Plan
	if err := dec.Decode(&plan); err != nil {
		log.Error("read plan", "err", err)
		return ExitCannotRun
	}
	cmds := make(chan load.Command, 1)
	go func() {
		defer close(cmds)
		for {
			var c load.Command
			if err := dec.Decode(&c); err != nil {
				return // stdin closed: the coordinator is gone or aborting
			}
			cmds <- c
		}
	}()
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	enc := json.NewEncoder(out)
	var mu sync.Mutex
	emit := func(m *load.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if err := enc.Encode(m); err != nil {
			return err
		}
		return out.Flush()
	}
	if dir := os.Getenv(ProfileEnv); dir != "" {
		stopProfile, err := startProfile(dir, plan.Worker)
		if err != nil {
			log.Error("cpu profile", "err", err)
			return ExitCannotRun
		}
		defer stopProfile()
	}
	if err := load.Run(context.Background(), &plan, cmds, emit, log.With("worker", plan.Worker)); err != nil {
		if errors.Is(err, load.ErrAborted) {
			log.Info("worker stopped", "reason", err)
		} else {
			log.Error("worker failed", "err", err)
		}
		return ExitCannotRun
	}
	return ExitPass
}
