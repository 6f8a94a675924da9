-- The ingest hand-off (see ingest.py): shed at MAX_BACKLOG, de-duplicate, enqueue, stage.
-- KEYS: queue list, queue msgs, outbox, stats.
-- ARGV: current dedup generation, message_id, message head, message tail, dedup hash prefix
--       (`<ns>:dd:<layout>:`), max backlog, live generations L, seconds until the current
--       generation's hash may expire, legacy marker key, legacy key prefix, the number of trace
--       spans S, then S x (trace id, ticks of the span): the requests' trace ids ('' for none),
--       in the ticks' order; then (shard, id digest, content digest, event_id, content JSON,
--       encoded tick) per tick.
-- De-duplication (backend/core/dedup.py): the id digest is looked up in the shard's hash of the
-- current generation and the L-1 before it; new ones are written into the current one. While
-- the legacy marker exists, a miss also consults the pre-upgrade key `<legacy prefix><event_id>`.
local generation = tonumber(ARGV[1])
local prefix = ARGV[5]
local max_backlog = tonumber(ARGV[6])
local live = tonumber(ARGV[7])
local expire_s = tonumber(ARGV[8])
local legacy_prefix = ARGV[10]
local spans = tonumber(ARGV[11])
local first = 12 + 2 * spans
local per_tick = 6
if max_backlog > 0 then
  local c = redis.call('HMGET', KEYS[4], 'ingest_accepted', 'calc_ticks', 'outbox_ticks',
                       'calc_dead_ticks')
  local waiting_calc = (tonumber(c[1]) or 0) - (tonumber(c[2]) or 0) - (tonumber(c[4]) or 0)
  local waiting_store = tonumber(c[3]) or 0
  local backlog = math.max(waiting_calc, 0) + math.max(waiting_store, 0)
  if backlog >= max_backlog then
    redis.call('HINCRBY', KEYS[4], 'ingest_shed', (#ARGV - first + 1) / per_tick)
    return backlog
  end
end
local statuses = {}
local accepted = {}
local duplicates = 0
local conflicts = 0
-- The distinct trace ids of the accepted ticks ride with them (message arg 2, outbox field r).
local traces = {}
local traced = {}
local span = 0
local span_left = 0
local legacy = redis.call('EXISTS', ARGV[9]) == 1
local prefixes = {}
for g = 0, live - 1 do
  prefixes[g + 1] = prefix .. (generation - g) .. ':'
end
-- Each hash holds a sentinel field '' from its first write on: reading it with the current
-- generation's lookup tells whether this write creates the hash (and must set its expiry)
-- without an EXPIRE per tick.
local current_prefix = prefixes[1]
for i = first, #ARGV, per_tick do
  while span_left == 0 and span < spans do
    span = span + 1
    span_left = tonumber(ARGV[11 + 2 * span])
  end
  span_left = span_left - 1
  local shard = ARGV[i]
  local field = ARGV[i + 1]
  local digest = ARGV[i + 2]
  local current = redis.call('HMGET', current_prefix .. shard, field, '')
  local existing = current[1]
  local g = 2
  while not existing and g <= live do
    existing = redis.call('HGET', prefixes[g] .. shard, field)
    g = g + 1
  end
  local same = existing == digest
  if not existing and legacy then
    existing = redis.call('GET', legacy_prefix .. ARGV[i + 3])
    same = existing == ARGV[i + 4]
  end
  if not existing then
    local key = current_prefix .. shard
    if current[2] then
      redis.call('HSET', key, field, digest)
    else
      redis.call('HSET', key, field, digest, '', '')
      redis.call('EXPIRE', key, expire_s)
    end
    accepted[#accepted + 1] = ARGV[i + 5]
    statuses[#statuses + 1] = 1
    local trace = span > 0 and ARGV[10 + 2 * span] or nil
    if trace and trace ~= '' and not traced[trace] then
      traced[trace] = true
      traces[#traces + 1] = '"' .. trace .. '"'
    end
  elseif same then
    statuses[#statuses + 1] = 2
    duplicates = duplicates + 1
  else
    statuses[#statuses + 1] = existing
    conflicts = conflicts + 1
  end
end
if #accepted > 0 then
  local body = table.concat(accepted, ',')
  local trace_list = table.concat(traces, ',')
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3] .. body .. '],[' .. trace_list .. ARGV[4])
  redis.call('RPUSH', KEYS[1], ARGV[2])
  redis.call('XADD', KEYS[3], '*', 't', '[' .. body .. ']', 'r', '[' .. trace_list .. ']')
  redis.call('HINCRBY', KEYS[4], 'ingest_accepted', #accepted)
  redis.call('HINCRBY', KEYS[4], 'outbox_ticks', #accepted)
end
if duplicates > 0 then
  redis.call('HINCRBY', KEYS[4], 'ingest_duplicate', duplicates)
end
if conflicts > 0 then
  redis.call('HINCRBY', KEYS[4], 'ingest_conflict', conflicts)
end
return statuses
