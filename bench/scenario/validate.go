package scenario

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// Defaults of the format; bench/README.md repeats them.
const (
	DefaultJoinsPerSecond = 1000
	DefaultDrain          = 10 * time.Second
	DefaultChatRate       = 0.5
	DefaultChatText       = "bench 弹幕"
	DefaultLikeRate       = 1
	DefaultGift           = "rose"
	DefaultGiftRetry      = 3 * time.Second
	DefaultLatencyP99     = 2 * time.Second
	DefaultConnectSuccess = 0.999
	DefaultReconnectP99   = 10 * time.Second
	DefaultMaxLossyDrop   = 0.01
	DefaultConnsPerWorker = 18000
	DefaultDialTimeout    = 10 * time.Second
	DefaultDialsInFlight  = 64
	DefaultReconnectBase  = 200 * time.Millisecond
	DefaultReconnectCap   = 10 * time.Second
	// trafficSettle is the pause between the planned end of the ramp and the
	// first chat, so viewers that joined on time see all of the traffic.
	trafficSettle = 2 * time.Second
)

// Bounds that keep a typo from asking for the impossible.
const (
	maxGroupID   = 40       // leaves room for the run prefix and "-<index>" in a 64-byte room id
	maxPrefix    = 20       // idem
	maxViewers   = 10000000 // ten million: far above what one bench machine can hold
	maxWorkers   = 256      // processes; more only thrashes the scheduler
	maxRate      = 10000    // msgs/s per sender or gifts/s per room
	maxDrain     = 10 * time.Minute
	maxDialsInFl = 10000
)

func (s *Scenario) setDefaults() {
	if s.Drain == 0 {
		s.Drain = Duration(DefaultDrain)
	}
	if s.Ramp.JoinsPerSecond == 0 {
		s.Ramp.JoinsPerSecond = DefaultJoinsPerSecond
	}
	for i := range s.Rooms {
		g := &s.Rooms[i]
		if g.Count == 0 {
			g.Count = 1
		}
		g.Chat.defaults()
		g.Likes.defaults()
		g.Gifts.defaults()
	}
	s.Chat.defaults()
	s.Likes.defaults()
	s.Gifts.defaults()
	if s.TrafficStart == 0 {
		s.TrafficStart = Duration(s.RampTime() + trafficSettle)
	}
	slo := &s.SLO
	if slo.LatencyP99.Lossy == 0 {
		slo.LatencyP99.Lossy = Duration(DefaultLatencyP99)
	}
	if slo.LatencyP99.Reliable == 0 {
		slo.LatencyP99.Reliable = Duration(DefaultLatencyP99)
	}
	if slo.ConnectSuccess == 0 {
		slo.ConnectSuccess = DefaultConnectSuccess
	}
	if slo.ReconnectP99 == 0 {
		slo.ReconnectP99 = Duration(DefaultReconnectP99)
	}
	if slo.MaxLossyDrop == 0 {
		slo.MaxLossyDrop = DefaultMaxLossyDrop
	}
	if slo.GiftsAcked == 0 {
		slo.GiftsAcked = 1
	}
	c := &s.Client
	if c.ConnsPerWorker == 0 {
		c.ConnsPerWorker = DefaultConnsPerWorker
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = Duration(DefaultDialTimeout)
	}
	if c.DialsInFlight == 0 {
		c.DialsInFlight = DefaultDialsInFlight
	}
	if c.ReconnectBase == 0 {
		c.ReconnectBase = Duration(DefaultReconnectBase)
	}
	if c.ReconnectCap == 0 {
		c.ReconnectCap = Duration(DefaultReconnectCap)
	}
}

func (c *Chat) defaults() {
	if c == nil {
		return
	}
	if c.Rate == 0 {
		c.Rate = DefaultChatRate
	}
	if c.Role == "" {
		c.Role = proto.RoleViewer
	}
	if c.Text == "" {
		c.Text = DefaultChatText
	}
}

func (l *Likes) defaults() {
	if l == nil {
		return
	}
	if l.Rate == 0 {
		l.Rate = DefaultLikeRate
	}
	if l.Count == 0 {
		l.Count = 1
	}
}

func (g *Gifts) defaults() {
	if g == nil {
		return
	}
	if g.Senders == 0 && g.Rate > 0 {
		g.Senders = 1
	}
	if g.Gift == "" {
		g.Gift = DefaultGift
	}
	if g.Count == 0 {
		g.Count = 1
	}
	if g.Retry == 0 {
		g.Retry = Duration(DefaultGiftRetry)
	}
}

// Overrides are the command-line flags that replace parts of the file.
type Overrides struct {
	Targets  []string      // --target (repeatable): replaces targets
	Secret   string        // --secret: replaces secret
	Duration time.Duration // --duration: replaces duration
	Metrics  []string      // --metrics (repeatable): replaces metrics
	Workers  int           // --workers: replaces client.workers
}

// Override applies o; zero fields leave the file's values.
func (s *Scenario) Override(o Overrides) {
	if len(o.Targets) > 0 {
		s.Targets = append([]string(nil), o.Targets...)
	}
	if o.Secret != "" {
		s.Secret = o.Secret
	}
	if o.Duration > 0 {
		s.Duration = Duration(o.Duration)
	}
	if len(o.Metrics) > 0 {
		s.Metrics = append([]string(nil), o.Metrics...)
	}
	if o.Workers > 0 {
		s.Client.Workers = o.Workers
	}
}

// TotalViewers is the number of viewers over all rooms.
func (s *Scenario) TotalViewers() int {
	n := 0
	for _, g := range s.Rooms {
		n += g.Count * g.Viewers
	}
	return n
}

// RampTime is how long the ramp takes at its planned rate.
func (s *Scenario) RampTime() time.Duration {
	if s.Ramp.JoinsPerSecond <= 0 {
		return 0
	}
	return time.Duration(float64(s.TotalViewers()) / s.Ramp.JoinsPerSecond * float64(time.Second))
}

// Validate checks every field; the error names the field's path and line.
func (s *Scenario) Validate() error {
	v := validator{s: s}
	s.validate(&v)
	return v.err
}

type validator struct {
	s   *Scenario
	err error
}

// fail records the first error only: one clear message beats a wall of them.
func (v *validator) fail(path, format string, args ...any) {
	if v.err != nil {
		return
	}
	v.err = &FieldError{File: v.s.file, Path: path, Line: lineOf(v.s.src, path), Msg: fmt.Sprintf(format, args...)}
}

func (v *validator) check(ok bool, path, format string, args ...any) {
	if !ok {
		v.fail(path, format, args...)
	}
}

func (s *Scenario) validate(v *validator) {
	v.check(len(s.Targets) > 0, "targets", "at least one edge URL is required (in the file or with --target)")
	for i, t := range s.Targets {
		if _, _, err := ParseTarget(t); err != nil {
			v.fail(fmt.Sprintf("targets[%d]", i), "%v", err)
		}
	}
	v.check(s.Secret != "", "secret", "required to mint viewers' tokens (in the file, with --secret or $DANMAKU_SECRET)")
	for i, m := range s.Metrics {
		u, err := url.Parse(m)
		v.check(err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "",
			fmt.Sprintf("metrics[%d]", i), "%q is not an http(s):// URL", m)
	}
	if s.RoomPrefix != nil {
		p := *s.RoomPrefix
		v.check(len(p) <= maxPrefix && (p == "" || proto.ValidRoom(p)), "room_prefix",
			"must be at most %d characters of A-Z a-z 0-9 _ -", maxPrefix)
	}
	v.check(s.Duration > 0, "duration", "required, e.g. 60s")
	v.check(s.Ramp.JoinsPerSecond > 0 && s.Ramp.JoinsPerSecond <= 1e6, "ramp.joins_per_second",
		"must be in (0, 1000000], got %g", s.Ramp.JoinsPerSecond)
	v.check(s.Drain <= Duration(maxDrain), "drain", "at most %s", maxDrain)
	s.validateRooms(v)
	if s.Duration > 0 && s.TrafficStart >= s.Duration {
		v.fail("traffic_start", "traffic starts at %s but the run lasts %s (the ramp of %d viewers at %g joins/s takes %s): raise duration or ramp.joins_per_second",
			s.TrafficStart, s.Duration, s.TotalViewers(), s.Ramp.JoinsPerSecond, s.RampTime().Round(time.Millisecond))
	}
	v.chat("chat", &s.Chat)
	v.likes("likes", &s.Likes)
	v.gifts("gifts", &s.Gifts)
	for i := range s.Steps {
		s.validateStep(v, i)
	}
	s.validateSLO(v)
	s.validateClient(v)
}

func (s *Scenario) validateRooms(v *validator) {
	v.check(len(s.Rooms) > 0, "rooms", "at least one room group is required")
	seen := map[string]bool{}
	for i := range s.Rooms {
		g := &s.Rooms[i]
		p := fmt.Sprintf("rooms[%d]", i)
		v.check(g.ID != "" && len(g.ID) <= maxGroupID && proto.ValidRoom(g.ID), p+".id",
			"must be 1-%d characters of A-Z a-z 0-9 _ -, got %q", maxGroupID, g.ID)
		v.check(!seen[g.ID], p+".id", "%q is used by an earlier group", g.ID)
		seen[g.ID] = true
		v.check(g.Count >= 1 && g.Count <= maxViewers, p+".count", "must be at least 1, got %d", g.Count)
		v.check(g.Viewers >= 1 && g.Viewers <= maxViewers, p+".viewers", "must be at least 1, got %d", g.Viewers)
		if g.Chat != nil {
			v.chat(p+".chat", g.Chat)
		}
		if g.Likes != nil {
			v.likes(p+".likes", g.Likes)
		}
		if g.Gifts != nil {
			v.gifts(p+".gifts", g.Gifts)
		}
	}
	if v.err == nil {
		n := s.TotalViewers()
		v.check(n <= maxViewers, "rooms", "%d viewers in all, the bench holds at most %d", n, maxViewers)
	}
}

func (v *validator) chat(p string, c *Chat) {
	v.check(c.Senders >= 0 && c.Senders <= 1, p+".senders", "a fraction of viewers in [0, 1], got %g", c.Senders)
	v.check(c.Rate > 0 && c.Rate <= maxRate, p+".rate", "must be in (0, %d] messages/s per sender, got %g", maxRate, c.Rate)
	v.check(c.Role.Valid() && c.Role != proto.RoleGuest, p+".role", "one of viewer, vip, moderator, streamer, admin, got %q", c.Role)
	v.check(proto.CheckText(c.Text, proto.MaxTextRunes) == nil, p+".text",
		"1-%d runes of one line of valid text, got %q", proto.MaxTextRunes, c.Text)
}

func (v *validator) likes(p string, l *Likes) {
	v.check(l.Senders >= 0 && l.Senders <= 1, p+".senders", "a fraction of viewers in [0, 1], got %g", l.Senders)
	v.check(l.Rate > 0 && l.Rate <= maxRate, p+".rate", "must be in (0, %d] messages/s per sender, got %g", maxRate, l.Rate)
	v.check(l.Count >= 1 && l.Count <= proto.MaxLikeCount, p+".count", "must be in [1, %d], got %d", proto.MaxLikeCount, l.Count)
}

func (v *validator) gifts(p string, g *Gifts) {
	v.check(g.Rate >= 0 && g.Rate <= maxRate, p+".rate", "must be in [0, %d] gifts/s per room, got %g", maxRate, g.Rate)
	v.check(g.Senders >= 0, p+".senders", "must not be negative, got %d", g.Senders)
	v.check(g.Rate == 0 || g.Senders > 0, p+".senders", "gifts need at least one sender per room")
	v.check(g.Gift != "" && len(g.Gift) <= proto.MaxGiftIDLen, p+".gift", "1-%d bytes, got %q", proto.MaxGiftIDLen, g.Gift)
	v.check(g.Count >= 1 && g.Count <= proto.MaxGiftCount, p+".count", "must be in [1, %d], got %d", proto.MaxGiftCount, g.Count)
	v.check(g.Retry > 0, p+".retry", "must be positive")
}

func (s *Scenario) validateStep(v *validator, i int) {
	st := &s.Steps[i]
	p := fmt.Sprintf("steps[%d]", i)
	v.check(st.At < s.Duration, p+".at", "%s is not before the end of the run (%s)", st.At, s.Duration)
	switch {
	case st.Drop != 0 && st.Scale != nil:
		v.fail(p, "a step either drops connections or scales traffic, not both: split it in two")
	case st.Drop != 0:
		v.check(st.Drop > 0 && st.Drop <= 1, p+".drop", "a fraction of connected viewers in (0, 1], got %g", st.Drop)
		v.check(st.For == 0, p+".for", "only scale steps last for a while; a drop is instantaneous")
	case st.Scale != nil:
		v.check(st.Reconnect == nil, p+".reconnect", "only drop steps reconnect")
		for _, f := range []struct {
			name string
			x    *float64
		}{{"chat", st.Scale.Chat}, {"likes", st.Scale.Likes}, {"gifts", st.Scale.Gifts}} {
			if f.x != nil {
				v.check(*f.x >= 0 && *f.x <= 1000, p+".scale."+f.name, "a multiplier in [0, 1000], got %g", *f.x)
			}
		}
	default:
		v.fail(p, "a step needs drop (a fraction of connections to cut) or scale (traffic multipliers)")
	}
}

func (s *Scenario) validateSLO(v *validator) {
	o := &s.SLO
	v.check(o.ConnectSuccess > 0 && o.ConnectSuccess <= 1, "slo.connect_success", "a ratio in (0, 1], got %g", o.ConnectSuccess)
	v.check(o.MaxLossyDrop > 0 && o.MaxLossyDrop <= 1, "slo.max_lossy_drop", "a ratio in (0, 1], got %g", o.MaxLossyDrop)
	v.check(o.GiftsAcked > 0 && o.GiftsAcked <= 1, "slo.gifts_acked", "a ratio in (0, 1], got %g", o.GiftsAcked)
	v.check(o.ExactlyOnce == nil || *o.ExactlyOnce, "slo.exactly_once",
		"cannot be relaxed: every acknowledged gift must reach every viewer exactly once")
}

func (s *Scenario) validateClient(v *validator) {
	c := &s.Client
	v.check(c.Workers >= 0 && c.Workers <= maxWorkers, "client.workers", "must be in [0, %d], got %d", maxWorkers, c.Workers)
	v.check(c.ConnsPerWorker >= 1, "client.conns_per_worker", "must be at least 1, got %d", c.ConnsPerWorker)
	v.check(c.DialTimeout > 0, "client.dial_timeout", "must be positive")
	v.check(c.DialsInFlight >= 1 && c.DialsInFlight <= maxDialsInFl, "client.dials_in_flight",
		"must be in [1, %d], got %d", maxDialsInFl, c.DialsInFlight)
	v.check(c.ReconnectBase > 0, "client.reconnect_base", "must be positive")
	v.check(c.ReconnectCap >= c.ReconnectBase, "client.reconnect_cap", "must be at least reconnect_base (%s)", c.ReconnectBase)
	if v.err == nil && c.Workers > 0 {
		need := (s.TotalViewers() + c.ConnsPerWorker - 1) / c.ConnsPerWorker
		v.check(c.Workers >= need, "client.workers", "%d workers cannot hold %d viewers at %d connections each: use at least %d (or 0 for automatic)",
			c.Workers, s.TotalViewers(), c.ConnsPerWorker, need)
	}
}

// Transport is how a target is spoken to.
type Transport string

// Transports.
const (
	WebSocket Transport = "ws"  // one binary WebSocket message per frame
	TCP       Transport = "tcp" // "DMK\x01" preamble, then length-prefixed frames
)

// ParseTarget checks an edge URL and returns its transport and host:port.
func ParseTarget(target string) (Transport, string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", "", fmt.Errorf("%q is not a URL: %v", target, err)
	}
	var tr Transport
	switch strings.ToLower(u.Scheme) {
	case "ws":
		tr = WebSocket
	case "tcp":
		tr = TCP
	case "wss":
		return "", "", fmt.Errorf("%q: wss:// is not supported by the bench; point it at the edges' ws:// port (TLS ends at the load balancer)", target)
	default:
		return "", "", fmt.Errorf("%q: the scheme must be ws:// or tcp://", target)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		return "", "", fmt.Errorf("%q: needs host:port", target)
	}
	return tr, u.Host, nil
}
