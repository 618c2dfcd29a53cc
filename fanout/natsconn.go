package fanout

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// NATS client settings that are not worth a Config field, with their reasons.
const (
	// embeddedReadyTimeout bounds the embedded server's start (measured
	// here: 23–31 ms).
	embeddedReadyTimeout = 10 * time.Second
	// pingInterval and maxPingsOut detect a dead server whose TCP connection
	// did not close (a partition): within ~15 s instead of nats.go's 4 min.
	pingInterval = 5 * time.Second
	maxPingsOut  = 3
	// ownerQueue is the queue group of owners on P.in.<room>: if two nodes
	// ever both believe they own a room (see OWNERSHIP.md), each request
	// still reaches only one of them.
	ownerQueue = "owner"
)

// startEmbedded starts the in-process nats-server of cfg.
func startEmbedded(id string, e EmbeddedConfig, log *slog.Logger) (*server.Server, error) {
	opts := &server.Options{
		ServerName: "danmaku-" + id,
		NoSigs:     true, // the binary owns signals
		MaxPayload: int32(e.MaxPayload),
	}
	switch {
	case e.ClientAddr != "":
		host, port, err := splitHostPort(e.ClientAddr)
		if err != nil {
			return nil, fmt.Errorf("embedded nats client address %q: %w", e.ClientAddr, err)
		}
		opts.Host, opts.Port = host, port
	case e.ClusterAddr != "":
		// nats-server starts routing only once its client listener is up
		// (server.go, StartRouting): a clustered server must listen, so it
		// does on loopback, on a free port.
		opts.Host, opts.Port = "127.0.0.1", -1
	default:
		opts.DontListen = true
	}
	if e.ClusterAddr != "" {
		host, port, err := splitHostPort(e.ClusterAddr)
		if err != nil {
			return nil, fmt.Errorf("embedded nats cluster address %q: %w", e.ClusterAddr, err)
		}
		opts.Cluster = server.ClusterOpts{Name: e.ClusterName, Host: host, Port: port}
		if len(e.Routes) > 0 {
			opts.Routes = server.RoutesFromStr(strings.Join(e.Routes, ","))
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	srv.SetLoggerV2(natsLogger{log.With("component", "nats-server")}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(embeddedReadyTimeout) {
		srv.Shutdown()
		return nil, errors.New("embedded nats: not ready within 10s")
	}
	return srv, nil
}

// natsLogger passes nats-server's warnings and errors to slog; its notices
// (startup banners, route churn) go to debug.
type natsLogger struct{ l *slog.Logger }

func (l natsLogger) Noticef(f string, a ...any) { l.l.Debug(fmt.Sprintf(f, a...)) }
func (l natsLogger) Warnf(f string, a ...any)   { l.l.Warn(fmt.Sprintf(f, a...)) }
func (l natsLogger) Fatalf(f string, a ...any)  { l.l.Error(fmt.Sprintf(f, a...)) }
func (l natsLogger) Errorf(f string, a ...any)  { l.l.Error(fmt.Sprintf(f, a...)) }
func (l natsLogger) Debugf(f string, a ...any)  { l.l.Debug(fmt.Sprintf(f, a...)) }
func (l natsLogger) Tracef(f string, a ...any)  { l.l.Debug(fmt.Sprintf(f, a...)) }

// connect opens the node's one NATS connection.
func (n *Node) connect() (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("danmaku-" + n.id),
		// Our own messages never come back: what this node can serve
		// itself it serves in-process (see doc.go), so an echo would be a
		// duplicate.
		nats.NoEcho(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(n.cfg.ReconnectWait),
		nats.ReconnectBufSize(n.cfg.ReconnectBufSize),
		nats.Timeout(n.cfg.ConnectTimeout),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.ErrorHandler(n.onAsyncError),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			n.met.natsEvents.WithLabelValues("disconnected").Inc()
			n.log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			n.met.natsEvents.WithLabelValues("reconnected").Inc()
			n.log.Info("nats reconnected", "server", c.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) { n.met.natsEvents.WithLabelValues("closed").Inc() }),
	}
	if n.srv != nil {
		opts = append(opts, nats.InProcessServer(n.srv))
		nc, err := nats.Connect(n.srv.ClientURL(), opts...)
		if err != nil {
			return nil, fmt.Errorf("connect to embedded nats: %w", err)
		}
		return nc, nil
	}
	// An external NATS that is down at start must not keep the node from
	// serving its local rooms: connect in the background; Healthy reports it.
	opts = append(opts, nats.RetryOnFailedConnect(true))
	nc, err := nats.Connect(strings.Join(n.cfg.NATSURLs, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", strings.Join(n.cfg.NATSURLs, ","), err)
	}
	return nc, nil
}

// onAsyncError counts nats.go's asynchronous errors. Slow-consumer episodes
// are reported here once per episode; the dropped messages themselves are
// counted from Subscription.Dropped by collectDrops.
func (n *Node) onAsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrSlowConsumer) {
		n.met.natsEvents.WithLabelValues("slow_consumer").Inc()
		subject := ""
		if sub != nil {
			subject = sub.Subject
		}
		n.log.Warn("nats slow consumer: messages dropped", "subject", subject)
		return
	}
	n.met.natsEvents.WithLabelValues("error").Inc()
	n.log.Warn("nats async error", "err", err)
}

// subscription is a NATS subscription with its kind, for drop accounting.
type subscription struct {
	sub     *nats.Subscription
	kind    kind
	dropped int // last Dropped() seen
}

// subscribe subscribes with the kind's pending limits (queue "" = plain).
func (n *Node) subscribe(k kind, subject, queue string, lim PendingLimit, h nats.MsgHandler) (*subscription, error) {
	var sub *nats.Subscription
	var err error
	if queue == "" {
		sub, err = n.nc.Subscribe(subject, h)
	} else {
		sub, err = n.nc.QueueSubscribe(subject, queue, h)
	}
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", subject, err)
	}
	if err := sub.SetPendingLimits(lim.Msgs, lim.Bytes); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("pending limits of %s: %w", subject, err)
	}
	s := &subscription{sub: sub, kind: k}
	n.subsMu.Lock()
	n.subs[s] = struct{}{}
	n.subsMu.Unlock()
	return s, nil
}

// unsubscribe removes s, counting its last drops first.
func (n *Node) unsubscribe(s *subscription) {
	if s == nil {
		return
	}
	n.subsMu.Lock()
	n.countDrops(s)
	delete(n.subs, s)
	n.subsMu.Unlock()
	_ = s.sub.Unsubscribe() // fails only when already closed
}

// collectDrops adds every subscription's new slow-consumer drops to the
// drop counter.
func (n *Node) collectDrops() {
	n.subsMu.Lock()
	defer n.subsMu.Unlock()
	for s := range n.subs {
		n.countDrops(s)
	}
}

// countDrops: n.subsMu held.
func (n *Node) countDrops(s *subscription) {
	d, err := s.sub.Dropped()
	if err != nil || d <= s.dropped {
		return
	}
	n.met.drops.WithLabelValues(s.kind.String(), reasonSlowConsumer).Add(float64(d - s.dropped))
	s.dropped = d
}
