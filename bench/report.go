package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/danmaku/danmaku/bench/load"
	"github.com/danmaku/danmaku/bench/stats"
)

// Report is everything a run measured; --json writes it as is.
type Report struct {
	Scenario    string    `json:"scenario"`
	Description string    `json:"description,omitempty"`
	RunID       string    `json:"run_id"`
	Targets     []string  `json:"targets"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	// Elapsed is the wall time from the first dial to the finish, seconds.
	Elapsed float64 `json:"elapsed_s"`
	Workers int     `json:"workers"`
	// Passed is true when every check passed; Interrupted when the run was
	// stopped (Ctrl-C) before its end, in which case it is never passed.
	Passed      bool     `json:"passed"`
	Interrupted bool     `json:"interrupted,omitempty"`
	Checks      []Check  `json:"checks"`
	Warnings    []string `json:"warnings,omitempty"`

	Viewers    Viewers                  `json:"viewers"`
	Connect    Connect                  `json:"connect"`
	Latency    map[string]stats.Latency `json:"latency"` // "lossy", "reliable": live end-to-end
	Reconnect  Reconnect                `json:"reconnect"`
	Traffic    Traffic                  `json:"traffic"`
	Deliveries Deliveries               `json:"deliveries"`
	Reliable   Reliable                 `json:"reliable"`
	Lossy      Lossy                    `json:"lossy"`
	Client     Client                   `json:"client"`
	Servers    []Server                 `json:"servers,omitempty"`
	Series     Series                   `json:"series"`
	// Counters are the workers' raw counters, summed.
	Counters load.Counters `json:"counters"`
}

// Check is one target against what was measured.
type Check struct {
	Name   string  `json:"name"`
	Target string  `json:"target"`
	Actual string  `json:"actual"`
	Pass   bool    `json:"pass"`
	Limit  float64 `json:"limit"`
	Value  float64 `json:"value"`
	Detail string  `json:"detail,omitempty"`
}

// Viewers counts viewers.
type Viewers struct {
	Planned        int64 `json:"planned"`
	Started        int64 `json:"started"`
	FirstJoins     int64 `json:"first_joins"`
	PeakConnected  int64 `json:"peak_connected"`
	NeverJoined    int64 `json:"never_joined"`
	NotJoinedAtEnd int64 `json:"not_joined_at_end"`
	Left           int64 `json:"left"` // dropped by a step that said reconnect: false
}

// Connect is connection setup.
type Connect struct {
	// Needed are first connects plus reconnects after a break; Done those
	// that reached joined/resumed; SuccessRatio = Done / Needed.
	Needed       int64            `json:"needed"`
	Done         int64            `json:"done"`
	SuccessRatio float64          `json:"success_ratio"`
	Dials        int64            `json:"dials"`
	DialFailures int64            `json:"dial_failures"`
	Failures     map[string]int64 `json:"failures,omitempty"`
	ConnectTime  stats.Latency    `json:"connect_time"` // dial to welcome
	JoinTime     stats.Latency    `json:"join_time"`    // join to joined
}

// Reconnect is the breaks and their repair.
type Reconnect struct {
	Drops            int64            `json:"drops"`
	ServerReconnects int64            `json:"server_reconnects"`
	Disconnects      int64            `json:"disconnects"`
	Reasons          map[string]int64 `json:"reasons,omitempty"`
	Time             stats.Latency    `json:"time"` // break to resumed
}

// Traffic is what senders sent and what became of it.
type Traffic struct {
	ChatsSent       int64            `json:"chats_sent"`
	ChatsAcked      int64            `json:"chats_acked"`
	ChatsSampledOut int64            `json:"chats_sampled_out"`
	ChatsRejected   int64            `json:"chats_rejected"`
	ChatsUnacked    int64            `json:"chats_unacked"`
	ChatsSkipped    int64            `json:"chats_skipped"`
	LikesSent       int64            `json:"likes_sent"`
	LikesAcked      int64            `json:"likes_acked"`
	GiftsStarted    int64            `json:"gifts_started"`
	GiftAttempts    int64            `json:"gift_attempts"`
	GiftsAcked      int64            `json:"gifts_acked"`
	GiftDupAcks     int64            `json:"gift_dup_acks"`
	GiftsRejected   int64            `json:"gifts_rejected"`
	GiftsPending    int64            `json:"gifts_pending"`
	Rejections      map[string]int64 `json:"rejections,omitempty"` // by request kind and code
	ServerErrors    map[string]int64 `json:"server_errors,omitempty"`
}

// Deliveries is what viewers read.
type Deliveries struct {
	Batches         int64 `json:"batches"`
	BytesIn         int64 `json:"bytes_in"`
	LossyEntries    int64 `json:"lossy_entries"`
	ReliableEntries int64 `json:"reliable_entries"`
	ReplayEntries   int64 `json:"replay_entries"`
	LikesIn         int64 `json:"likes_in"`
	MissedBatches   int64 `json:"missed_batches"`
	BadFrames       int64 `json:"bad_frames"`
}

// Reliable is the exactly-once check.
type Reliable struct {
	stats.Tally
	Rooms        int               `json:"rooms"`
	Heads        map[string]uint64 `json:"heads"`
	GapResumes   int64             `json:"gap_resumes"`
	Unrecovered  int64             `json:"unrecovered"`
	EpochChanges int64             `json:"epoch_changes"`
	// Ledger check: acked gifts against the entries viewers saw.
	GiftsChecked int64    `json:"gifts_checked"`
	Doubled      int64    `json:"doubled"`       // one purchase (user, ct) under two seqs
	AckMismatch  int64    `json:"ack_mismatch"`  // the entry at an acked seq is not that gift
	SeqConflicts int64    `json:"seq_conflicts"` // two acks of one key with different seqs
	LaneConflict int64    `json:"lane_conflict"` // two viewers saw different entries at one seq
	Unseen       int64    `json:"unseen"`        // acked gifts no viewer saw
	Examples     []string `json:"examples,omitempty"`
}

// Lossy is the lossy accounting over steady viewers.
type Lossy struct {
	SteadyViewers int64   `json:"steady_viewers"`
	Sent          uint64  `json:"sent"`
	Received      uint64  `json:"received"`
	Dropped       uint64  `json:"dropped_by_policy"`
	BeyondP50     float64 `json:"beyond_budget_p50"`
	BeyondP99     float64 `json:"beyond_budget_p99"`
	BeyondMax     float64 `json:"beyond_budget_max"`
}

// Client is the bench's own cost.
type Client struct {
	Workers     int     `json:"workers"`
	CPUSeconds  float64 `json:"cpu_seconds"` // workers and coordinator
	CPUCores    float64 `json:"cpu_cores"`   // CPU seconds / elapsed
	PeakRSS     int64   `json:"peak_rss_bytes"`
	RSSPerConn  int64   `json:"rss_per_conn_bytes"`
	WorkerConns []int64 `json:"worker_peak_conns"`
}

// Server is one scraped /metrics endpoint.
type Server struct {
	URL       string             `json:"url"`
	Reachable bool               `json:"reachable"`
	Error     string             `json:"error,omitempty"`
	CPUSecs   float64            `json:"cpu_seconds"`
	CPUCores  float64            `json:"cpu_cores"`
	RSS       float64            `json:"rss_bytes"`
	PeakRSS   float64            `json:"peak_rss_bytes"`
	Drops     map[string]float64 `json:"drops,omitempty"` // counter series with "drop" in the name: increase over the run
	Gauges    map[string]float64 `json:"gauges,omitempty"`
}

// Series are per-second points for the charts.
type Series struct {
	T              []float64 `json:"t_s"`
	Connected      []int64   `json:"connected"`
	Joined         []int64   `json:"joined"`
	LossyP50       []float64 `json:"lossy_p50_ms"`
	LossyP99       []float64 `json:"lossy_p99_ms"`
	ReliableP99    []float64 `json:"reliable_p99_ms"`
	LossyPerSec    []float64 `json:"lossy_per_s"`
	ReliablePerSec []float64 `json:"reliable_per_s"`
	BatchesPerSec  []float64 `json:"batches_per_s"`
	ChatsPerSec    []float64 `json:"chats_sent_per_s"`
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
