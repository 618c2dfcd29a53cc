package load

import (
	"github.com/danmaku/danmaku/bench/scenario"
	"github.com/danmaku/danmaku/bench/stats"
)

// The coordinator and a worker exchange JSON lines: on the worker's stdin a
// Plan, then Commands; on its stdout Messages. The worker's stderr is its log.

// Plan is the first line a worker reads: everything it needs to run its
// share of the scenario on its own.
type Plan struct {
	// Worker is this worker's index in [0, Workers); it runs the viewers
	// whose global index i has i % Workers == Worker.
	Worker  int `json:"worker"`
	Workers int `json:"workers"`
	// RunID makes user ids, gift keys and (by default) room ids unique to
	// the run.
	RunID string `json:"run_id"`
	// Prefix is put before every room id.
	Prefix string `json:"prefix"`
	// Scenario is the validated scenario (its Secret travels in Secret).
	Scenario *scenario.Scenario `json:"scenario"`
	// Secret mints the viewers' tokens.
	Secret string `json:"secret"`
	// Start is the moment of the first dial, Unix ns (one clock: the
	// coordinator and its workers share the machine).
	Start int64 `json:"start"`
}

// Command is a line the coordinator sends after the Plan.
type Command struct {
	// Finish ends the drain: the worker closes its connections, checks
	// every viewer against the heads and sends its Result.
	Finish *Finish `json:"finish,omitempty"`
}

// Finish carries what a worker cannot know alone.
type Finish struct {
	// Heads is, per room id, the last reliable seq the room reached (the
	// highest any worker's viewer saw or any gift was acked with).
	Heads map[string]uint64 `json:"heads"`
	// ChatsSent is, per room id, the chats acked over all workers
	// (sampled-out ones included): the "sent" of the lossy accounting.
	ChatsSent map[string]uint64 `json:"chats_sent"`
}

// Message is a line a worker writes.
type Message struct {
	Stats  *Stats  `json:"stats,omitempty"`
	Result *Result `json:"result,omitempty"`
}

// Stats is a worker's progress, every second.
type Stats struct {
	Worker int `json:"worker"`
	// At is when the snapshot was taken, Unix ms.
	At int64 `json:"at"`
	// Counters are cumulative since the start (gauges are current values).
	Counters Counters `json:"counters"`
	// Lossy and Reliable are the latencies recorded since the previous
	// Stats (encoded stats.Hist), for the over-time charts.
	Lossy    string `json:"lossy"`
	Reliable string `json:"reliable"`
	// Rooms is the progress of the rooms this worker has viewers in.
	Rooms []RoomProgress `json:"rooms"`
}

// RoomProgress is one room as one worker sees it.
type RoomProgress struct {
	Room string `json:"room"`
	// MaxSeen is the highest reliable seq any of the worker's viewers got.
	MaxSeen uint64 `json:"max_seen"`
	// MaxAcked is the highest seq a gift of the worker's senders was acked with.
	MaxAcked uint64 `json:"max_acked"`
	// MinLast is the lowest contiguous seq over the worker's joined viewers
	// of the room (every seq up to it received); MaxUint64 when none is joined.
	MinLast uint64 `json:"min_last"`
	// Joined is how many of the worker's viewers of the room are joined.
	Joined int `json:"joined"`
	// ChatsAcked counts the worker's chats to the room acked so far.
	ChatsAcked uint64 `json:"chats_acked"`
}

// Result is a worker's last line.
type Result struct {
	Worker   int      `json:"worker"`
	Counters Counters `json:"counters"`
	// Cumulative histograms (encoded stats.Hist): connect (dial to
	// welcome), join (join to joined), reconnect (drop to resumed), lossy
	// and reliable end-to-end latency of live deliveries.
	Connect   string `json:"connect"`
	Join      string `json:"join"`
	Reconnect string `json:"reconnect"`
	Lossy     string `json:"lossy"`
	Reliable  string `json:"reliable"`
	// Exactly is the exactly-once check of the worker's viewers.
	Exactly stats.Tally `json:"exactly"`
	// Lossy accounting over the worker's steady viewers; LossyRatios is
	// the encoded ratio histogram.
	LossyTally  stats.Lossy `json:"lossy_tally"`
	LossyRatios string      `json:"lossy_ratios"`
	// Gifts are every gift the worker's senders sent.
	Gifts []GiftRecord `json:"gifts"`
	// Lane is every reliable entry the worker's viewers saw, once per room
	// and seq, for the coordinator's ledger check.
	Lane []LaneEntry `json:"lane"`
	// Process figures.
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSS    int64   `json:"peak_rss_bytes"`
	// PeakConns is the most connections open at once; RSSPerConn the RSS
	// per connection measured at that moment (bytes).
	PeakConns  int64 `json:"peak_conns"`
	RSSPerConn int64 `json:"rss_per_conn_bytes"`
}

// GiftRecord is one gift as its sender knows it.
type GiftRecord struct {
	Room     string `json:"room"`
	Key      string `json:"key"`
	User     string `json:"user"`
	ClientTS int64  `json:"ct"`
	Attempts int    `json:"attempts"`
	Acked    bool   `json:"acked"`
	Seq      uint64 `json:"seq,omitempty"`
	Epoch    string `json:"epoch,omitempty"`
	// Conflict: two acks for this key carried different seqs (the server
	// accepted one purchase twice).
	Conflict bool `json:"conflict,omitempty"`
	// Rejected is the final error code when the server refused the gift.
	Rejected string `json:"rejected,omitempty"`
}

// LaneEntry is one reliable entry of a room.
type LaneEntry struct {
	Room     string `json:"room"`
	Seq      uint64 `json:"seq"`
	Kind     string `json:"kind"`
	User     string `json:"user,omitempty"`
	ClientTS int64  `json:"ct,omitempty"`
}
