package media

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		field  string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"rtmp off", func(c *Config) { c.RTMPAddr = "" }, ""},
		{"rtmp addr", func(c *Config) { c.RTMPAddr = "1935" }, "RTMPAddr"},
		{"public ip", func(c *Config) { c.PublicIP = "203.0.113.7" }, ""},
		{"public ip not an ip", func(c *Config) { c.PublicIP = "example.com" }, "PublicIP"},
		{"port range", func(c *Config) { c.UDPPortMin, c.UDPPortMax, c.MaxSessions = 40000, 40999, 1000 }, ""},
		{"port min only", func(c *Config) { c.UDPPortMin = 40000 }, "UDPPortMin"},
		{"port range reversed", func(c *Config) { c.UDPPortMin, c.UDPPortMax = 41000, 40000 }, "UDPPortMin"},
		{"port range too small", func(c *Config) { c.UDPPortMin, c.UDPPortMax, c.MaxSessions = 40000, 40009, 11 }, "MaxSessions"},
		{"max streams", func(c *Config) { c.MaxStreams = 0 }, "MaxStreams"},
		{"max viewers", func(c *Config) { c.MaxViewersPerStream = -1 }, "MaxViewersPerStream"},
		{"max sessions", func(c *Config) { c.MaxSessions = 0 }, "MaxSessions"},
		{"max rtmp", func(c *Config) { c.MaxRTMPConns = 0 }, "MaxRTMPConns"},
		{"connect timeout", func(c *Config) { c.ConnectTimeout = 0 }, "ConnectTimeout"},
		{"ice failed", func(c *Config) { c.ICEFailedTimeout = -time.Second }, "ICEFailedTimeout"},
		{"rtmp timeout", func(c *Config) { c.RTMPTimeout = 0 }, "RTMPTimeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mutate(&c)
			err := c.Validate()
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field)):
				t.Fatalf("error %v does not name %s", err, tc.field)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New(DefaultConfig(), nil, nil); err == nil {
		t.Error("New accepted an empty secret")
	}
	c := DefaultConfig()
	c.MaxStreams = 0
	if _, err := New(c, testSecret, nil); err == nil {
		t.Error("New accepted an invalid config")
	}
}
