package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "danmaku.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigPrecedence: flag > env > file > default, field by field.
func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, `
node_id: from-file
secret: file-secret
http:
  addr: 127.0.0.1:9001
edge:
  addr: 127.0.0.1:9002
  handshaketimeout: 3s
manager:
  budget: 150
`)
	env := map[string]string{"DANMAKU_CONFIG": file, "DANMAKU_NODE_ID": "from-env", "DANMAKU_HTTP": "127.0.0.1:9101"}
	getenv := func(k string) string { return env[k] }
	cases := []struct {
		name  string
		args  []string
		check func(c serveConfig) bool
	}{
		{"file over default", nil, func(c serveConfig) bool {
			return c.Edge.HandshakeTimeout == 3*time.Second && c.Manager.Budget == 150 && c.Secret == "file-secret" &&
				c.Edge.Heartbeat == 25*time.Second // untouched fields keep defaults
		}},
		{"env over file", nil, func(c serveConfig) bool { return c.NodeID == "from-env" && c.HTTP.Addr == "127.0.0.1:9101" }},
		{"flag over env", []string{"--node-id", "from-flag", "--http", "127.0.0.1:9201"}, func(c serveConfig) bool {
			return c.NodeID == "from-flag" && c.HTTP.Addr == "127.0.0.1:9201" && c.Fanout.NodeID == "from-flag" && c.Edge.NodeID == "from-flag"
		}},
		{"file value kept where nothing overrides", []string{"--node-id", "x"}, func(c serveConfig) bool { return c.Edge.Addr == "127.0.0.1:9002" }},
		{"bool flag", []string{"--demo"}, func(c serveConfig) bool { return c.Demo }},
		{"lists", []string{"--nats", "nats://a:1, nats://b:2", "--redis", "redis://127.0.0.1:6379/0"}, func(c serveConfig) bool {
			return len(c.Fanout.NATSURLs) == 2 && c.Fanout.NATSURLs[1] == "nats://b:2" && c.Store.URL == "redis://127.0.0.1:6379/0" && c.Store.FenceNode == "from-env"
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := loadServeConfig(c.args, getenv, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(o.cfg) {
				t.Fatalf("%+v", o.cfg)
			}
		})
	}
}

// TestConfigErrors: a bad configuration fails at start, naming the field.
func TestConfigErrors(t *testing.T) {
	none := func(string) string { return "" }
	cases := []struct {
		name string
		args []string
		file string
		want string
	}{
		{"unknown key", nil, "edge:\n  handshake_timeout: 3s\n", "handshake_timeout"},
		{"bad duration", nil, "edge:\n  heartbeat: soon\n", "soon"},
		{"bad node id", []string{"--node-id", "a b"}, "", "node_id"},
		{"cluster without redis", []string{"--nats", "nats://127.0.0.1:4333"}, "", "redis"},
		{"bad webhook", []string{"--gift-webhook", "ftp://x"}, "", "gift_webhook.url"},
		{"bad log level", []string{"--log-level", "loud"}, "", "log_level"},
		{"bad timeout", []string{"--gift-webhook-timeout", "fast"}, "", "--gift-webhook-timeout"},
		{"component field", nil, "manager:\n  budget: -5\n", "manager"},
		{"stray argument", []string{"extra"}, "", "extra"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if c.file != "" {
				args = append([]string{"--config", writeFile(t, c.file)}, args...)
			}
			_, err := loadServeConfig(args, none, io.Discard)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one naming %q", err, c.want)
			}
		})
	}
}

// TestPrintConfigMasksSecrets: --print-config shows the effective values
// and never a secret, and its output is a valid config file.
func TestPrintConfigMasksSecrets(t *testing.T) {
	o, err := loadServeConfig([]string{"--secret", "s3cret", "--api-key", "apikey", "--admin-key", "adminkey",
		"--redis", "redis://user:redispass@127.0.0.1:6379/0", "--edge", "127.0.0.1:7777"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := o.cfg.printable()
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	for _, secret := range []string{"s3cret", "apikey", "adminkey", "redispass"} {
		if strings.Contains(out, secret) {
			t.Errorf("print-config shows %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "127.0.0.1:7777") || !strings.Contains(out, "redis://user:***@127.0.0.1:6379/0") {
		t.Errorf("print-config lacks effective values:\n%s", out)
	}
	var back serveConfig
	if err := yaml.Unmarshal(b, &back); err != nil {
		t.Fatalf("print-config output does not load: %v", err)
	}
}

// TestDevSecret: without --secret a random key is generated (and flagged
// for the warning).
func TestDevSecret(t *testing.T) {
	a, err := loadServeConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := loadServeConfig(nil, func(string) string { return "" }, io.Discard)
	if !a.devSecret || len(a.cfg.Secret) < 32 || a.cfg.Secret == b.cfg.Secret {
		t.Fatalf("dev secret %q %v", a.cfg.Secret, a.devSecret)
	}
}
