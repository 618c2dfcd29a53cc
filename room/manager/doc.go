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
//
// # One message's path
//
// Manager.Submit (never blocks) → the room's bounded inbox → the room
// goroutine: handle → admitChat → sample (a reservoir per priority class) →
// emit at the tick (takeChats: staff, then vip, then viewers, up to the budget
// credit) → publish1 (encode once, Sink.Publish). Gifts and publishes go
// handle → gift/publish → authorize (webhook, off the room goroutine) →
// persist (the room's one persister goroutine, Ledger.Append in order) →
// onPersisted (ack, then the next batch).
//
// # Rooms
//
// A room starts on its first request and reads its state from the store
// (epoch and seq, the newest reliable entries for resumes, backlog,
// sanctions, policy). It stops after Config.IdleTimeout without requests and
// with nothing pending, saving its backlog; an idle room costs nothing.
// Release and Close flush a room: queued requests are handled, work in flight
// completes, everything persisted is acked and broadcast.
//
// # Choices the edge and clients rely on
//
//   - Chat acks: a rejected chat is acked at once with its code. An admitted
//     chat is acked when its fate is known: at the tick that broadcasts it
//     (accepted, with its MsgID) or samples it out (SampledOut, no code), or
//     earlier if the reservoir pushes it out. So a chat's ack may take up to
//     one tick (plus any backpressure stretch).
//   - MsgID is a per-room counter started at the activation time in µs: unique
//     within a room and epoch as long as a room takes under a million
//     messages a second.
//   - Mutes silence chat only: muted users may still like, gift and watch.
//     Bans stop everything, joins included. Global (Room "") sanctions apply
//     in every room.
//   - Gift idempotency keys are per sender (the user id is part of the stored
//     key); a retry is answered from the room's recent-key cache, else by the
//     Ledger. The gift webhook may be asked again for a retry the room no
//     longer remembers, so it must answer a repeated key as it did the first
//     time.
//   - RoomState.Seq in a join is the last reliable seq broadcast: entries after
//     it arrive in the following batches.
//   - Batch.Dropped counts lossy messages dropped by policy in that tick
//     (budget and enter_budget); every rejection and drop is also counted by
//     reason (Manager.Counters, danmaku_room_dropped_total).
package manager
