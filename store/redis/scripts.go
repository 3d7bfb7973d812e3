package redisstore

import "github.com/redis/go-redis/v9"

// Lua scripts. Each store operation that reads and then writes is one script,
// so it is atomic and costs one round trip. Every key a script touches
// shares the store's hash tag, so a script never crosses a Cluster slot.
//
// Times inside Redis are microseconds since the epoch, taken from the
// server's TIME: every instance of the shop then judges leases by the same
// clock. Numbers are formatted with %.0f because Lua's tostring would print
// 16-digit numbers in exponent form.

const luaCommon = `
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function fmt(n) return string.format('%.0f', n) end
`

// Result codes shared by the scripts.
const (
	codeOK       = 0
	codeLost     = 1 // ErrClaimLost
	codeConflict = 2 // ErrVersionConflict
	codeNotFound = 3 // ErrNotFound
)

// claimScript: KEYS rec, lease, stale, payment. ARGV key, fingerprint, token,
// lease ms, ttl ms, payment id, payment JSON, "1" when the claim is for a new
// payment. Returns {claimed, HGETALL rec}, or {2, {}} when that new payment
// exists already.
//
// The lease is its own key taken with SET NX PX: it exists while the holder's
// lease runs, and a takeover is exactly a successful SET NX on it by a
// request with the same fingerprint.
var claimScript = redis.NewScript(luaCommon + `
local now = now_us()
local lease = tonumber(ARGV[4])
local lu = fmt(now + lease * 1000)
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[8] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then
    -- The payment exists though its key's record expired: replay it.
    return {2, {}}
  end
  local ttl = tonumber(ARGV[5])
  redis.call('SET', KEYS[2], ARGV[3], 'PX', lease)
  redis.call('HSET', KEYS[1], 'fp', ARGV[2], 'tok', ARGV[3], 'st', 'f', 'pid', ARGV[6], 'pay', ARGV[7],
    'lu', lu, 'ex', fmt(now + ttl * 1000), 'ca', fmt(now), 'to', '0')
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('ZADD', KEYS[3], lu, ARGV[1])
  return {1, redis.call('HGETALL', KEYS[1])}
end
local r = redis.call('HMGET', KEYS[1], 'fp', 'st')
if r[2] == 'f' and r[1] == ARGV[2] and redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', lease) then
  redis.call('HSET', KEYS[1], 'tok', ARGV[3], 'lu', lu, 'to', '1')
  redis.call('ZADD', KEYS[3], lu, ARGV[1])
  return {1, redis.call('HGETALL', KEYS[1])}
end
return {0, redis.call('HGETALL', KEYS[1])}
`)

// checkpointScript: KEYS rec, lease, stale. ARGV key, token, lease ms,
// payment id, payment JSON.
var checkpointScript = redis.NewScript(luaCommon + `
local r = redis.call('HMGET', KEYS[1], 'st', 'tok')
if r[1] ~= 'f' or r[2] ~= ARGV[2] then return 1 end
local lease = tonumber(ARGV[3])
local lu = fmt(now_us() + lease * 1000)
redis.call('SET', KEYS[2], ARGV[2], 'PX', lease)
redis.call('HSET', KEYS[1], 'pid', ARGV[4], 'pay', ARGV[5], 'lu', lu)
redis.call('ZADD', KEYS[3], lu, ARGV[1])
return 0
`)

// releaseScript: KEYS rec, lease, stale. ARGV key, token.
var releaseScript = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'st', 'tok')
if r[1] ~= 'f' or r[2] ~= ARGV[2] then return 1 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return 0
`)

// luaSave is the payment compare-and-set shared by SavePayment and
// CompleteIdempotency. It keeps the provider-reference index and the
// unsettled set in the same step, so no reader sees one without the other.
const luaSave = `
local function refkey(prefix, pr, rf) return prefix .. 'r:' .. #pr .. ':' .. pr .. ':' .. rf end
-- kpay, kuns, kref: keys; a: {prefix, id, expected, newv, json, provider, ref, unsettled, score}
local function save(kpay, kuns, kref, a)
  local old = redis.call('HMGET', kpay, 'v', 'pr', 'rf')
  if a[3] == '0' then
    if old[1] then return 2 end
  elseif old[1] ~= a[3] then
    return 2
  end
  redis.call('HSET', kpay, 'v', a[4], 'j', a[5], 'pr', a[6], 'rf', a[7])
  if old[3] and old[3] ~= '' and (old[2] ~= a[6] or old[3] ~= a[7]) then
    local ok = refkey(a[1], old[2], old[3])
    if redis.call('GET', ok) == a[2] then redis.call('DEL', ok) end
  end
  if a[7] ~= '' then redis.call('SET', kref, a[2]) end
  if a[8] == '1' then
    redis.call('ZADD', kuns, a[9], a[2])
  else
    redis.call('ZREM', kuns, a[2])
  end
  return 0
end
`

// saveScript: KEYS payment, unsettled, ref. ARGV prefix, id, expected,
// new version, JSON, provider, ref, unsettled flag, updated-at score.
var saveScript = redis.NewScript(luaSave + `
return save(KEYS[1], KEYS[2], KEYS[3], ARGV)
`)

// completeScript: KEYS rec, lease, stale, payment, unsettled, ref. ARGV
// the save arguments, then key, token.
var completeScript = redis.NewScript(luaSave + `
local r = redis.call('HMGET', KEYS[1], 'st', 'tok')
if r[1] ~= 'f' or r[2] ~= ARGV[11] then return 1 end
local res = save(KEYS[4], KEYS[5], KEYS[6], ARGV)
if res ~= 0 then return res end
redis.call('HSET', KEYS[1], 'st', 'c', 'pid', ARGV[2], 'pay', ARGV[5])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[10])
return 0
`)

// byRefScript: KEYS ref. ARGV prefix. Returns the payment JSON or nil.
var byRefScript = redis.NewScript(`
local id = redis.call('GET', KEYS[1])
if not id then return false end
return redis.call('HGET', ARGV[1] .. 'p:' .. id, 'j')
`)

// listUnsettledScript: KEYS unsettled. ARGV prefix, before score
// (exclusive), limit. Returns payment JSONs, oldest first.
var listUnsettledScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local j = redis.call('HGET', ARGV[1] .. 'p:' .. id, 'j')
  if j then out[#out + 1] = j end
end
return out
`)

// listStaleScript: KEYS stale. ARGV prefix, before score (exclusive),
// limit. Returns {key, HGETALL rec, ...}. Members whose record expired or
// finished are dropped from the set on the way.
var listStaleScript = redis.NewScript(`
local limit = tonumber(ARGV[3])
local out, dead, offset = {}, {}, 0
while #out < 2 * limit do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', offset, 100)
  if #ids == 0 then break end
  for _, k in ipairs(ids) do
    local rk = ARGV[1] .. 'i:' .. k
    if redis.call('HGET', rk, 'st') == 'f' then
      out[#out + 1] = k
      out[#out + 1] = redis.call('HGETALL', rk)
      if #out >= 2 * limit then break end
    else
      dead[#dead + 1] = k
    end
  end
  offset = offset + #ids
end
for _, k in ipairs(dead) do redis.call('ZREM', KEYS[1], k) end
return out
`)

// claimEventScript: KEYS event. ARGV lease ms. Returns 0 claimed,
// 1 duplicate, 2 busy. The value is 1 while in flight, 2 once processed.
var claimEventScript = redis.NewScript(`
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
if redis.call('GET', KEYS[1]) == '2' then return 1 end
return 2
`)

// claimEventForPaymentScript: KEYS event, payment reference. ARGV lease
// ms, payment key prefix. claimEventScript, and on a claim also what
// byRefScript returns: {0, payment JSON or false}, {1} or {2}. The event key
// is outside the hash tag: this script runs only where every key lives on
// one server.
var claimEventForPaymentScript = redis.NewScript(`
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  local id = redis.call('GET', KEYS[2])
  if not id then return {0, false} end
  return {0, redis.call('HGET', ARGV[2] .. 'p:' .. id, 'j')}
end
if redis.call('GET', KEYS[1]) == '2' then return {1} end
return {2}
`)

// releaseEventScript: KEYS event. Forgets only an in-flight claim.
var releaseEventScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == '1' then redis.call('DEL', KEYS[1]) end
return 0
`)

// enqueueScript: KEYS delivery, due. ARGV id, JSON, state, attempts,
// next-attempt ns, last error, next-attempt score. Returns 1 if inserted.
var enqueueScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'j', ARGV[2], 'st', ARGV[3], 'att', ARGV[4], 'nx', ARGV[5], 'le', ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[1])
return 1
`)

// completeEventScript: KEYS delivery, due, event. ARGV the enqueue
// arguments (as enqueueScript), then the event TTL ms. The delivery is
// written before the event is marked, so even a script that failed half
// way (Redis does not roll a script back) never leaves a processed event
// without its delivery. The event key is outside the hash tag: this script
// runs only where every key lives on one server.
var completeEventScript = redis.NewScript(luaEnqueueAndMark + `
return 0
`)

// luaEnqueueAndMark is the body that completeEventScript and
// completeUnchangedEventScript share: enqueue the delivery unless it
// exists (KEYS[1], KEYS[2], ARGV[1..7] as enqueueScript), then mark the
// event (KEYS[3]) processed for ARGV[8] ms.
const luaEnqueueAndMark = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'j', ARGV[2], 'st', ARGV[3], 'att', ARGV[4], 'nx', ARGV[5], 'le', ARGV[6])
  redis.call('ZADD', KEYS[2], ARGV[7], ARGV[1])
end
redis.call('SET', KEYS[3], '2', 'PX', ARGV[8])`

// completeUnchangedEventScript: KEYS delivery, due, event, payment. ARGV
// the enqueue arguments (as enqueueScript), the event TTL ms, then the
// payment's version. Returns 1 if the event had no key and the payment is
// at that version, and it enqueued the delivery and marked the event; 0,
// having written nothing, otherwise. The event key is outside the hash
// tag: this script runs only where every key lives on one server.
var completeUnchangedEventScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if redis.call('HGET', KEYS[4], 'v') ~= ARGV[9] then return 0 end` + luaEnqueueAndMark + `
return 1
`)

// completeDeliveriesScript: KEYS due, then one delivery key per id. ARGV
// delivered TTL ms, then the ids in the order of their keys. Missing
// entries are skipped.
var completeDeliveriesScript = redis.NewScript(`
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('HSET', KEYS[i], 'st', 'delivered')
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  end
  redis.call('ZREM', KEYS[1], ARGV[i])
end
return 0
`)

// claimDueScript: KEYS due. ARGV prefix, now score (inclusive), limit,
// lease-end ns, lease-end score. Returns {id, HGETALL delivery, ...}.
var claimDueScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local k = ARGV[1] .. 'd:' .. id
  if redis.call('HGET', k, 'st') == 'pending' then
    redis.call('HSET', k, 'nx', ARGV[4])
    redis.call('ZADD', KEYS[1], ARGV[5], id)
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGETALL', k)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
`)

// deliveryUpdateScript: KEYS delivery, due. ARGV id, op ("done", "retry",
// "dead"), last error, next-attempt ns, next-attempt score, delivered TTL ms.
var deliveryUpdateScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 3 end
local op = ARGV[2]
if op == 'done' then
  redis.call('HSET', KEYS[1], 'st', 'delivered')
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
elseif op == 'retry' then
  redis.call('HINCRBY', KEYS[1], 'att', 1)
  redis.call('HSET', KEYS[1], 'le', ARGV[3], 'nx', ARGV[4])
  if redis.call('HGET', KEYS[1], 'st') == 'pending' then redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1]) end
else
  redis.call('HINCRBY', KEYS[1], 'att', 1)
  redis.call('HSET', KEYS[1], 'le', ARGV[3], 'st', 'dead')
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 0
`)
