package client

import (
	"sync/atomic"
	"time"
)

// Stats are a client's counters since Dial.
type Stats struct {
	Batches    uint64 // batch frames received
	Reliable   uint64 // reliable entries delivered to the app (each exactly once)
	Lossy      uint64 // lossy entries delivered to the app
	Gaps       uint64 // gaps found in a room's reliable lane
	Resumes    uint64 // resume requests sent (after reconnects and gaps)
	Recovered  uint64 // resumes answered with rec=true
	Rebased    uint64 // resumes answered with rec=false (history missed)
	Reconnects uint64 // connections re-established
	GiftRetry  uint64 // gift attempts after the first
	Missed     uint64 // lossy batches the server skipped (missed frames)

	// What the SDK dropped, by reason. Duplicates are normal (redelivery
	// after resumes); the others should stay near zero.
	Duplicates      uint64 // reliable entries already delivered
	BeforeBaseline  uint64 // reliable entries at or before the join/rejoin position
	StaleEpoch      uint64 // reliable entries of an epoch the room has left
	NotJoined       uint64 // batches of a room this client is not in (after leave)
	PreJoinOverflow uint64 // batches dropped past Config.MaxPreJoin
	HeldOverflow    uint64 // held reliable entries dropped past Config.MaxHeld (resumed)
	BadFrames       uint64 // server frames that did not decode
	UnknownTypes    uint64 // server messages of a type this SDK does not know

	// RTT is the round trip of the last ping, 0 before the first pong.
	RTT time.Duration
}

// counter indexes the client's atomic counters.
type counter uint8

const (
	cBatches counter = iota
	cReliable
	cLossy
	cGaps
	cResumes
	cRecovered
	cRebased
	cReconnects
	cGiftRetry
	cMissed
	// drops, each with a metric reason
	cDuplicate
	cBeforeBaseline
	cStaleEpoch
	cNotJoined
	cPreJoinOverflow
	cHeldOverflow
	cBadFrame
	cUnknownType
	nCounters
)

// dropReasons names the counters that are drops (Stats.Drops); "" = not a drop.
var dropReasons = [nCounters]string{
	cDuplicate: "duplicate", cBeforeBaseline: "before_baseline", cStaleEpoch: "stale_epoch",
	cNotJoined: "not_joined", cPreJoinOverflow: "prejoin_overflow", cHeldOverflow: "held_overflow",
	cBadFrame: "bad_frame", cUnknownType: "unknown_type",
}

type stats struct {
	c   [nCounters]atomic.Uint64
	rtt atomic.Int64
}

func (s *stats) add(c counter, n int) {
	if n > 0 {
		s.c[c].Add(uint64(n))
	}
}

func (s *stats) snapshot() Stats {
	g := func(c counter) uint64 { return s.c[c].Load() }
	return Stats{
		Batches: g(cBatches), Reliable: g(cReliable), Lossy: g(cLossy), Gaps: g(cGaps),
		Resumes: g(cResumes), Recovered: g(cRecovered), Rebased: g(cRebased),
		Reconnects: g(cReconnects), GiftRetry: g(cGiftRetry), Missed: g(cMissed),
		Duplicates: g(cDuplicate), BeforeBaseline: g(cBeforeBaseline), StaleEpoch: g(cStaleEpoch),
		NotJoined: g(cNotJoined), PreJoinOverflow: g(cPreJoinOverflow), HeldOverflow: g(cHeldOverflow),
		BadFrames: g(cBadFrame), UnknownTypes: g(cUnknownType),
		RTT: time.Duration(s.rtt.Load()),
	}
}

// Drops returns the drop counters by reason, for a metric such as
// danmaku_client_dropped_total{reason} (the SDK itself exports no metrics:
// apps embed it, the bench and the CLI export what they need).
func (s Stats) Drops() map[string]uint64 {
	return map[string]uint64{
		dropReasons[cDuplicate]: s.Duplicates, dropReasons[cBeforeBaseline]: s.BeforeBaseline,
		dropReasons[cStaleEpoch]: s.StaleEpoch, dropReasons[cNotJoined]: s.NotJoined,
		dropReasons[cPreJoinOverflow]: s.PreJoinOverflow, dropReasons[cHeldOverflow]: s.HeldOverflow,
		dropReasons[cBadFrame]: s.BadFrames, dropReasons[cUnknownType]: s.UnknownTypes,
	}
}
