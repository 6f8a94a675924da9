-- wrk: POST one unique, valid tick per request to /ingest/tick (ts = now, event_id never repeats).
local counter = 0
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
local thread_tag = string.format("%d-%d", os.time(), math.random(1, 1e9))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic aW5nZXN0OmluZ2VzdC1kZXYtcGFzc3dvcmQ="
request = function()
  counter = counter + 1
  local ts = math.floor(os.time() * 1000)
  local body = string.format(
    '{"symbol":"BENCH%d","price":%d.25,"volume":0.5,"source":"wrk","ts":%d,"event_id":"wrk-%s-%d","seq":%d}',
    counter % 8, 100 + counter % 50, ts, thread_tag, counter, counter)
  return wrk.format(nil, "/ingest/tick", nil, body)
end

-- `-- <ms>` after the URL: each connection waits that long between requests, so old and new code
-- are compared at the same offered rate (CPU per request falls as group commits grow with load).
local delay_ms = 0
function init(args)
  delay_ms = tonumber(args[1]) or 0
end
function delay()
  return delay_ms
end
