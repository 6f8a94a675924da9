-- The ingest hand-off (see ingest.py): shed at MAX_BACKLOG, de-duplicate, enqueue, stage.
-- KEYS: queue list, queue msgs, outbox, stats.
-- ARGV: dedup ttl, message_id, message head, message tail, dedup prefix, max backlog,
--       then (event_id, content, encoded tick) per tick.
local ttl = tonumber(ARGV[1])
local prefix = ARGV[5]
local max_backlog = tonumber(ARGV[6])
if max_backlog > 0 then
  local c = redis.call('HMGET', KEYS[4], 'ingest_accepted', 'calc_ticks', 'outbox_ticks',
                       'calc_dead_ticks')
  local waiting_calc = (tonumber(c[1]) or 0) - (tonumber(c[2]) or 0) - (tonumber(c[4]) or 0)
  local waiting_store = tonumber(c[3]) or 0
  local backlog = math.max(waiting_calc, 0) + math.max(waiting_store, 0)
  if backlog >= max_backlog then
    redis.call('HINCRBY', KEYS[4], 'ingest_shed', (#ARGV - 6) / 3)
    return backlog
  end
end
local statuses = {}
local accepted = {}
local duplicates = 0
local conflicts = 0
for i = 7, #ARGV, 3 do
  local key = prefix .. ARGV[i]
  local content = ARGV[i + 1]
  if redis.call('SET', key, content, 'NX', 'EX', ttl) then
    accepted[#accepted + 1] = ARGV[i + 2]
    statuses[#statuses + 1] = 1
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
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3] .. body .. ARGV[4])
  redis.call('RPUSH', KEYS[1], ARGV[2])
  redis.call('XADD', KEYS[3], '*', 't', '[' .. body .. ']')
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
