package fanout

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.NodeID = "n1"
	if err := good.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	cases := []struct {
		field string
		mut   func(c *Config)
	}{
		{"NodeID", func(c *Config) { c.NodeID = "" }},
		{"NodeID", func(c *Config) { c.NodeID = "a.b" }},
		{"Prefix", func(c *Config) { c.Prefix = "a>" }},
		{"NATSURLs", func(c *Config) { c.NATSURLs = []string{"nats://a:1,nats://b:2"} }},
		{"Embedded.ClientAddr", func(c *Config) { c.Embedded.ClientAddr = "nohost" }},
		{"Embedded.Routes", func(c *Config) { c.Embedded.Routes = []string{"nats://a:1"} }},
		{"Embedded.MaxPayload", func(c *Config) { c.Embedded.MaxPayload = 10 }},
		{"InPending", func(c *Config) { c.InPending.Msgs = 0 }},
		{"OutPending", func(c *Config) { c.OutPending.Bytes = 10 }},
		{"ReconnectBufSize", func(c *Config) { c.ReconnectBufSize = 0 }},
		{"LeaseRenew", func(c *Config) { c.LeaseRenew = 0 }},
		{"OnlineInterval", func(c *Config) { c.OnlineInterval = time.Millisecond }},
		{"PublishQueue", func(c *Config) { c.PublishQueue = 0 }},
		{"RetryAfter", func(c *Config) { c.RetryAfter = time.Hour }},
	}
	for _, tc := range cases {
		c := good
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: Validate() = %v, want an error naming it", tc.field, err)
		}
	}
	ext := good
	ext.NATSURLs = []string{"nats://127.0.0.1:65001"}
	ext.Embedded.MaxPayload = 0 // ignored with an external NATS
	if err := ext.Validate(); err != nil {
		t.Errorf("external config: %v", err)
	}
}
