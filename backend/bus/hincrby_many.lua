-- Many counters of one hash in one command.  KEYS: the hash.  ARGV: (field, increment) pairs.
for i = 1, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
return #ARGV / 2
