-- Take one of a webhook host's delivery slots, or park the job if none is free. Leases past
-- their expiry are dropped first (a worker that died mid-attempt frees its slot when its lease
-- runs out). A token already in the set is a slot reserved for this job by the release that
-- un-parked it: the job takes it (its lease renewed). Parking and the failed acquire are one
-- step, so a release either sees the parked job or the job sees the freed slot: none is lost.
-- KEYS: the host's slot set (member = lease token, score = lease expiry in ms), the host's parked
--       list, the set of hosts with parked jobs, the stats hash.
-- ARGV: now_ms, lease expiry ms, limit, token, host, parked entry, parked counter name.
-- Returns 1 if a slot is taken, else 0 (the job is parked).
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[4])
    or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
  return 1
end
redis.call('RPUSH', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[3], 'NX', ARGV[1], ARGV[5])
redis.call('HINCRBY', KEYS[4], ARGV[7], 1)
return 0
