-- A client's catch-up read: the ring's bounds and up to COUNT entries after an id, atomically,
-- so the caller can tell whether the ring still held everything after that id when it read.
-- KEYS: ring stream. ARGV: after id, count.
-- Returns {first entry id or '', last generated id, {entries...}}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'', '0-0', {}}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local first, last = '', '0-0'
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last = info[i + 1] end
  if info[i] == 'first-entry' and info[i + 1] then first = info[i + 1][1] end
end
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
return {first, last, entries}
