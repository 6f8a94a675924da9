-- Under WATCH, in one round trip: has this batch already applied the symbol, and its state.
-- KEYS: done-marker hash, state.  ARGV: symbol.
return {redis.call('HEXISTS', KEYS[1], ARGV[1]), redis.call('GET', KEYS[2])}
