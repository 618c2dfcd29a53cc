package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/danmaku/danmaku/edge"
	"github.com/danmaku/danmaku/fanout"
	"github.com/danmaku/danmaku/fanout/redisstore"
	"github.com/danmaku/danmaku/media"
	"github.com/danmaku/danmaku/room/manager"
)

func runServe(args []string) int {
	opts, err := loadServeConfig(args, os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "danmaku serve: %v\n", err)
		return 2
	}
	if opts.printConfig {
		b, err := opts.cfg.printable()
		if err != nil {
			fmt.Fprintf(os.Stderr, "danmaku serve: %v\n", err)
			return 2
		}
		os.Stdout.Write(b)
		return 0
	}
	level, _ := parseLevel(opts.cfg.LogLevel)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if opts.devSecret {
		log.Warn("no --secret: using a random development key; tokens from `danmaku token` will not verify unless it is given the same key",
			"secret", opts.cfg.Secret)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, opts.cfg, log, os.Stdout); err != nil {
		log.Error("serve failed", "err", err)
		return 1
	}
	return 0
}

// node is one running `danmaku serve`: every component, wired.
type node struct {
	cfg   serveConfig
	log   *slog.Logger
	reg   *prometheus.Registry
	edge  *edge.Server
	mgr   *manager.Manager
	bus   *fanout.Node
	store manager.Store
	redis *redisstore.Store // nil in memory mode
	media *media.Relay
}

// serve runs a node until ctx is done, then drains it: rooms are handed
// over, every connection is asked to reconnect elsewhere, the rest closed at
// the drain deadline. It prints where it listens on out.
func serve(ctx context.Context, cfg serveConfig, log *slog.Logger, out io.Writer) (err error) {
	n := &node{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()

	var own fanout.Ownership
	if cfg.Redis != "" {
		n.redis, err = redisstore.New(cfg.Store, redisstore.WithLogger(log), redisstore.WithRegisterer(n.reg))
		if err != nil {
			return fmt.Errorf("redis store: %w", err)
		}
		closers = append(closers, func() { n.redis.Close() })
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = n.redis.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("redis %s: %w", maskURL(cfg.Redis), err)
		}
		if own, err = fanout.NewRedisOwnership(n.redis.Client(), cfg.Store.Prefix, cfg.NodeID, cfg.LeaseTTL); err != nil {
			return fmt.Errorf("ownership: %w", err)
		}
		n.store = n.redis
	} else {
		n.store = manager.NewMemoryStore()
		own = fanout.NewLocalOwnership(cfg.NodeID)
	}

	n.bus, err = fanout.New(cfg.Fanout, own, fanout.WithLogger(log), fanout.WithRegisterer(n.reg), fanout.WithState(n.store))
	if err != nil {
		return fmt.Errorf("fanout: %w", err)
	}
	closers = append(closers, func() { n.bus.Close() })

	mopts := []manager.Option{manager.WithLogger(log), manager.WithRegisterer(n.reg)}
	if cfg.Webhook.URL != "" {
		mopts = append(mopts, manager.WithGiftAuthorizer(newGiftWebhook(cfg.Webhook, cfg.HTTP.MaxBody)))
	}
	n.mgr, err = manager.New(cfg.Manager, n.store, n.bus, mopts...)
	if err != nil {
		return fmt.Errorf("room manager: %w", err)
	}
	closers = append(closers, n.mgr.Close)

	n.edge, err = edge.New(cfg.Edge, n.bus, edge.WithLogger(log), edge.WithRegisterer(n.reg))
	if err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	if err := n.bus.Start(n.mgr, n.edge); err != nil {
		return err
	}
	edgeDone := make(chan error, 1)
	go func() { edgeDone <- n.edge.Run(context.WithoutCancel(ctx)) }()
	select {
	case <-n.edge.Ready():
	case <-ctx.Done():
		return ctx.Err()
	}
	if n.edge.Addr() == nil {
		return <-edgeDone
	}
	closers = append(closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.edge.Stop(sctx)
		<-edgeDone
	})

	n.media, err = media.New(cfg.Media, []byte(cfg.Secret), &roomNotifier{n: n}, media.WithLogger(log), media.WithRegisterer(n.reg))
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	if err := n.media.Start(ctx); err != nil {
		return fmt.Errorf("media: %w", err)
	}
	closers = append(closers, func() { n.media.Close() })
	n.bus.SetSurvey(n.answerSurvey) // every component is up: admin surveys may read them

	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", cfg.HTTP.Addr, err)
	}
	hs := &http.Server{Handler: n.httpHandler(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	httpDone := make(chan error, 1)
	go func() { httpDone <- hs.Serve(ln) }()
	closers = append(closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	})

	n.printBanner(out, ln.Addr().String())
	log.Info("serving", "node", cfg.NodeID, "edge", n.edge.Addr().String(), "http", ln.Addr().String(),
		"nats", n.bus.ClientURL(), "nats_cluster", n.bus.ClusterURL(), "store", n.storeName(), "max_conns", n.edge.MaxConns())

	select {
	case <-ctx.Done():
	case err := <-edgeDone:
		return fmt.Errorf("edge stopped: %w", err)
	case err := <-httpDone:
		return fmt.Errorf("http stopped: %w", err)
	}
	log.Info("draining", "timeout", cfg.Edge.DrainTimeout)
	dctx, cancel := context.WithTimeout(context.Background(), cfg.Edge.DrainTimeout+5*time.Second)
	defer cancel()
	if err := n.bus.Drain(dctx); err != nil {
		log.Warn("hand rooms over", "err", err)
	}
	if err := n.edge.Drain(dctx); err != nil {
		log.Warn("drain connections", "err", err)
	}
	log.Info("drained")
	return nil
}

func (n *node) storeName() string {
	if n.redis != nil {
		return "redis " + maskURL(n.cfg.Redis)
	}
	return "memory"
}

// printBanner tells whoever ran `make run` how to connect.
func (n *node) printBanner(out io.Writer, httpAddr string) {
	edgeAddr := n.edge.Addr().String()
	fmt.Fprintf(out, "danmaku node %s\n", n.cfg.NodeID)
	fmt.Fprintf(out, "  edge       ws://%s/ws  tcp://%s\n", edgeAddr, edgeAddr)
	fmt.Fprintf(out, "  http       http://%s  (/healthz /readyz /metrics /api/v1/...)\n", httpAddr)
	if n.cfg.Demo {
		fmt.Fprintf(out, "  demo page  http://%s/\n", httpAddr)
	}
	if a := n.media.RTMPAddr(); a != nil {
		fmt.Fprintf(out, "  rtmp       rtmp://%s/live/<room>  (stream key: a streamer token)\n", a)
	}
	if u := n.bus.ClientURL(); u != "" && n.cfg.Fanout.Embedded.ClientAddr != "" {
		fmt.Fprintf(out, "  nats       %s\n", u)
	}
	if u := n.bus.ClusterURL(); u != "" {
		fmt.Fprintf(out, "  nats route %s\n", u)
	}
	secret := "<your --secret>"
	if n.cfg.Demo {
		secret = n.cfg.Secret
	}
	fmt.Fprintf(out, "try:\n  T=$(danmaku token --secret %s --user alice)\n", shellQuote(secret))
	fmt.Fprintf(out, "  danmaku listen --url ws://%s/ws --token $T --room lobby &\n", edgeAddr)
	fmt.Fprintf(out, "  danmaku send --url tcp://%s --token $T --room lobby 'hello'\n", edgeAddr)
}

// shellSafe is what a shell word may hold unquoted.
var shellSafe = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log_level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
