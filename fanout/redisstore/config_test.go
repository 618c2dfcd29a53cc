package redisstore

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	cases := []struct {
		field string // named in the error
		edit  func(*Config)
	}{
		{"Prefix", func(c *Config) { c.Prefix = "" }},
		{"Prefix", func(c *Config) { c.Prefix = "a{b" }},
		{"Retention", func(c *Config) { c.Retention = 0 }},
		{"Retention", func(c *Config) { c.Retention = maxRetention + 1 }},
		{"IdempotencyTTL", func(c *Config) { c.IdempotencyTTL = time.Millisecond }},
		{"BacklogSize", func(c *Config) { c.BacklogSize = 0 }},
		{"BacklogSize", func(c *Config) { c.BacklogSize = maxBacklog + 1 }},
		{"LedgerTTL", func(c *Config) { c.LedgerTTL = -time.Second }},
		{"LedgerTTL", func(c *Config) { c.LedgerTTL = time.Millisecond }},
		{"OpTimeout", func(c *Config) { c.OpTimeout = time.Millisecond }},
		{"OpTimeout", func(c *Config) { c.OpTimeout = time.Minute }},
		{"DialTimeout", func(c *Config) { c.DialTimeout = 0 }},
		{"DialTimeout", func(c *Config) { c.DialTimeout = time.Second }},
		{"PoolSize", func(c *Config) { c.PoolSize = -1 }},
		{"Retries", func(c *Config) { c.Retries = -1 }},
		{"Retries", func(c *Config) { c.Retries = 11 }},
		{"FenceNode", func(c *Config) { c.FenceNode = "a\nb" }},
		{"URL", func(c *Config) { c.URL = "http://x" }},
		{"URL", func(c *Config) { c.URL = "" }},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		c.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: err %v, want one naming %s", cfg, err, c.field)
		}
		if _, err := New(cfg); err == nil {
			t.Errorf("New accepted a config with a bad %s", c.field)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{errString("LOADING Redis is loading the dataset in memory"), "loading"},
		{errString("READONLY You can't write against a read only replica."), "readonly"},
		{errString("OOM command not allowed when used memory > 'maxmemory'."), "oom"},
		{errString("NOTOWNER the room is owned by another node"), "not_owner"},
		{errString("something else"), "other"},
	} {
		if got := classify(c.err); got != c.want {
			t.Errorf("classify(%q) = %s, want %s", c.err, got, c.want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
