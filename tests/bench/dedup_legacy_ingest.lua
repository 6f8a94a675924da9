-- The ingest hand-off (see ingest.py): shed at MAX_BACKLOG, de-duplicate, enqueue, stage.
-- KEYS: queue list, queue msgs, outbox, stats.
-- ARGV: dedup ttl, message_id, message head, message tail, dedup prefix, max backlog,
--       the number of trace spans S, then S x (trace id, ticks of the span): the requests'
--       trace ids ('' for none), in the ticks' order; then (event_id, content, encoded tick)
--       per tick.
local ttl = tonumber(ARGV[1])
local prefix = ARGV[5]
local max_backlog = tonumber(ARGV[6])
local spans = tonumber(ARGV[7])
local first = 8 + 2 * spans
if max_backlog > 0 then
  local c = redis.call('HMGET', KEYS[4], 'ingest_accepted', 'calc_ticks', 'outbox_ticks',
                       'calc_dead_ticks')
  local waiting_calc = (tonumber(c[1]) or 0) - (tonumber(c[2]) or 0) - (tonumber(c[4]) or 0)
  local waiting_store = tonumber(c[3]) or 0
  local backlog = math.max(waiting_calc, 0) + math.max(waiting_store, 0)
  if backlog >= max_backlog then
    redis.call('HINCRBY', KEYS[4], 'ingest_shed', (#ARGV - first + 1) / 3)
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
for i = first, #ARGV, 3 do
  while span_left == 0 and span < spans do
    span = span + 1
    span_left = tonumber(ARGV[7 + 2 * span])
  end
  span_left = span_left - 1
  local key = prefix .. ARGV[i]
  local content = ARGV[i + 1]
  if redis.call('SET', key, content, 'NX', 'EX', ttl) then
    accepted[#accepted + 1] = ARGV[i + 2]
    statuses[#statuses + 1] = 1
    local trace = span > 0 and ARGV[6 + 2 * span] or nil
    if trace and trace ~= '' and not traced[trace] then
      traced[trace] = true
      traces[#traces + 1] = '"' .. trace .. '"'
    end
  else
    local existing = redis.call('GET', key)
    if existing == content then
      statuses[#statuses + 1] = 2
      duplicates = duplicates + 1
    else
      statuses[#statuses + 1] = existing
      conflicts = conflicts + 1
    end
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
