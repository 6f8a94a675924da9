-- Delete hash fields only if they still hold the value the caller saw: a writer that changed a
-- field in between keeps its fresh value.
-- KEYS: the hash.  ARGV: (field, expected value) pairs.
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
