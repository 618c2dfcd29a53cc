// Command fakeserve runs the bench's test double of an edge as a process, to
// measure the bench itself at scale (several of them on loopback stand in
// for a cluster: with -gen-every they publish the same reliable lane, so
// viewers spread over them check exactly-once as against one room). It is
// not the danmaku server and its numbers are not the product's.
//
//	go build -o /tmp/fakeserve ./bench/internal/fakeedge/fakeserve
//	/tmp/fakeserve -addr 127.0.0.1:7101 -secret s -tick 1s -gen-every 1s -gen-chats 10 -origin 1700000000000
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/danmaku/danmaku/bench/internal/fakeedge"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7100", "edge address")
	metrics := flag.String("metrics", "127.0.0.1:0", "metrics address")
	secret := flag.String("secret", "", "token key")
	tick := flag.Duration("tick", 100*time.Millisecond, "batch interval")
	writers := flag.Int("writers", 4, "goroutines writing one batch")
	maxConns := flag.Int("max-conns", 19500, "connection cap (open files)")
	every := flag.Duration("gen-every", 0, "publish a generated gift this often (0 = off)")
	chats := flag.Int("gen-chats", 0, "generated chat entries per tick")
	origin := flag.Int64("origin", 0, "generator origin, Unix ms (the same for every process)")
	genFor := flag.Duration("gen-for", 0, "stop generating this long after the origin (0 = never)")
	hb := flag.Int("hb", 25000, "heartbeat announced, ms")
	flag.Parse()
	cfg := fakeedge.Config{Secret: []byte(*secret), Addr: *addr, MetricsAddr: *metrics, Tick: *tick,
		Writers: *writers, MaxConns: *maxConns, Heartbeat: *hb}
	if *every > 0 {
		cfg.Generate = &fakeedge.Generator{Origin: time.UnixMilli(*origin), Every: *every, Chats: *chats}
		if *genFor > 0 {
			cfg.Generate.Until = cfg.Generate.Origin.Add(*genFor)
		}
	}
	s, err := fakeedge.Start(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeserve:", err)
		os.Exit(2)
	}
	fmt.Printf("fakeserve on %s, metrics %s\n", s.Addr(), s.MetricsURL())
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	<-c
	s.Close()
}
