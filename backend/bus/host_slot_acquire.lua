-- Take one of a webhook host's delivery slots, if one is free: leases past their expiry are
-- dropped first (a worker that died mid-attempt frees its slot when its lease runs out).
-- KEYS: the host's slot set (member = lease token, score = lease expiry in ms).
-- ARGV: now_ms, lease expiry ms, limit, token.  Returns 1 if taken, else 0.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
