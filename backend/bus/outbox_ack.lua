-- Acknowledge and delete written outbox entries; take the ticks of the entries this call really
-- deleted off the `outbox_ticks` backlog counter (an entry two flushers wrote is counted off once).
-- KEYS: outbox stream, stats.  ARGV: group, then (entry id, ticks it carries) per entry.
local deleted = 0
for i = 2, #ARGV, 2 do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    deleted = deleted + tonumber(ARGV[i + 1])
  end
end
if deleted > 0 then
  redis.call('HINCRBY', KEYS[2], 'outbox_ticks', -deleted)
end
return deleted
