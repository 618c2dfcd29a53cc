// Package redisstore is the cluster's durable store for rooms: it implements
// manager.Store (the reliable lane's Ledger and the shared room State) on Redis.
//
// It owns the Redis key layout below; the fanout package writes the owner
// lease key, everything else is written only through this package. It imports
// room/proto and room/manager (for the interface types) and go-redis; it must
// not import the edge, NATS or the rest of fanout.
//
// # Key layout
//
// Every key of a room carries the room id as a hash tag, so all of a room's
// keys live in one Redis Cluster slot and one Lua script may touch them all.
// <p> is Config.Prefix ("dmk" by default), <room> a proto.ValidRoom id.
//
//	<p>:{<room>}:epoch          string  the reliable lane's epoch (16 hex chars)
//	<p>:{<room>}:seq            string  last seq assigned in the epoch ("0" when none)
//	<p>:{<room>}:log            stream  reliable entries, entry ID "<seq>-0", one
//	                                    field "b" = the entry's msgpack (proto.Entry.AppendTo)
//	                                    written WITHOUT its seq: the ID carries it
//	<p>:{<room>}:idem:<key>     hash    s=seq e=epoch b=entry msgpack n=call nonce;
//	                                    expires after Config.IdempotencyTTL
//	<p>:{<room>}:try:<nonce>    hash    the same for an append without a key; lives
//	                                    one minute (see "Retries" below)
//	<p>:{<room>}:backlog        list    newest chat entries, msgpack, oldest first
//	<p>:{<room>}:policy         hash    title, budget, tick_ms, slow_ms, vip, closed
//	<p>:{<room>}:sanctions      hash    "mute:<user>" / "ban:<user>" → until, Unix ms (0 = permanent)
//	<p>:{<room>}:owner          string  node id of the room's owner (the fanout
//	                                    package's lease; read here for fencing)
//	<p>:{~global}:sanctions     hash    sanctions in every room, same fields ("~":
//	                                    "global" is a valid room id, "~global" is not)
//
// # Guarantees
//
// Append is one Lua script: the fence check, the idempotency check, the epoch
// check, the next seq, the stream entry and the idempotency record are written
// together or not at all, so a retry with the same key can never get a second
// seq and no reader ever sees half an entry. The epoch is created (by Head,
// Append or Since) when the room has none; when the epoch key is missing, or
// the seq key is missing or below a seq this process has already seen in the
// same epoch (a Redis that lost acknowledged writes), the room gets a fresh
// epoch and seq restarts at 1 with an empty log, so seqs are never reused
// under an old epoch. Every such rotation is logged and counted
// (danmaku_redisstore_epoch_rotations_total).
//
// # Retries
//
// go-redis retries a command whose connection broke after it was written, so
// one Append may run its script twice. Every Append call carries a random
// nonce stored in the idempotency record: a second run of the same call finds
// its own record and returns it as a first append (Duplicate false), while a
// later call with the same key gets Duplicate true. An append without a key
// gets an internal record under :try:<nonce> for the same reason.
//
// # Errors
//
// Every Redis failure (refused, timeout, LOADING, READONLY, OOM…) comes back
// wrapped with the operation and room and wrapping proto.CodeUnavailable, within
// Config.OpTimeout. A fenced append returns ErrNotOwner (also unavailable for
// the client). Data this package cannot parse returns ErrCorrupt
// (proto.CodeInternal); invalid arguments proto.CodeBadRequest.
package redisstore
