-- Under WATCH, in one round trip: the state, whether a rebuild fences the symbol, whether the
-- symbol already has a view (a lost state then asks for a rebuild instead of starting from empty),
-- whether a rebuild's swap asks calc to wait, and, per batch of the step, whether it has already
-- applied the symbol (its done-marker hash names the symbol).
-- KEYS: state, rebuild fence, view-order hash, rebuild seal, then one done-marker per batch.
-- ARGV: symbol.
local out = {redis.call('GET', KEYS[1]), redis.call('EXISTS', KEYS[2]),
             redis.call('HEXISTS', KEYS[3], ARGV[1]), redis.call('EXISTS', KEYS[4])}
for i = 5, #KEYS do
  out[#out + 1] = redis.call('HEXISTS', KEYS[i], ARGV[1])
end
return out
