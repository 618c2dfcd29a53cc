package manager

import (
	"fmt"
	"time"

	"github.com/danmaku/danmaku/room/proto"
)

// RateLimit is a token bucket (checked as GCRA, one int64 per user): PerSecond
// sustained, Burst at once after a quiet period.
type RateLimit struct {
	// PerSecond is the sustained rate in messages per second (> 0).
	PerSecond float64
	// Burst is how many messages may arrive at once (≥ 1).
	Burst int
}

// RateLimits are the per-user chat rates by role.
type RateLimits struct {
	// Viewer applies to viewers. Default 1/s, burst 3.
	Viewer RateLimit
	// VIP applies to vip. Default 3/s, burst 5.
	VIP RateLimit
	// Staff applies to moderators, streamers and admins. Default 10/s, burst 20.
	Staff RateLimit
}

// Config is the room manager's configuration. Per-room operator settings
// (budget, tick, slow mode, vip-only, closed) come from Policy and override
// Budget and Tick here.
type Config struct {
	// Tick is the batch interval: every Tick a room with something new emits
	// one batch. Default 100 ms; 10 ms–10 s.
	Tick time.Duration
	// Budget is the chat broadcast per room, messages per second: a tick
	// carries at most ceil(Budget×Tick) chats. Default 200 (Rongyun's cap).
	Budget int
	// MaxTextRunes is the longest chat text in runes. Default 100.
	MaxTextRunes int
	// RateLimits are the per-user chat rates by role.
	RateLimits RateLimits
	// LikeRate caps one user's like messages (each carries up to
	// proto.MaxLikeCount taps). Default 20/s, burst 20.
	LikeRate RateLimit
	// DuplicateWindow rejects a chat whose text equals the same user's
	// previous chat within this window. Default 10 s.
	DuplicateWindow time.Duration
	// BacklogSize is how many of the newest broadcast chats a joiner gets.
	// Default 50.
	BacklogSize int
	// EnterBudget is how many "X entered" notices a room broadcasts per second
	// (burst the same); the rest are dropped with reason enter_budget. 0
	// disables enter notices. Default 10.
	EnterBudget int
	// InboxSize bounds the requests waiting for one room's goroutine; past it
	// Submit answers at once (reason inbox_full). Default 16384 (~0.3 s of a
	// 50,000 msgs/s room).
	InboxSize int
	// IdleTimeout evicts a room (goroutine, timer, state) after this long
	// without inbound and with nothing pending. Default 60 s.
	IdleTimeout time.Duration
	// MaxStretch is how long a room may skip ticks while its Sink reports
	// Backpressure before it emits anyway. Default 1 s.
	MaxStretch time.Duration
	// Retention is the in-memory window of newest reliable entries per room
	// that serves resumes without store I/O. Default 1000 (the memory store's
	// retention).
	Retention int
	// MaxBatchEntries splits a tick's output into several batches above this
	// many entries. Default 1000.
	MaxBatchEntries int
	// MaxBatchBytes splits a tick's output above roughly this many encoded
	// bytes (estimated per entry). Default 256 KiB, well under
	// proto.MaxServerFrame.
	MaxBatchBytes int
	// MaxUsersPerRoom bounds the per-user admission state (rate limits, slow
	// mode, duplicates) of one room; idle entries are swept, and past the cap
	// an arbitrary one is evicted and counted. Default 50,000 (~5 MB).
	MaxUsersPerRoom int
	// MaxRooms bounds the active rooms of one manager; a request for another
	// room is answered unavailable (reason max_rooms). Default 100,000.
	MaxRooms int
	// PersistQueue bounds the reliable entries waiting for one room's
	// persister; past it gifts and publishes are answered unavailable
	// (reason persist_full). Default 1024.
	PersistQueue int
	// StoreTimeout bounds every store call (append, load, backlog save,
	// resume fallback). Default 2 s.
	StoreTimeout time.Duration
	// BacklogSaveInterval is how often a room with new chats saves its
	// backlog to the store (and once more on eviction or release).
	// Default 5 s.
	BacklogSaveInterval time.Duration
	// GiftAuthTimeout is the gift webhook's deadline; a timeout denies the
	// gift with proto.CodeGiftDenied. Default 2 s.
	GiftAuthTimeout time.Duration
	// GiftAuthConcurrency bounds webhook calls in flight per manager.
	// Default 64.
	GiftAuthConcurrency int
	// GiftAuthQueue bounds gifts waiting for or in authorisation per manager;
	// past it gifts are answered unavailable (reason auth_busy). Default 1024.
	GiftAuthQueue int
	// GiftKeyCache is how many recent gift keys and their acks a room keeps
	// so a retry is answered without the webhook or the store. Default 4096.
	GiftKeyCache int
	// ResumeConcurrency bounds resumes served from the store (older than the
	// in-memory window) in flight per manager; past it the resume is answered
	// unavailable (reason resume_busy). Default 64.
	ResumeConcurrency int
	// MaxEntryBytes bounds a published entry's text, data and names together.
	// Default 8 KiB.
	MaxEntryBytes int
	// RetryAfter is what an unavailable or inbox_full answer tells the client
	// to wait. Default 1 s.
	RetryAfter time.Duration
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Tick:         100 * time.Millisecond,
		Budget:       200,
		MaxTextRunes: proto.MaxTextRunes,
		RateLimits: RateLimits{
			Viewer: RateLimit{PerSecond: 1, Burst: 3},
			VIP:    RateLimit{PerSecond: 3, Burst: 5},
			Staff:  RateLimit{PerSecond: 10, Burst: 20},
		},
		LikeRate:            RateLimit{PerSecond: 20, Burst: 20},
		DuplicateWindow:     10 * time.Second,
		BacklogSize:         50,
		EnterBudget:         10,
		InboxSize:           16384,
		IdleTimeout:         60 * time.Second,
		MaxStretch:          time.Second,
		Retention:           1000,
		MaxBatchEntries:     1000,
		MaxBatchBytes:       256 << 10,
		MaxUsersPerRoom:     50000,
		MaxRooms:            100000,
		PersistQueue:        1024,
		StoreTimeout:        2 * time.Second,
		BacklogSaveInterval: 5 * time.Second,
		GiftAuthTimeout:     2 * time.Second,
		GiftAuthConcurrency: 64,
		GiftAuthQueue:       1024,
		GiftKeyCache:        4096,
		ResumeConcurrency:   64,
		MaxEntryBytes:       8 << 10,
		RetryAfter:          time.Second,
	}
}

// Bounds that are not configuration: each keeps a per-room cost finite
// whatever an operator's policy says.
const (
	minTick = 10 * time.Millisecond // below this a batch per tick costs more than it saves
	maxTick = 10 * time.Second      // above this the screen looks frozen
	// maxBudget caps Budget and Policy.Budget: a phone renders ~400 msgs/s.
	maxBudget = 100000
	// maxReservoir caps the chat candidates kept per priority class and tick
	// (ceil(budget×tick)), bounding a room's lossy memory.
	maxReservoir = 4096
	// maxBacklog caps BacklogSize: a join reply must stay small (~10 KiB at 50).
	maxBacklog = 1000
	// maxRetention caps Retention: the resume window is kept per active room.
	maxRetention = 100000
)

// Validate reports the first field out of range, by name.
func (c *Config) Validate() error {
	checks := []struct {
		ok    bool
		field string
		want  string
	}{
		{c.Tick >= minTick && c.Tick <= maxTick, "Tick", "10ms–10s"},
		{c.Budget >= 1 && c.Budget <= maxBudget, "Budget", "1–100000"},
		{c.MaxTextRunes >= 1 && c.MaxTextRunes <= proto.MaxClientFrame, "MaxTextRunes", "1–4096"},
		{c.RateLimits.Viewer.valid(), "RateLimits.Viewer", "PerSecond > 0, Burst ≥ 1"},
		{c.RateLimits.VIP.valid(), "RateLimits.VIP", "PerSecond > 0, Burst ≥ 1"},
		{c.RateLimits.Staff.valid(), "RateLimits.Staff", "PerSecond > 0, Burst ≥ 1"},
		{c.LikeRate.valid(), "LikeRate", "PerSecond > 0, Burst ≥ 1"},
		{c.DuplicateWindow >= 0, "DuplicateWindow", "≥ 0"},
		{c.BacklogSize >= 0 && c.BacklogSize <= maxBacklog, "BacklogSize", "0–1000"},
		{c.EnterBudget >= 0 && c.EnterBudget <= maxBudget, "EnterBudget", "0–100000"},
		{c.InboxSize >= 1, "InboxSize", "≥ 1"},
		{c.IdleTimeout > 0, "IdleTimeout", "> 0"},
		{c.MaxStretch >= 0, "MaxStretch", "≥ 0"},
		{c.Retention >= 1 && c.Retention <= maxRetention, "Retention", "1–100000"},
		{c.MaxBatchEntries >= 1 && c.MaxBatchEntries <= proto.MaxEntries, "MaxBatchEntries", "1–10000"},
		{c.MaxBatchBytes >= 1<<10 && c.MaxBatchBytes <= proto.MaxServerFrame/2, "MaxBatchBytes", "1 KiB–512 KiB"},
		{c.MaxUsersPerRoom >= 1, "MaxUsersPerRoom", "≥ 1"},
		{c.MaxRooms >= 1, "MaxRooms", "≥ 1"},
		{c.PersistQueue >= 1, "PersistQueue", "≥ 1"},
		{c.StoreTimeout > 0, "StoreTimeout", "> 0"},
		{c.BacklogSaveInterval > 0, "BacklogSaveInterval", "> 0"},
		{c.GiftAuthTimeout > 0, "GiftAuthTimeout", "> 0"},
		{c.GiftAuthConcurrency >= 1, "GiftAuthConcurrency", "≥ 1"},
		{c.GiftAuthQueue >= 1, "GiftAuthQueue", "≥ 1"},
		{c.GiftKeyCache >= 0, "GiftKeyCache", "≥ 0"},
		{c.ResumeConcurrency >= 1, "ResumeConcurrency", "≥ 1"},
		{c.MaxEntryBytes >= 64 && c.MaxEntryBytes <= proto.MaxServerFrame/4, "MaxEntryBytes", "64 B–256 KiB"},
		{c.RetryAfter >= 0, "RetryAfter", "≥ 0"},
	}
	for _, ck := range checks {
		if !ck.ok {
			return fmt.Errorf("manager config: %s out of range (want %s)", ck.field, ck.want)
		}
	}
	return nil
}

func (l RateLimit) valid() bool { return l.PerSecond > 0 && l.Burst >= 1 }

// gcra is a RateLimit in the form the generic cell rate algorithm checks:
// interval between messages and the tolerance a burst may use, in ns.
type gcra struct{ interval, tolerance int64 }

func (l RateLimit) gcra() gcra {
	iv := int64(float64(time.Second) / l.PerSecond)
	if iv < 1 {
		iv = 1
	}
	return gcra{interval: iv, tolerance: int64(l.Burst-1) * iv}
}

// allow checks one message at now against the theoretical arrival time *tat
// and advances it when allowed; otherwise it returns how long to wait.
func (g gcra) allow(tat *int64, now int64) (ok bool, wait int64) {
	t := *tat
	if t < now {
		t = now
	}
	if t-g.tolerance > now {
		return false, t - g.tolerance - now
	}
	*tat = t + g.interval
	return true, 0
}
