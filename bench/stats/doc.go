// Package stats holds the bench's measuring instruments: HDR latency
// histograms that merge across worker processes (by encoding snapshots), the
// exactly-once checker of reliable sequence numbers, and the lossy-accounting
// arithmetic. It imports nothing of the module; it does no I/O.
package stats
