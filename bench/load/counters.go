package load

import (
	"sync"
	"sync/atomic"
)

// Counters are named totals; on the wire a map so the coordinator merges any
// worker's by summing. Names are the Counter constants' names; failure and
// rejection reasons are "fail.<reason>", "error.<code>", "chat.<code>",
// "like.<code>", "gift.<code>".
type Counters map[string]int64

// Add sums o into c.
func (c Counters) Add(o Counters) {
	for k, v := range o {
		c[k] += v
	}
}

// Counter is one of a worker's fixed counters.
type Counter int

// Counters of a worker. Gauges (current values) are marked so.
const (
	Viewers          Counter = iota // viewers started (their first connect began)
	Dials                           // connect attempts
	DialFailures                    // attempts that did not reach welcome or joined/resumed
	Connected                       // gauge: connections open
	Joined                          // gauge: viewers joined (or resumed) right now
	FirstJoins                      // viewers that completed their first join
	ConnectsNeeded                  // first connects plus reconnects wanted after a break
	ConnectsDone                    // first joins plus resumes after a break
	Drops                           // connections cut by a drop step
	Disconnects                     // connections the server or network ended
	ServerReconnects                // reconnect messages received
	Batches                         // batches read
	BytesIn                         // frame bytes read
	LossyEntries                    // chat entries received (live)
	ReliableEntries                 // reliable entries received first time, live
	ReplayEntries                   // reliable entries received first time, in a resume replay
	LikesIn                         // likes received (sum of batch.lk)
	MissedBatches                   // lossy batches skipped while slow (missed.bt)
	WireDuplicates                  // reliable seqs received twice outside a resume overlap
	ResumeOverlaps                  // repeats inside a resume overlap (permitted)
	GapResumes                      // resumes sent because of a gap in the live lane
	Unrecovered                     // resumes answered rec=false
	EpochChanges                    // epoch changed under a viewer
	BadFrames                       // frames the bench could not decode
	ChatsSent                       // chats written
	ChatsAcked                      // chats acked without a code (sampled-out included)
	ChatsSampledOut                 // chats acked so=true
	ChatsRejected                   // chats acked with a code
	ChatsUnacked                    // chats whose connection ended before the ack
	ChatsSkipped                    // chats due while the sender was not joined (not sent)
	LikesSent                       // like messages written
	LikesAcked                      // like messages acked
	LikesRejected                   // like messages acked with a code
	GiftsStarted                    // distinct gifts (keys)
	GiftAttempts                    // gift messages written, retries included
	GiftsAcked                      // distinct gifts acked
	GiftDupAcks                     // acks with dup=true
	GiftsRejected                   // gifts refused for good (gift_denied, forbidden, …)
	GiftsPending                    // gauge: gifts not yet acked nor refused
	numCounters
)

var counterNames = [numCounters]string{
	"viewers", "dials", "dial_failures", "connected", "joined", "first_joins", "connects_needed",
	"connects_done", "drops", "disconnects", "server_reconnects", "batches", "bytes_in",
	"lossy_entries", "reliable_entries", "replay_entries", "likes_in", "missed_batches",
	"wire_duplicates", "resume_overlaps", "gap_resumes", "unrecovered", "epoch_changes",
	"bad_frames", "chats_sent", "chats_acked", "chats_sampled_out", "chats_rejected",
	"chats_unacked", "chats_skipped", "likes_sent", "likes_acked", "likes_rejected",
	"gifts_started", "gift_attempts", "gifts_acked", "gift_dup_acks", "gifts_rejected",
	"gifts_pending",
}

func (c Counter) String() string { return counterNames[c] }

// counterSet is a worker's live counters: lock-free for the fixed ones, a
// locked map for reasons (rare: failures and rejections).
type counterSet struct {
	v       [numCounters]atomic.Int64
	mu      sync.Mutex
	reasons Counters
}

func (s *counterSet) add(c Counter, n int64) { s.v[c].Add(n) }
func (s *counterSet) inc(c Counter)          { s.v[c].Add(1) }
func (s *counterSet) get(c Counter) int64    { return s.v[c].Load() }

// reason counts one event under a free-form name such as "fail.dial".
func (s *counterSet) reason(name string) {
	s.mu.Lock()
	if s.reasons == nil {
		s.reasons = Counters{}
	}
	if len(s.reasons) < maxReasons || s.reasons[name] > 0 {
		s.reasons[name]++
	} else {
		s.reasons["other"]++
	}
	s.mu.Unlock()
}

// maxReasons bounds the reason map: names include server error codes, and
// a misbehaving server must not grow it without end.
const maxReasons = 256

func (s *counterSet) snapshot() Counters {
	out := make(Counters, numCounters+8)
	for i := range s.v {
		out[counterNames[i]] = s.v[i].Load()
	}
	s.mu.Lock()
	for k, v := range s.reasons {
		out[k] = v
	}
	s.mu.Unlock()
	return out
}
