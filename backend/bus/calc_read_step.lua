-- Under WATCH, in one round trip: the state, whether a rebuild fences the symbol, whether the
-- symbol already has a view (a lost state then asks for a rebuild instead of starting from empty),
-- whether a rebuild's swap asks calc to wait, per batch of the step whether it has already
-- applied the symbol (its done-marker hash names the symbol), and what the merge will most likely
-- ask of the window: its entries at or before CUTOFF (those the step evicts when its newest tick
-- moves the window) and the first entry after it. CUTOFF '' reads no window.
-- KEYS: state, rebuild fence, view-order hash, rebuild seal, window (by time), then one
--       done-marker per batch.
-- ARGV: symbol, cutoff.
local out = {redis.call('GET', KEYS[1]), redis.call('EXISTS', KEYS[2]),
             redis.call('HEXISTS', KEYS[3], ARGV[1]), redis.call('EXISTS', KEYS[4]), {}, {}}
if ARGV[2] ~= '' then
  out[5] = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', ARGV[2], 'WITHSCORES')
  out[6] = redis.call('ZRANGEBYSCORE', KEYS[5], '(' .. ARGV[2], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
end
for i = 6, #KEYS do
  out[#out + 1] = redis.call('HEXISTS', KEYS[i], ARGV[1])
end
return out
