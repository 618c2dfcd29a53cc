package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/danmaku/danmaku/edge"
	"github.com/danmaku/danmaku/fanout"
	"github.com/danmaku/danmaku/fanout/redisstore"
	"github.com/danmaku/danmaku/media"
	"github.com/danmaku/danmaku/room/manager"
)

// serveConfig is everything `danmaku serve` runs with. Sources, lowest
// precedence first: the defaults, the YAML file (--config), the environment
// (DANMAKU_<FLAG>, e.g. DANMAKU_NODE_ID), the flags. docs/OPERATIONS.md lists
// every field with its default; a test keeps the two in step.
//
// The component sections (edge, manager, fanout, store, media) are the
// packages' own Config structs: YAML keys are their field names in lower
// case (edge: {handshaketimeout: 5s}); durations are Go durations ("250ms").
type serveConfig struct {
	// NodeID names this node in the cluster: 1–64 of [A-Za-z0-9_-], unique.
	// Default: the host name (cleaned to that alphabet).
	NodeID string `yaml:"node_id"`
	// Secret is the HS256 key client tokens are signed with (shared with the
	// app's backend and `danmaku token`). Default: a random development key,
	// with a warning; set it for anything but a laptop.
	Secret string `yaml:"secret"`
	// Demo turns on the demo room page's guest tokens
	// (POST /api/v1/demo/token). Default false; `make run` sets it.
	Demo bool `yaml:"demo"`
	// Guests lets anonymous read-only viewers connect without a token (edge)
	// and watch (WHEP). Default false.
	Guests bool `yaml:"guests"`
	// Redis is the Redis URL for shared state (history, idempotency, mutes,
	// bans, policy, room ownership). "" = in-memory state, one node only.
	// Default "".
	Redis string `yaml:"redis"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// LeaseTTL is how long a room's owner lease in Redis lives without
	// renewal: a SIGKILLed owner is replaced within about this plus
	// fanout.leaserenew. Default 3 s.
	LeaseTTL time.Duration `yaml:"lease_ttl"`

	HTTP    httpConfig        `yaml:"http"`
	Webhook webhookConfig     `yaml:"gift_webhook"`
	Edge    edge.Config       `yaml:"edge"`
	Manager manager.Config    `yaml:"manager"`
	Fanout  fanout.Config     `yaml:"fanout"`
	Store   redisstore.Config `yaml:"store"`
	Media   media.Config      `yaml:"media"`
}

// httpConfig is the HTTP port: health, metrics, the backend and admin APIs,
// WHIP/WHEP and the demo page.
type httpConfig struct {
	// Addr is host:port. Default "127.0.0.1:8080".
	Addr string `yaml:"addr"`
	// APIKey authorises the backend API (publish) as a Bearer token. ""
	// turns the backend API off (401). Default "".
	APIKey string `yaml:"api_key"`
	// AdminKey authorises the admin API as a Bearer token. "" turns the
	// admin API off (401). Default "".
	AdminKey string `yaml:"admin_key"`
	// PublicEdgeURL is the WebSocket URL the demo page tells browsers to
	// connect to. Default "ws://<edge.addr>/ws".
	PublicEdgeURL string `yaml:"public_edge_url"`
	// MaxBody bounds a request body, bytes. Default 64 KiB.
	MaxBody int64 `yaml:"max_body"`
}

// webhookConfig is the gift webhook: the app's backend allows or denies
// each gift before it is sequenced.
type webhookConfig struct {
	// URL receives a POST per gift. "" = gifts are not checked. Default "".
	URL string `yaml:"url"`
	// Timeout bounds one call; a timeout denies the gift (gift_denied).
	// Default 2 s (it sets manager.giftauthtimeout).
	Timeout time.Duration `yaml:"timeout"`
	// Concurrency bounds calls in flight (manager.giftauthconcurrency).
	// Default 64.
	Concurrency int `yaml:"concurrency"`
}

func defaultServeConfig() serveConfig {
	host, _ := os.Hostname()
	return serveConfig{
		NodeID:   cleanNodeID(host),
		LogLevel: "info",
		LeaseTTL: 3 * time.Second,
		HTTP:     httpConfig{Addr: "127.0.0.1:8080", MaxBody: 64 << 10},
		Webhook:  webhookConfig{Timeout: 2 * time.Second, Concurrency: 64},
		Edge:     edge.DefaultConfig(),
		Manager:  manager.DefaultConfig(),
		Fanout:   fanout.DefaultConfig(),
		Store:    redisstore.DefaultConfig(),
		Media:    media.DefaultConfig(),
	}
}

var nodeIDBad = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func cleanNodeID(s string) string {
	s = nodeIDBad.ReplaceAllString(s, "-")
	if len(s) > 64 {
		s = s[:64]
	}
	if s == "" {
		return "node"
	}
	return s
}

// serveFlag is one flag of `danmaku serve`, also read from DANMAKU_<NAME>.
type serveFlag struct {
	name, usage string
	isBool      bool
	apply       func(c *serveConfig, v string) error
}

func str(set func(c *serveConfig, v string)) func(*serveConfig, string) error {
	return func(c *serveConfig, v string) error { set(c, v); return nil }
}

func boolean(set func(c *serveConfig, b bool)) func(*serveConfig, string) error {
	return func(c *serveConfig, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return err
		}
		set(c, b)
		return nil
	}
}

func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// serveFlags is the flag contract of `danmaku serve` (operators script it:
// extend, never rename).
var serveFlags = []serveFlag{
	{name: "edge", usage: "edge address, TCP and WebSocket on one port (default 127.0.0.1:7000)",
		apply: str(func(c *serveConfig, v string) { c.Edge.Addr = v })},
	{name: "http", usage: "HTTP address: health, metrics, APIs, WHIP/WHEP, demo page (default 127.0.0.1:8080)",
		apply: str(func(c *serveConfig, v string) { c.HTTP.Addr = v })},
	{name: "secret", usage: "HS256 key of client tokens (default: a random development key, with a warning)",
		apply: str(func(c *serveConfig, v string) { c.Secret = v })},
	{name: "node-id", usage: "this node's id in the cluster (default: the host name)",
		apply: str(func(c *serveConfig, v string) { c.NodeID = v })},
	{name: "demo", usage: "issue guest tokens to the demo page (POST /api/v1/demo/token)", isBool: true,
		apply: boolean(func(c *serveConfig, b bool) { c.Demo = b })},
	{name: "guests", usage: "let anonymous read-only viewers in without a token", isBool: true,
		apply: boolean(func(c *serveConfig, b bool) { c.Guests = b })},
	{name: "redis", usage: "Redis URL for shared state, e.g. redis://127.0.0.1:6379/0 (default: in-memory, one node)",
		apply: str(func(c *serveConfig, v string) { c.Redis = v })},
	{name: "redis-prefix", usage: "first part of every Redis key (default dmk)",
		apply: str(func(c *serveConfig, v string) { c.Store.Prefix = v })},
	{name: "nats", usage: "external NATS servers, URL[,URL...] (default: an embedded server)",
		apply: str(func(c *serveConfig, v string) { c.Fanout.NATSURLs = list(v) })},
	{name: "nats-listen", usage: "client address of the embedded NATS server (default: none, in-process only)",
		apply: str(func(c *serveConfig, v string) { c.Fanout.Embedded.ClientAddr = v })},
	{name: "nats-cluster", usage: "route address of the embedded NATS server, to cluster with other nodes' (default: not clustered)",
		apply: str(func(c *serveConfig, v string) { c.Fanout.Embedded.ClusterAddr = v })},
	{name: "nats-routes", usage: "other nodes' --nats-cluster addresses, nats://host:port[,...]",
		apply: str(func(c *serveConfig, v string) { c.Fanout.Embedded.Routes = list(v) })},
	{name: "api-key", usage: "Bearer key of the backend API (publish); empty = API off",
		apply: str(func(c *serveConfig, v string) { c.HTTP.APIKey = v })},
	{name: "admin-key", usage: "Bearer key of the admin API; empty = admin API off",
		apply: str(func(c *serveConfig, v string) { c.HTTP.AdminKey = v })},
	{name: "gift-webhook", usage: "URL asked to allow or deny each gift (POST, JSON); empty = no check",
		apply: str(func(c *serveConfig, v string) { c.Webhook.URL = v })},
	{name: "gift-webhook-timeout", usage: "deadline of one gift webhook call; a timeout denies (default 2s)",
		apply: func(c *serveConfig, v string) error {
			d, err := time.ParseDuration(v)
			c.Webhook.Timeout = d
			return err
		}},
	{name: "rtmp", usage: "RTMP ingest address; empty = off (default 127.0.0.1:1935)",
		apply: str(func(c *serveConfig, v string) { c.Media.RTMPAddr = v })},
	{name: "public-ip", usage: "public IP announced in WebRTC candidates (1:1 NAT)",
		apply: str(func(c *serveConfig, v string) { c.Media.PublicIP = v })},
	{name: "max-conns", usage: "edge connection cap (default: from the open-files limit, with headroom)",
		apply: func(c *serveConfig, v string) error {
			n, err := strconv.Atoi(v)
			c.Edge.MaxConns = n
			return err
		}},
	{name: "log-level", usage: "debug, info, warn or error (default info)",
		apply: str(func(c *serveConfig, v string) { c.LogLevel = v })},
}

// envName is the environment variable of a flag: node-id → DANMAKU_NODE_ID.
func envName(flagName string) string {
	return "DANMAKU_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

type rawFlag struct {
	v      string
	isBool bool
}

func (r *rawFlag) String() string     { return r.v }
func (r *rawFlag) Set(v string) error { r.v = v; return nil }
func (r *rawFlag) IsBoolFlag() bool   { return r.isBool }

// serveOptions is what parsing `danmaku serve`'s arguments gives.
type serveOptions struct {
	cfg         serveConfig
	printConfig bool
	devSecret   bool // Secret was generated
}

// loadServeConfig parses args, the environment (getenv) and the file they
// name into a validated configuration.
func loadServeConfig(args []string, getenv func(string) string, stderr io.Writer) (*serveOptions, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", getenv("DANMAKU_CONFIG"), "YAML configuration file (env DANMAKU_CONFIG); see docs/OPERATIONS.md")
	printCfg := fs.Bool("print-config", false, "print the effective configuration (secrets masked) and exit")
	raws := make([]*rawFlag, len(serveFlags))
	for i, f := range serveFlags {
		raws[i] = &rawFlag{isBool: f.isBool}
		fs.Var(raws[i], f.name, f.usage+" (env "+envName(f.name)+")")
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: danmaku serve [--config FILE] [flags]\n\nRuns a node: edge, room managers, NATS, HTTP. Precedence: flag > env > file > default.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg := defaultServeConfig()
	if *path != "" {
		if err := readConfigFile(*path, &cfg); err != nil {
			return nil, err
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for i, f := range serveFlags {
		v, from := raws[i].v, "--"+f.name
		if !set[f.name] {
			if v = getenv(envName(f.name)); v == "" {
				continue
			}
			from = envName(f.name)
		} else if f.isBool && v == "" {
			v = "true"
		}
		if err := f.apply(&cfg, v); err != nil {
			return nil, fmt.Errorf("%s: %w", from, err)
		}
	}
	opts := &serveOptions{cfg: cfg, printConfig: *printCfg}
	if opts.cfg.Secret == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("generate a development secret: %w", err)
		}
		opts.cfg.Secret, opts.devSecret = hex.EncodeToString(b), true
	}
	if err := opts.cfg.finish(); err != nil {
		return nil, err
	}
	return opts, nil
}

// readConfigFile decodes a YAML file over cfg; unknown keys are errors that
// name the line, so a typo does not silently keep a default.
func readConfigFile(path string, cfg *serveConfig) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// finish copies the top-level fields into the component configs and
// validates everything, naming the first bad field.
func (c *serveConfig) finish() error {
	if c.NodeID == "" || len(c.NodeID) > 64 || nodeIDBad.MatchString(c.NodeID) {
		return fmt.Errorf("node_id %q: want 1-64 of [A-Za-z0-9_-]", c.NodeID)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if c.HTTP.Addr == "" {
		return errors.New("http.addr: required")
	}
	if c.HTTP.MaxBody <= 0 {
		return errors.New("http.max_body: must be > 0")
	}
	if c.LeaseTTL < time.Second {
		return fmt.Errorf("lease_ttl %v: must be at least 1s", c.LeaseTTL)
	}
	if c.Webhook.URL != "" {
		if !strings.HasPrefix(c.Webhook.URL, "http://") && !strings.HasPrefix(c.Webhook.URL, "https://") {
			return fmt.Errorf("gift_webhook.url %q: want an http:// or https:// URL", c.Webhook.URL)
		}
		if c.Webhook.Timeout <= 0 || c.Webhook.Concurrency <= 0 {
			return errors.New("gift_webhook.timeout and gift_webhook.concurrency: must be > 0")
		}
		c.Manager.GiftAuthTimeout = c.Webhook.Timeout
		c.Manager.GiftAuthConcurrency = c.Webhook.Concurrency
	}
	clustered := len(c.Fanout.NATSURLs) > 0 || c.Fanout.Embedded.ClusterAddr != ""
	if clustered && c.Redis == "" {
		return errors.New("redis: required in cluster mode (--nats or --nats-cluster): rooms need one owner and shared history")
	}
	c.Edge.Secret, c.Edge.NodeID, c.Edge.Guests = []byte(c.Secret), c.NodeID, c.Guests
	c.Media.Guests = c.Guests
	c.Fanout.NodeID = c.NodeID
	if c.Redis != "" {
		c.Store.URL = c.Redis
		c.Store.FenceNode = c.NodeID // a stale owner cannot write (split brain)
	}
	var storeErr error
	if c.Redis != "" { // the store's config matters only with Redis
		storeErr = c.Store.Validate()
	}
	for _, ch := range []struct {
		section string
		err     error
	}{
		{"edge", c.Edge.Validate()},
		{"manager", c.Manager.Validate()},
		{"fanout", c.Fanout.Validate()},
		{"media", c.Media.Validate()},
		{"store", storeErr},
	} {
		if ch.err != nil {
			return fmt.Errorf("%s: %w", ch.section, ch.err)
		}
	}
	return nil
}

const masked = "***"

// printable is the configuration with secrets masked, as YAML.
func (c serveConfig) printable() ([]byte, error) {
	for _, s := range []*string{&c.Secret, &c.HTTP.APIKey, &c.HTTP.AdminKey} {
		if *s != "" {
			*s = masked
		}
	}
	c.Redis = maskURL(c.Redis)
	c.Store.URL = maskURL(c.Store.URL)
	c.Fanout.NATSURLs = append([]string(nil), c.Fanout.NATSURLs...)
	for i, u := range c.Fanout.NATSURLs {
		c.Fanout.NATSURLs[i] = maskURL(u)
	}
	c.Edge.Secret = nil // the top-level secret, copied
	return yaml.Marshal(c)
}

// maskURL hides a URL's password (redis://user:pass@host).
func maskURL(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	cred := u[scheme+3 : at]
	if i := strings.Index(cred, ":"); i >= 0 {
		cred = cred[:i+1] + masked
	} else {
		cred = masked
	}
	return u[:scheme+3] + cred + u[at:]
}
