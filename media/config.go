package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Config is the media relay's configuration. DefaultConfig gives every
// default; Validate names the first bad field.
type Config struct {
	// RTMPAddr is the TCP address of the RTMP ingest (host:port; port 0 picks
	// a free port, see Relay.RTMPAddr). "" turns RTMP ingest off. Default
	// "127.0.0.1:1935" (loopback: put it on a public address deliberately).
	RTMPAddr string
	// PublicIP is the address viewers and WHIP publishers reach this host at
	// when it sits behind a 1:1 NAT (a cloud VM's public IP): it replaces the
	// local address in every host ICE candidate. "" (default) announces the
	// local interface addresses as they are.
	PublicIP string
	// UDPPortMin and UDPPortMax bound the UDP ports WebRTC sessions bind (a
	// firewall opens exactly this range). Each session takes one port per
	// gathered address. 0 and 0 (default) mean any ephemeral port. Both or
	// neither must be set, and the range must hold MaxSessions ports.
	UDPPortMin, UDPPortMax uint16
	// Interfaces lists the network interfaces host candidates are gathered
	// from (e.g. ["eth0"]). Empty (default) means every interface that is up.
	Interfaces []string
	// Loopback also gathers loopback candidates (127.0.0.1): for a server
	// and its viewers on one host (development, tests). Default false.
	Loopback bool
	// IPv6 also gathers IPv6 candidates. Default false: IPv4 only, which
	// halves the sockets per session.
	IPv6 bool
	// Guests lets WHEP viewers without a token watch (as guests). Default
	// false: every viewer presents a valid token.
	Guests bool
	// MaxStreams caps rooms with a publisher (live or connecting) on this
	// node; past it new publishers are refused (server_full). Default 100.
	MaxStreams int
	// MaxViewersPerStream caps WHEP viewers of one stream (connecting ones
	// included); past it new viewers get 503 server_full. Each viewer costs an
	// SRTP encryption of every packet. Default 500.
	MaxViewersPerStream int
	// MaxSessions caps WebRTC sessions (WHIP publishers plus WHEP viewers,
	// connecting ones included) on this node: each holds UDP sockets, so this
	// bounds file descriptors. Default 2000.
	MaxSessions int
	// MaxRTMPConns caps open RTMP connections, handshaking ones included
	// (past it a new connection is closed at once). Default 64.
	MaxRTMPConns int
	// ConnectTimeout bounds a WebRTC session's ICE and DTLS setup: a session
	// not connected by then is closed (and its slot freed). Default 30 s.
	ConnectTimeout time.Duration
	// ICEDisconnectedTimeout is how long a connected session may receive
	// nothing before it counts as disconnected. Default 5 s.
	ICEDisconnectedTimeout time.Duration
	// ICEFailedTimeout is how long a disconnected session may stay so before
	// it fails and is closed: a publisher that vanished without DELETE ends
	// its stream after ICEDisconnectedTimeout + ICEFailedTimeout. Default 5 s.
	ICEFailedTimeout time.Duration
	// RTMPTimeout bounds each RTMP phase: TCP accept → publish command, then
	// publish → tracks known (the library reads 2 s of media to find them),
	// then any silence while publishing. Default 10 s.
	RTMPTimeout time.Duration
	// AllowOrigin, when not "", is sent as Access-Control-Allow-Origin on
	// the WHIP/WHEP endpoints (and OPTIONS preflights are answered), so a
	// browser player on another origin can use them. "*" is safe: auth is a
	// bearer token, never a cookie. Default "" (no CORS headers).
	AllowOrigin string
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		RTMPAddr:               "127.0.0.1:1935",
		MaxStreams:             100,
		MaxViewersPerStream:    500,
		MaxSessions:            2000,
		MaxRTMPConns:           64,
		ConnectTimeout:         30 * time.Second,
		ICEDisconnectedTimeout: 5 * time.Second,
		ICEFailedTimeout:       5 * time.Second,
		RTMPTimeout:            10 * time.Second,
	}
}

// Validate reports the first field that is out of range.
func (c Config) Validate() error {
	if c.RTMPAddr != "" {
		if _, _, err := net.SplitHostPort(c.RTMPAddr); err != nil {
			return fmt.Errorf("media config: RTMPAddr %q: %w", c.RTMPAddr, err)
		}
	}
	if c.PublicIP != "" {
		if _, err := netip.ParseAddr(c.PublicIP); err != nil {
			return fmt.Errorf("media config: PublicIP %q is not an IP address", c.PublicIP)
		}
	}
	if (c.UDPPortMin == 0) != (c.UDPPortMax == 0) {
		return errors.New("media config: UDPPortMin and UDPPortMax must both be set or both be 0")
	}
	if c.UDPPortMin > c.UDPPortMax {
		return fmt.Errorf("media config: UDPPortMin %d above UDPPortMax %d", c.UDPPortMin, c.UDPPortMax)
	}
	if c.UDPPortMin != 0 && int(c.UDPPortMax-c.UDPPortMin)+1 < c.MaxSessions {
		return fmt.Errorf("media config: UDPPortMin..UDPPortMax holds %d ports, fewer than MaxSessions %d",
			int(c.UDPPortMax-c.UDPPortMin)+1, c.MaxSessions)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"MaxStreams", c.MaxStreams}, {"MaxViewersPerStream", c.MaxViewersPerStream},
		{"MaxSessions", c.MaxSessions}, {"MaxRTMPConns", c.MaxRTMPConns},
	} {
		if f.v < 1 {
			return fmt.Errorf("media config: %s must be at least 1, got %d", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"ConnectTimeout", c.ConnectTimeout}, {"ICEDisconnectedTimeout", c.ICEDisconnectedTimeout},
		{"ICEFailedTimeout", c.ICEFailedTimeout}, {"RTMPTimeout", c.RTMPTimeout},
	} {
		if f.v <= 0 {
			return fmt.Errorf("media config: %s must be positive, got %v", f.name, f.v)
		}
	}
	return nil
}
