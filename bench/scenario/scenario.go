package scenario

import (
	"gopkg.in/yaml.v3"

	"github.com/danmaku/danmaku/room/proto"
)

// Scenario is one scenario file. Field docs give each key's meaning, unit and
// default; bench/README.md is the operator-facing version of the same text.
type Scenario struct {
	// Name labels the run in reports. Default: the file name without extension.
	Name string `yaml:"name" json:"name"`
	// Description is free text shown in the HTML report.
	Description string `yaml:"description" json:"description,omitempty"`
	// Targets are the edge URLs viewers connect to, ws://host:port/path or
	// tcp://host:port; viewers are spread over them round-robin. Required
	// (here or with --target).
	Targets []string `yaml:"targets" json:"targets"`
	// Secret is the HS256 key the bench mints viewers' tokens with, as the
	// app's backend would. Default: $DANMAKU_SECRET. Required (here, in the
	// environment or with --secret).
	Secret string `yaml:"secret" json:"-"`
	// Metrics are the servers' Prometheus endpoints (http://host:port/metrics),
	// scraped before, during and after the run for CPU, RSS and drop counters.
	// Unreachable ones are reported, never fatal. Default: none.
	Metrics []string `yaml:"metrics" json:"metrics,omitempty"`
	// RoomPrefix is put before every room id. Default "b<run id>-", so every run
	// gets fresh rooms (no history from an earlier run); "" uses the ids as written.
	RoomPrefix *string `yaml:"room_prefix" json:"room_prefix,omitempty"`
	// Duration is how long the run lasts from the first dial until senders stop
	// (ramp included). Required.
	Duration Duration `yaml:"duration" json:"duration"`
	// TrafficStart is when chat, likes and gifts begin, from the first dial.
	// Default: when the ramp should end plus 2 s, so viewers that joined on
	// time see the room's whole traffic (the lossy accounting needs that).
	TrafficStart Duration `yaml:"traffic_start" json:"traffic_start"`
	// Drain is the longest wait after senders stop for acks and deliveries to
	// settle; the wait ends early once every joined viewer holds every
	// reliable entry and no gift awaits an ack. Default 10s.
	Drain Duration `yaml:"drain" json:"drain"`
	// Ramp is how fast viewers join.
	Ramp Ramp `yaml:"ramp" json:"ramp"`
	// Rooms are groups of identical rooms. At least one.
	Rooms []RoomGroup `yaml:"rooms" json:"rooms"`
	// Chat is the default chat traffic of every room group (a group may
	// override it). Default: no chat.
	Chat Chat `yaml:"chat" json:"chat"`
	// Likes is the default like traffic. Default: no likes.
	Likes Likes `yaml:"likes" json:"likes"`
	// Gifts is the default gift traffic. Default: no gifts.
	Gifts Gifts `yaml:"gifts" json:"gifts"`
	// Steps are timed events: connection drops (a reconnect storm) and
	// traffic bursts. Default: none.
	Steps []Step `yaml:"steps" json:"steps,omitempty"`
	// SLO are the targets the run is judged against.
	SLO SLO `yaml:"slo" json:"slo"`
	// Client tunes the load generator itself.
	Client Client `yaml:"client" json:"client"`

	file string     // where it was read from, for errors
	src  *yaml.Node // the parsed document, for the line of a bad field
}

// Ramp is how viewers arrive.
type Ramp struct {
	// JoinsPerSecond is the rate at which viewers start connecting, over all
	// workers. Default 1000.
	JoinsPerSecond float64 `yaml:"joins_per_second" json:"joins_per_second"`
}

// RoomGroup is Count rooms of Viewers viewers each.
type RoomGroup struct {
	// ID names the group's rooms: ID alone when Count is 1, else ID-0, ID-1, …
	// 1–40 characters of [A-Za-z0-9_-]. Required.
	ID string `yaml:"id" json:"id"`
	// Count is the number of rooms in the group. Default 1.
	Count int `yaml:"count" json:"count"`
	// Viewers is the number of viewers of each room (senders included). Required.
	Viewers int `yaml:"viewers" json:"viewers"`
	// Chat, Likes and Gifts replace the scenario-wide blocks for this group's
	// rooms when present (the whole block, not key by key).
	Chat  *Chat  `yaml:"chat" json:"chat,omitempty"`
	Likes *Likes `yaml:"likes" json:"likes,omitempty"`
	Gifts *Gifts `yaml:"gifts" json:"gifts,omitempty"`
}

// Chat is a room's danmaku traffic.
type Chat struct {
	// Senders is the fraction (0–1) of each room's viewers that send chat;
	// a positive fraction gives at least one sender per room. Default 0.
	Senders float64 `yaml:"senders" json:"senders"`
	// Rate is chat messages per second per sender. Default 0.5. Mind the
	// server's per-role rate (viewer 1/s burst 3 by default): above it chats
	// are rejected (rate_limited) and reported, not sent.
	Rate float64 `yaml:"rate" json:"rate"`
	// Role is the token role of chat senders: viewer, vip, moderator,
	// streamer or admin. Default viewer.
	Role proto.Role `yaml:"role" json:"role"`
	// Text is the chat text, 1–100 runes. Default "bench 弹幕".
	Text string `yaml:"text" json:"text"`
}

// Likes is a room's like traffic.
type Likes struct {
	// Senders is the fraction (0–1) of each room's viewers that send likes.
	// Default 0.
	Senders float64 `yaml:"senders" json:"senders"`
	// Rate is like messages per second per sender. Default 1.
	Rate float64 `yaml:"rate" json:"rate"`
	// Count is likes per message (a client merges taps), 1–1000. Default 1.
	Count int `yaml:"count" json:"count"`
}

// Gifts is a room's gift traffic. Every gift carries a unique idempotency key
// and is retried with that key until acked.
type Gifts struct {
	// Rate is gifts per second per room, spread over the room's gift senders.
	// Default 0.
	Rate float64 `yaml:"rate" json:"rate"`
	// Senders is the number of gift senders per room (capped by the room's
	// viewers). Default 1 when Rate > 0.
	Senders int `yaml:"senders" json:"senders"`
	// Gift is the gift id, 1–64 bytes. Default "rose".
	Gift string `yaml:"gift" json:"gift"`
	// Count is the count in each gift message, 1–10000. Default 1.
	Count int `yaml:"count" json:"count"`
	// Retry is how long a sender waits for an ack before resending the gift
	// with the same key. Default 3s.
	Retry Duration `yaml:"retry" json:"retry"`
}

// Step is one timed event. Exactly one of Drop and Scale is set.
type Step struct {
	// At is when the step happens, from the first dial. Required, < duration.
	At Duration `yaml:"at" json:"at"`
	// Drop is the fraction (0–1] of the viewers connected at At whose
	// connection the bench cuts (client side, like a network blip).
	Drop float64 `yaml:"drop" json:"drop,omitempty"`
	// Reconnect says whether dropped viewers come back (with the SDK's
	// backoff and jitter, then resume). Default true.
	Reconnect *bool `yaml:"reconnect" json:"reconnect,omitempty"`
	// Scale multiplies traffic rates from At for For.
	Scale *Scale `yaml:"scale" json:"scale,omitempty"`
	// For is how long a Scale step lasts. Default: until the end.
	For Duration `yaml:"for" json:"for,omitempty"`
}

// Scale multiplies rates; an absent key leaves that traffic unchanged and 0
// pauses it.
type Scale struct {
	Chat  *float64 `yaml:"chat" json:"chat,omitempty"`
	Likes *float64 `yaml:"likes" json:"likes,omitempty"`
	Gifts *float64 `yaml:"gifts" json:"gifts,omitempty"`
}

// SLO are the event's targets. A zero duration target is not checked.
type SLO struct {
	// LatencyP99 are the p99 end-to-end latencies per delivery class, from the
	// sender's ct to a viewer reading the entry (bench and viewers share one
	// clock). Default 2s each.
	LatencyP99 LatencyTargets `yaml:"latency_p99" json:"latency_p99"`
	// ConnectSuccess is the least fraction of connections (first joins and
	// reconnects after a drop) that reach joined/resumed before the run ends,
	// retrying with backoff as the SDK does. Default 0.999.
	ConnectSuccess float64 `yaml:"connect_success" json:"connect_success"`
	// ConnectP99 is the p99 time from dial to welcome. Default 0 (not checked).
	ConnectP99 Duration `yaml:"connect_p99" json:"connect_p99"`
	// JoinP99 is the p99 time from join sent to joined. Default 0 (not checked).
	JoinP99 Duration `yaml:"join_p99" json:"join_p99"`
	// ReconnectP99 is the p99 time from a drop (or a server's reconnect) to
	// resumed. Default 10s.
	ReconnectP99 Duration `yaml:"reconnect_p99" json:"reconnect_p99"`
	// MaxLossyDrop is the largest p99, over steady viewers, of the chat loss
	// the room budget does not explain: (sent − received − dropped_by_policy)
	// / sent. Default 0.01. See bench/README.md for the exact definition.
	MaxLossyDrop float64 `yaml:"max_lossy_drop" json:"max_lossy_drop"`
	// GiftsAcked is the least fraction of gifts acked by the end of the
	// drain. Default 1.
	GiftsAcked float64 `yaml:"gifts_acked" json:"gifts_acked"`
	// ExactlyOnce: every acked gift reaches every viewer exactly once. It
	// cannot be relaxed; the key exists so the file states it. Default true.
	ExactlyOnce *bool `yaml:"exactly_once" json:"exactly_once,omitempty"`
}

// LatencyTargets are p99 targets per delivery class.
type LatencyTargets struct {
	// Lossy is the chat (lossy lane) target. Default 2s.
	Lossy Duration `yaml:"lossy" json:"lossy"`
	// Reliable is the gift (reliable lane) target. Default 2s.
	Reliable Duration `yaml:"reliable" json:"reliable"`
}

// Client tunes the load generator.
type Client struct {
	// Workers is the number of worker processes. Default 0: enough that each
	// holds at most ConnsPerWorker connections, at least 1.
	Workers int `yaml:"workers" json:"workers"`
	// ConnsPerWorker caps the connections of one worker process: the open-files
	// limit is 20,000 per process here, and a worker needs a few files of its
	// own. Default 18000; never above the process's limit minus 200.
	ConnsPerWorker int `yaml:"conns_per_worker" json:"conns_per_worker"`
	// SourceAddrs spreads connections to loopback targets over the source
	// addresses 127.0.0.2–127.0.0.254 so ephemeral ports never run out.
	// Default true.
	SourceAddrs *bool `yaml:"source_addresses" json:"source_addresses,omitempty"`
	// DialTimeout bounds a connect: TCP, WebSocket upgrade, hello→welcome,
	// and join→joined. Default 10s.
	DialTimeout Duration `yaml:"dial_timeout" json:"dial_timeout"`
	// DialsInFlight caps concurrent connects per worker. Default 64.
	DialsInFlight int `yaml:"dials_in_flight" json:"dials_in_flight"`
	// ReconnectBase and ReconnectCap are the reconnect backoff, as the Go SDK:
	// delay = random(0, min(cap, base·2^attempt)). Defaults 200ms and 10s.
	ReconnectBase Duration `yaml:"reconnect_base" json:"reconnect_base"`
	ReconnectCap  Duration `yaml:"reconnect_cap" json:"reconnect_cap"`
}
