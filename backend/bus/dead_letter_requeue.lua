-- Move one dead letter back to its queue, only if its body is still the one the caller read.
-- KEYS: xq, xq.msgs, queue list, queue msgs, reasons, stats.
-- ARGV: message_id, expected body, new body, ticks it carries (back into the backlog).
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
redis.call('RPUSH', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
if tonumber(ARGV[4]) > 0 then
  redis.call('HINCRBY', KEYS[6], 'calc_dead_ticks', -tonumber(ARGV[4]))
end
return 1
