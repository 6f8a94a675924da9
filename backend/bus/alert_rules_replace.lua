-- Make the rules mirror exactly the given rules, unless the mirror's version moved since the
-- caller read it (a rule was put or deleted meanwhile, possibly after the caller's snapshot of
-- PostgreSQL was taken: replacing now could undo it; the caller reads again instead).
-- KEYS: the rules hash, the version counter.  ARGV: the version read, then (id, JSON) pairs.
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('INCR', KEYS[2])
return 1
