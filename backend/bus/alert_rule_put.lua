-- Put a rule into the workers' mirror unless the mirror already holds the same or a newer
-- version of it (two API requests, or the API and the history flusher, may write in either
-- order: the newest version wins), and move the mirror's version so every worker reloads.
-- KEYS: the rules hash, the version counter.  ARGV: rule id, rule JSON, rule version.
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local stored = cjson.decode(current)['version']
  if stored and tonumber(stored) >= tonumber(ARGV[3]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
return 1
