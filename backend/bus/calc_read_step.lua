-- Under WATCH, in one round trip: has this batch already applied the symbol, its state, whether
-- a rebuild fences the symbol, whether the symbol already has a view (a lost state then asks for
-- a rebuild instead of starting from empty), and whether a rebuild's swap asks calc to wait.
-- KEYS: done-marker hash, state, rebuild fence, view-order hash, rebuild seal.  ARGV: symbol.
return {redis.call('HEXISTS', KEYS[1], ARGV[1]), redis.call('GET', KEYS[2]),
        redis.call('EXISTS', KEYS[3]), redis.call('HEXISTS', KEYS[4], ARGV[1]),
        redis.call('EXISTS', KEYS[5])}
