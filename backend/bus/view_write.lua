-- The one write of a symbol's view W, guarded: a view older than the stored one (by its order,
-- zero-padded last_ts µs then last_event_id, so plain string order is event order) is refused,
-- so W never goes backwards whoever writes it (calc, calc-b, /internal/agg-update).
-- KEYS: view, symbols hash, view-order hash, realtime ring.
-- ARGV: symbol, order, view JSON, now µs, ring cap, symbol.updated event.
local current = redis.call('HGET', KEYS[3], ARGV[1])
if current and current > ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 't', 'symbol.updated', 's', ARGV[1], 'd', ARGV[6])
return 1
