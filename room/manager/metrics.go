package manager

import (
	"sync/atomic"
	"time"
)

// The manager counts with plain atomics on its hot path (one add per event, no
// label lookup) and exposes them two ways: Manager.Counters (always) and a
// Prometheus collector (metrics_prom.go) that reads the same atomics.

// reason is why a message was dropped or rejected: the "reason" label of
// danmaku_room_dropped_total.
type reason uint8

const (
	reasonBudget      reason = iota // chat sampled out by the room's budget
	reasonEnterBudget               // enter notice over the enter budget
	reasonRateLimited               // per-user chat rate
	reasonLikeRate                  // per-user like rate
	reasonSlowMode                  // room slow mode
	reasonVIPOnly                   // vip-only room, viewer sender
	reasonDuplicate                 // same text again within the window
	reasonMuted                     // sender muted
	reasonBanned                    // sender banned
	reasonTooLong                   // text above MaxTextRunes
	reasonInvalidText               // empty, invalid UTF-8 or control characters
	reasonForbidden                 // role may not do this (guest)
	reasonRoomClosed                // room closed by an operator
	reasonInboxFull                 // room inbox full (overload)
	reasonBadRequest                // malformed request (no room, bad entry)
	reasonGiftDenied                // gift webhook refused or timed out
	reasonAuthBusy                  // too many gifts waiting for the webhook
	reasonPersistFull               // too many reliable entries waiting for the store
	reasonStoreError                // the store failed: reliable request answered unavailable
	reasonResumeBusy                // too many resumes waiting for the store
	reasonMaxRooms                  // manager at MaxRooms
	reasonShutdown                  // manager closed or room released mid-request
	reasonCount
)

var reasonNames = [reasonCount]string{
	reasonBudget: "budget", reasonEnterBudget: "enter_budget", reasonRateLimited: "rate_limited",
	reasonLikeRate: "like_rate", reasonSlowMode: "slow_mode", reasonVIPOnly: "vip_only",
	reasonDuplicate: "duplicate", reasonMuted: "muted", reasonBanned: "banned",
	reasonTooLong: "too_long", reasonInvalidText: "invalid_text", reasonForbidden: "forbidden",
	reasonRoomClosed: "room_closed", reasonInboxFull: "inbox_full", reasonBadRequest: "bad_request",
	reasonGiftDenied: "gift_denied", reasonAuthBusy: "auth_busy", reasonPersistFull: "persist_full",
	reasonStoreError: "store_error", reasonResumeBusy: "resume_busy", reasonMaxRooms: "max_rooms",
	reasonShutdown: "shutdown",
}

func (r reason) String() string { return reasonNames[r] }

// kind is the "kind" label of danmaku_room_inbound_total.
type kind uint8

const (
	kindChat kind = iota
	kindLike
	kindGift
	kindJoin
	kindResume
	kindPublish
	kindOther
	kindCount
)

var kindNames = [kindCount]string{"chat", "like", "gift", "join", "resume", "publish", "other"}

// authOutcome is the "outcome" label of danmaku_room_gift_auth_total.
type authOutcome uint8

const (
	authAllowed   authOutcome = iota // webhook said yes
	authDenied                       // webhook said no (or returned an error)
	authTimeout                      // webhook missed GiftAuthTimeout: denied
	authBusy                         // GiftAuthQueue full: answered unavailable
	authCancelled                    // room stopped while waiting: answered unavailable
	authCount
)

var authNames = [authCount]string{"allowed", "denied", "timeout", "busy", "cancelled"}

// histogram is a fixed-bucket histogram with atomic counts.
type histogram struct {
	bounds []float64 // upper bounds, ascending
	counts []atomic.Uint64
	sum    atomic.Uint64 // in units of 1e-6 (µs or micro-entries), to stay integral
	n      atomic.Uint64
}

func newHistogram(bounds ...float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds))}
}

func (h *histogram) observe(v float64) {
	for i, b := range h.bounds {
		if v <= b {
			h.counts[i].Add(1)
			break
		}
	}
	h.sum.Add(uint64(v * 1e6))
	h.n.Add(1)
}

// metrics are one manager's counters, shared by its rooms.
type metrics struct {
	inbound       [kindCount]atomic.Uint64
	dropped       [reasonCount]atomic.Uint64
	auth          [authCount]atomic.Uint64
	batches       atomic.Uint64
	stretched     atomic.Uint64 // ticks skipped under sink backpressure
	activeRooms   atomic.Int64
	evictedRooms  atomic.Uint64 // idle rooms evicted
	userEvictions atomic.Uint64 // per-user states evicted at MaxUsersPerRoom
	storeErrors   atomic.Uint64
	batchEntries  *histogram // entries per emitted batch
	appendSeconds *histogram // Ledger.Append latency
}

func newMetrics() *metrics {
	return &metrics{
		batchEntries:  newHistogram(0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
		appendSeconds: newHistogram(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5),
	}
}

func (m *metrics) observeAppend(d time.Duration) { m.appendSeconds.observe(d.Seconds()) }

// Counters is a snapshot of a manager's counters since New.
type Counters struct {
	Inbound      map[string]uint64 // requests by kind
	Dropped      map[string]uint64 // drops and rejections by reason (only non-zero)
	GiftAuth     map[string]uint64 // webhook outcomes
	Batches      uint64            // batches emitted
	BatchEntries uint64            // entries in those batches
	Stretched    uint64            // ticks skipped under backpressure
	ActiveRooms  int64
	EvictedRooms uint64
	UserEvicted  uint64
	StoreErrors  uint64
}

// Counters returns the manager's counters (the same numbers the Prometheus
// collector exports).
func (m *Manager) Counters() Counters {
	mt := m.met
	c := Counters{
		Inbound:      map[string]uint64{},
		Dropped:      map[string]uint64{},
		GiftAuth:     map[string]uint64{},
		Batches:      mt.batches.Load(),
		BatchEntries: mt.batchEntries.sum.Load() / 1e6,
		Stretched:    mt.stretched.Load(),
		ActiveRooms:  mt.activeRooms.Load(),
		EvictedRooms: mt.evictedRooms.Load(),
		UserEvicted:  mt.userEvictions.Load(),
		StoreErrors:  mt.storeErrors.Load(),
	}
	for k := range kindCount {
		c.Inbound[kindNames[k]] = mt.inbound[k].Load()
	}
	for r := range reasonCount {
		if v := mt.dropped[r].Load(); v > 0 {
			c.Dropped[reasonNames[r]] = v
		}
	}
	for o := range authCount {
		c.GiftAuth[authNames[o]] = mt.auth[o].Load()
	}
	return c
}
