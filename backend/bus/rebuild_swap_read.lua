-- A rebuild's swap, under WATCH, at one instant: the fence hash and every calc message body.
-- KEYS: rebuild fence, then the message hashes (queue msgs, delay queue msgs, dead letter msgs).
local bodies = {}
for i = 2, #KEYS do
  local values = redis.call('HVALS', KEYS[i])
  for j = 1, #values do
    bodies[#bodies + 1] = values[j]
  end
end
return {redis.call('HGETALL', KEYS[1]), bodies}
