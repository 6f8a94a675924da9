-- Settle the calc messages a step claimed (calc_claim.lua): ACK deletes each applied one, as
-- Dramatiq's ack does; RELEASE puts each back on its queue and marks it solo, as Dramatiq's
-- requeue does, so that it next runs on its own. Ids no longer in the ack set are skipped (a
-- maintenance pass already gave them back).
-- KEYS: this worker's ack set for the queue, queue msgs hash, queue list, solo set.
-- ARGV: 'ack' or 'release', solo ttl s, ids...
local release = ARGV[1] == 'release'
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('SREM', KEYS[1], id) > 0 then
    if not release then
      redis.call('HDEL', KEYS[2], id)
    elseif redis.call('HEXISTS', KEYS[2], id) == 1 then
      redis.call('RPUSH', KEYS[3], id)
      redis.call('SADD', KEYS[4], id)
      redis.call('EXPIRE', KEYS[4], ARGV[2])
    end
  end
end
return #ARGV - 2
