// Package scenario is the bench's scenario file: the YAML format an operator
// writes to describe an event (targets, rooms and viewers, the ramp, chat, likes
// and gifts, timed steps such as a reconnect storm) and the targets (SLOs) the
// run must meet. It parses (unknown keys are errors naming their line), applies
// defaults, validates (errors name the field and its line), applies command-line
// overrides and lays a scenario out into rooms, viewers and a timeline.
//
// bench/README.md documents every key. The package does no I/O beyond reading
// the file and imports nothing of the module but room/proto (room ids, roles).
package scenario
