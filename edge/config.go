package edge

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/danmaku/danmaku/room/proto"
)

// Config is the edge server's configuration. DefaultConfig gives every
// default; Validate names the first bad field.
type Config struct {
	// Addr is the TCP address both transports listen on (host:port; port 0
	// picks a free port, see Server.Addr). Default "127.0.0.1:7000".
	Addr string
	// Loops is the number of gnet event loops. 0 (default) means one per CPU.
	// At most 256: the loop index is the low byte of a session id.
	Loops int
	// MaxConns caps open connections in this process; past it new ones are
	// closed at once and counted (reason server_full). 0 (default) derives it
	// from RLIMIT_NOFILE minus FDHeadroom, because gnet shuts the whole engine
	// down when accept(2) hits EMFILE. A value above that is an error in New.
	MaxConns int
	// FDHeadroom is how many file descriptors the derived MaxConns leaves for
	// everything else in the process (NATS, Redis, HTTP, logs). Default 1000;
	// never more than half the limit.
	FDHeadroom int
	// MaxConnsPerIP caps connections from one source address (reason per_ip).
	// Default 1000 (NAT gateways put many viewers behind one address); 0 = no cap.
	MaxConnsPerIP int
	// AcceptRate caps new connections per second for the process, burst equal
	// to the rate (reason accept_rate): a reconnect storm is spread instead of
	// doing every handshake and token check at once. Default 5000; 0 = no cap.
	AcceptRate int
	// HandshakeTimeout bounds TCP connect → hello answered, WebSocket upgrade
	// included (slowloris). Default 5 s.
	HandshakeTimeout time.Duration
	// Heartbeat is the ping interval announced in welcome; a connection that
	// sends nothing for two intervals is closed (code timeout). Default 25 s.
	Heartbeat time.Duration
	// MaxClientFrame is the largest client frame body (bytes), WebSocket
	// fragments reassembled. Default proto.MaxClientFrame (4 KiB).
	MaxClientFrame int
	// MaxRoomsPerConn caps rooms one connection joins at once. Default 8.
	MaxRoomsPerConn int
	// SoftCap is the outbound backlog (bytes buffered in user space for one
	// connection) past which lossy-only batches are skipped for it and
	// counted; it is told with a missed frame once below. Default 256 KiB.
	SoftCap int
	// HardCap is the outbound backlog past which the connection is closed
	// (code slow_consumer; the client resumes by seq). Default 4 MiB.
	HardCap int
	// MaxOutbound bounds the node: when the outbound backlogs of all
	// connections together pass it (sampled each scan tick), every
	// connection is held to a fair share, MaxOutbound / connections (at
	// least 64 KiB, at most HardCap; the soft cap becomes half of it), so
	// the most behind are closed slow_consumer first and memory stays near
	// MaxOutbound however many viewers fall behind at once. 0 = no node
	// limit (per-connection caps only). Default 1 GiB.
	MaxOutbound int64
	// DrainTimeout bounds Drain: connections still open after it are closed.
	// Default 30 s.
	DrainTimeout time.Duration
	// DrainJitter spreads the retry-after of drain's reconnect frames
	// uniformly over [0, DrainJitter), so a drained node's viewers do not
	// reconnect elsewhere all at once. Default 10 s.
	DrainJitter time.Duration
	// Guests lets a hello without a token in, as a read-only guest. Default false.
	Guests bool
	// Secret is the HS256 key of hello tokens. Required unless Guests is set
	// (then only guests get in).
	Secret []byte
	// NodeID names this node in sessions and in manager.Inbound.Node, so
	// replies find their way back. [A-Za-z0-9_-], ≤ 64 bytes (it is a NATS
	// subject token). Default "edge-" and 8 random hex digits.
	NodeID string
	// ConnRate is the sustained rate of client requests per connection
	// (msgs/s, pings included); excess ones are answered rate_limited without
	// being forwarded. Default 20.
	ConnRate float64
	// ConnBurst is the burst of ConnRate. Default 40.
	ConnBurst int
	// ConnAbuse closes a connection (code rate_limited) whose rejected
	// requests within one second exceed ConnAbuse × ConnRate: a flood, not a
	// burst. Default 10; 0 = never close for rate.
	ConnAbuse float64
	// ForwardQueue is the capacity of the queue between the event loops and
	// the Bus.Forward goroutines, in requests; when full, a request is
	// answered unavailable at once and counted. Default 65536.
	ForwardQueue int
	// ForwardWorkers is the number of goroutines calling Bus.Forward (rooms
	// are hashed onto them, so one room's requests stay in order). Default 4.
	ForwardWorkers int
}

// Built-in bounds that are not worth a knob.
const (
	// maxLoops: the loop index is the low byte of a session id, and gnet
	// itself stops at 256 loops.
	maxLoops = 256
	// maxHTTPHead bounds the WebSocket upgrade request head; browsers send
	// under 2 KiB, 8 KiB is what common proxies accept.
	maxHTTPHead = 8 << 10
	// minFDHeadroom: a configured MaxConns must leave at least this many
	// descriptors free, or the engine dies at EMFILE.
	minFDHeadroom = 64
)

// DefaultConfig returns the defaults documented on Config (Secret is empty:
// set it, or set Guests).
func DefaultConfig() Config {
	return Config{
		Addr:             "127.0.0.1:7000",
		FDHeadroom:       1000,
		MaxConnsPerIP:    1000,
		AcceptRate:       5000,
		HandshakeTimeout: 5 * time.Second,
		Heartbeat:        25 * time.Second,
		MaxClientFrame:   proto.MaxClientFrame,
		MaxRoomsPerConn:  8,
		SoftCap:          256 << 10,
		HardCap:          4 << 20,
		MaxOutbound:      1 << 30,
		DrainTimeout:     30 * time.Second,
		DrainJitter:      10 * time.Second,
		NodeID:           randomNodeID(),
		ConnRate:         20,
		ConnBurst:        40,
		ConnAbuse:        10,
		ForwardQueue:     65536,
		ForwardWorkers:   4,
	}
}

func randomNodeID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "edge-" + hex.EncodeToString(b[:])
}

// Validate checks every field and names the first bad one.
func (c *Config) Validate() error {
	bad := func(field, why string) error { return fmt.Errorf("edge config: %s %s", field, why) }
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return bad("Addr", fmt.Sprintf("%q is not host:port: %v", c.Addr, err))
	}
	switch {
	case c.Loops < 0 || c.Loops > maxLoops:
		return bad("Loops", fmt.Sprintf("must be 0..%d", maxLoops))
	case c.MaxConns < 0:
		return bad("MaxConns", "must be ≥ 0")
	case c.FDHeadroom < 0:
		return bad("FDHeadroom", "must be ≥ 0")
	case c.MaxConnsPerIP < 0:
		return bad("MaxConnsPerIP", "must be ≥ 0")
	case c.AcceptRate < 0:
		return bad("AcceptRate", "must be ≥ 0")
	case c.HandshakeTimeout <= 0:
		return bad("HandshakeTimeout", "must be > 0")
	case c.Heartbeat < 10*time.Millisecond:
		return bad("Heartbeat", "must be ≥ 10ms")
	case c.MaxClientFrame < 64 || c.MaxClientFrame > proto.MaxServerFrame:
		return bad("MaxClientFrame", fmt.Sprintf("must be 64..%d", proto.MaxServerFrame))
	case c.MaxRoomsPerConn < 1 || c.MaxRoomsPerConn > 255:
		return bad("MaxRoomsPerConn", "must be 1..255")
	case c.SoftCap <= 0:
		return bad("SoftCap", "must be > 0")
	case c.HardCap <= c.SoftCap:
		return bad("HardCap", "must be > SoftCap")
	case c.MaxOutbound < 0:
		return bad("MaxOutbound", "must be ≥ 0")
	case c.DrainTimeout <= 0:
		return bad("DrainTimeout", "must be > 0")
	case c.DrainJitter < 0:
		return bad("DrainJitter", "must be ≥ 0")
	case len(c.Secret) == 0 && !c.Guests:
		return bad("Secret", "is empty and Guests is off: nobody could connect")
	case !proto.ValidRoom(c.NodeID): // same alphabet and length as a room id
		return bad("NodeID", fmt.Sprintf("%q must be 1-64 of [A-Za-z0-9_-]", c.NodeID))
	case c.ConnRate <= 0:
		return bad("ConnRate", "must be > 0")
	case c.ConnBurst < 1:
		return bad("ConnBurst", "must be ≥ 1")
	case c.ConnAbuse < 0:
		return bad("ConnAbuse", "must be ≥ 0")
	case c.ForwardQueue < 1:
		return bad("ForwardQueue", "must be ≥ 1")
	case c.ForwardWorkers < 1 || c.ForwardWorkers > 256:
		return bad("ForwardWorkers", "must be 1..256")
	}
	return nil
}

// errNoFileLimit wraps a failed getrlimit.
var errNoFileLimit = errors.New("read RLIMIT_NOFILE")

// maxConns returns the connection cap for this process: the configured one,
// checked against the open-files limit, or one derived from it.
func (c *Config) maxConns() (int, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("%w: %v", errNoFileLimit, err)
	}
	limit := int(min(rl.Cur, 1<<30))
	if c.MaxConns > 0 {
		if c.MaxConns > limit-minFDHeadroom {
			return 0, fmt.Errorf("edge config: MaxConns %d leaves under %d of the %d open files free: accept would hit EMFILE, which stops gnet",
				c.MaxConns, minFDHeadroom, limit)
		}
		return c.MaxConns, nil
	}
	n := limit - min(c.FDHeadroom, limit/2)
	return max(n, 1), nil
}
