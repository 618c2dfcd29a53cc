package redisstore

import "github.com/redis/go-redis/v9"

// The Lua scripts. Every script is deterministic (the fresh epoch and the
// clock come from Go), touches only keys of one room (one Cluster slot) and
// writes either everything or nothing:
//   - its first write is a command Redis refuses when out of memory (SET,
//     XADD), so an OOM script fails before it changes anything, and once a
//     script has written Redis lets it finish;
//   - the one command that can fail on data (XADD, when the log is ahead of
//     seq) runs under pcall before any other write of the append.
//
// Seqs are Lua numbers (doubles) inside the scripts: exact below 2^53.

// ensureLua defines ensure() and rotate(), shared by all ledger scripts.
// ensure returns the room's epoch and seq, starting a new epoch when there is
// none or the data is inconsistent, and why it rotated: 0 no rotation,
// 1 epoch missing, 2 seq missing or below the caller's floor (lost writes),
// 3 log ahead of seq.
const ensureLua = `
local function rotate(ke, ks, kl, epoch, ttl)
  if ttl > 0 then
    redis.call('SET', ke, epoch, 'PX', ttl)
    redis.call('SET', ks, '0', 'PX', ttl)
  else
    redis.call('SET', ke, epoch)
    redis.call('SET', ks, '0')
  end
  redis.call('DEL', kl)
  return epoch, '0'
end

local function ensure(ke, ks, kl, newEpoch, floorEpoch, floorSeq, ttl)
  local epoch = redis.call('GET', ke)
  local seq = redis.call('GET', ks)
  local why = 0
  if not epoch then
    why = 1
  elseif not seq or not tonumber(seq) then
    why = 2
  elseif epoch == floorEpoch and tonumber(seq) < tonumber(floorSeq) then
    why = 2
  end
  if why ~= 0 then
    epoch, seq = rotate(ke, ks, kl, newEpoch, ttl)
  end
  return epoch, seq, why
end
`

// headScript: KEYS epoch, seq, log; ARGV newEpoch, floorEpoch, floorSeq,
// ledgerTTL ms. Returns {epoch, seq, why}.
var headScript = redis.NewScript(ensureLua + `
local epoch, seq, why = ensure(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]))
return {epoch, seq, why}
`)

// sinceScript: KEYS epoch, seq, log; ARGV newEpoch, floorEpoch, floorSeq,
// ledgerTTL ms, asked epoch, first seq wanted, count. Returns {epoch, seq,
// why, XRANGE reply}; the range is read only when the asked epoch is current.
var sinceScript = redis.NewScript(ensureLua + `
local epoch, seq, why = ensure(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]))
local ents = {}
if epoch == ARGV[5] and tonumber(ARGV[6]) <= tonumber(seq) then
  ents = redis.call('XRANGE', KEYS[3], ARGV[6] .. '-0', seq .. '-0', 'COUNT', ARGV[7])
end
return {epoch, seq, why, ents}
`)

// appendScript: KEYS epoch, seq, log, idem, owner; ARGV newEpoch, floorEpoch,
// floorSeq, ledgerTTL ms, entry body, nonce, idem TTL ms, retention, fence
// node ("" = no fencing). Returns {seq, epoch, body, state, why}: state 0 new
// (body ""), 1 duplicate of an earlier call, 2 this call's own record (a
// go-redis retry of a script that ran).
var appendScript = redis.NewScript(ensureLua + `
if ARGV[9] ~= '' and redis.call('GET', KEYS[5]) ~= ARGV[9] then
  return redis.error_reply('NOTOWNER the room is owned by another node')
end
local rec = redis.call('HMGET', KEYS[4], 's', 'e', 'b', 'n')
if rec[1] then
  local state = 1
  if rec[4] == ARGV[6] then state = 2 end
  return {rec[1], rec[2], rec[3], state, 0}
end
local ttl = tonumber(ARGV[4])
local epoch, seq, why = ensure(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ttl)
local nxt = string.format('%d', tonumber(seq) + 1)
local r = redis.pcall('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], nxt .. '-0', 'b', ARGV[5])
if type(r) == 'table' and r.err then
  if not string.find(r.err, 'equal or smaller', 1, true) then
    return redis.error_reply(r.err)
  end
  epoch, seq = rotate(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ttl)
  why = 3
  nxt = '1'
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '1-0', 'b', ARGV[5])
end
if ttl > 0 then
  redis.call('SET', KEYS[2], nxt, 'PX', ttl)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
else
  redis.call('SET', KEYS[2], nxt)
end
redis.call('HSET', KEYS[4], 's', nxt, 'e', epoch, 'b', ARGV[5], 'n', ARGV[6])
redis.call('PEXPIRE', KEYS[4], ARGV[7])
return {nxt, epoch, '', 0, why}
`)

// sanctionsScript: KEYS one sanctions hash; ARGV now (Unix ms). Deletes the
// expired fields and returns the others as {field, until, field, until…}.
// Reading and deleting in one script cannot remove a sanction set between.
var sanctionsScript = redis.NewScript(`
local all = redis.call('HGETALL', KEYS[1])
local now = tonumber(ARGV[1])
local live = {}
for i = 1, #all, 2 do
  local u = tonumber(all[i + 1])
  if u and u ~= 0 and u <= now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    live[#live + 1] = all[i]
    live[#live + 1] = all[i + 1]
  end
end
return live
`)
