-- Release a webhook host's slot (unless the token is empty: the stranded-job sweep) and, in the
-- same step, hand each free slot to the oldest parked job of the host: the slot is reserved
-- under the job's token (so it counts as taken until the job runs or the lease runs out) and the
-- job's ready message goes onto the deliver queue. A host's backlog so drains at exactly the
-- rate the host answers, oldest first, and nothing bounces while it waits.
-- KEYS: the host's slot set, the host's parked list, the set of hosts with parked jobs,
--       the deliver queue list, the deliver queue's messages hash, the stats hash.
-- ARGV: token or '', now_ms, lease expiry ms, limit, host, un-parked counter name.
-- A parked entry is: slot token (32 chars) .. message id (36 chars) .. message body.
-- Returns how many parked jobs were moved.
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[1], ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local free = tonumber(ARGV[4]) - redis.call('ZCARD', KEYS[1])
local moved = 0
while moved < free do
  local entry = redis.call('LPOP', KEYS[2])
  if not entry then break end
  local id = string.sub(entry, 33, 68)
  redis.call('ZADD', KEYS[1], ARGV[3], string.sub(entry, 1, 32))
  redis.call('HSET', KEYS[5], id, string.sub(entry, 69))
  redis.call('RPUSH', KEYS[4], id)
  moved = moved + 1
end
if moved > 0 then
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
  redis.call('HINCRBY', KEYS[6], ARGV[6], moved)
end
if redis.call('LLEN', KEYS[2]) == 0 then redis.call('ZREM', KEYS[3], ARGV[5]) end
return moved
