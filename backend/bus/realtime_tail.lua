-- The ring's last generated id and every stored view, atomically: what the gateway starts from.
-- KEYS: ring stream, symbols hash. ARGV: the view key prefix (view key = prefix .. symbol).
-- Returns {last_id, {symbols...}, {views...}} (a view is false when the symbol has none).
local last = '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
local symbols = redis.call('HKEYS', KEYS[2])
local views = {}
for i, symbol in ipairs(symbols) do
  views[i] = redis.call('GET', ARGV[1] .. symbol)
end
return {last, symbols, views}
