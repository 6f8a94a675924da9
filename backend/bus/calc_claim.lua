-- calc coalescing (calc_claims.py): a worker about to apply calc messages (its "mains") also takes
-- the calc messages queued behind them, into its own Dramatiq ack set (exactly what Dramatiq's
-- fetch does), so that one step applies them all. Stops at MAX messages, at MAX_BYTES of bodies,
-- and at a message marked solo (it failed in a shared step and must next run on its own, where
-- its own retries and dead-lettering apply). Returns the mains' solo flags first; when every main
-- is solo, nothing is claimed.
-- KEYS: queue list, queue msgs hash, this worker's ack set for the queue, heartbeats, solo set.
-- ARGV: now ms, worker id, max messages, max bytes, then the mains' redis ids.
redis.call('ZADD', KEYS[4], ARGV[1], ARGV[2])
local flags = {}
local shared = 0
for i = 5, #ARGV do
  local solo = redis.call('SISMEMBER', KEYS[5], ARGV[i])
  flags[#flags + 1] = solo
  shared = shared + 1 - solo
end
local out = {flags}
if shared == 0 then
  return out
end
local max_messages = tonumber(ARGV[3])
local max_bytes = tonumber(ARGV[4])
local bytes = 0
for _ = 1, max_messages do
  local id = redis.call('LINDEX', KEYS[1], 0)
  if not id or redis.call('SISMEMBER', KEYS[5], id) == 1 then
    break
  end
  local body = redis.call('HGET', KEYS[2], id)
  if not body or bytes + #body > max_bytes then
    break -- an id without a body is left to Dramatiq's fetch, which reports it
  end
  redis.call('LPOP', KEYS[1])
  redis.call('SADD', KEYS[3], id)
  bytes = bytes + #body
  out[#out + 1] = id
  out[#out + 1] = body
end
return out
