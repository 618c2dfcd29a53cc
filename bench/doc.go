// Package bench is `danmaku bench`, the operators' pre-event load tool: it
// replays an event described in a scenario file (bench/scenario) against a
// real deployment and says whether it held — exit 0 when every target (SLO)
// was met, 1 when one was missed, 2 when the run could not be made.
//
// The coordinator (this package) checks the targets, spawns worker
// processes of its own binary (`danmaku bench-worker`, WorkerMain; each runs
// bench/load and stays below the open-files limit), follows their streamed
// stats (progress bars, per-second series), ends the drain once nothing is
// in flight, merges their HDR histograms and counters, checks the gift
// ledger and every viewer's exactly-once tally, scrapes the servers'
// /metrics, and writes the summary table, --json and --html.
//
// The cmd/danmaku wiring is two lines: `bench` calls Main and
// `bench-worker` calls WorkerMain. Tests and CI call RunScenario.
//
// It imports room/proto, room/auth and its own subpackages; never the
// server (edge, fanout, room/manager).
package bench
