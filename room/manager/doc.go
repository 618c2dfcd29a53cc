// Package manager is the room manager: the single owner of a room's traffic.
// It admits what viewers send (bans, mutes, text limits, per-user rates, room
// modes, duplicate suppression), sorts it into the reliable lane (gifts,
// notices, moderation, room state: sequenced and persisted through a Ledger
// before they are acked or broadcast) and the lossy lane (chat, likes, enter
// notices: cut to the room's budget by priority, merged, dropped and counted),
// and emits one encoded batch per tick to a Sink.
//
// It must not import the edge, NATS or Redis: it talks to them through Sink,
// Ledger and State, so it is testable and benchmarkable alone. The memory
// store here serves a single node; fanout/redisstore serves a cluster.
package manager
