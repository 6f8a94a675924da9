-- wrk script for the pipeline benchmark's `wrk` mode: one unique tick per POST /ingest/tick.
--
--   wrk -t1 -c32 -d15s --timeout 30s -s wrk_ticks.lua URL -- RUN_ID AUTHORIZATION STOP_S OUT_DIR
--
-- AUTHORIZATION is the whole header value ("Basic ..."), built by the benchmark from the
-- INGEST_USERNAME / INGEST_PASSWORD the systems under test run with.
--
-- event_id = RUN_ID-t<thread>-<n>: unique across threads (each has its own counter), across
-- connections (they share their thread's counter) and across runs (RUN_ID). ts is the current
-- wall clock in ms; symbols and sources rotate as the feeder's do (sources are per thread, so
-- each (source, symbol) has one increasing seq).
--
-- After STOP_S seconds a thread sends only GET /health/liveness: wrk ends on a timer and drops
-- what is in flight, and no tick may be among it, or the benchmark could not tell which of the
-- stored ticks were acknowledged. Ticks still unanswered at the end are reported as such.
--
-- Each thread writes one line per accepted event_id to OUT_DIR/accepted-<thread>.txt; done()
-- prints one line "WRK_RESULT <json>" with the counts and CLOCK_MONOTONIC times (the clock the
-- benchmark's Python uses) of the first tick sent and the last tick answered.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } wrk_timespec;
int clock_gettime(int clk_id, wrk_timespec *tp);
]])
local CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
local tspec = ffi.new("wrk_timespec")

local function now(clock)
  ffi.C.clock_gettime(clock, tspec)
  return tonumber(tspec.tv_sec) + tonumber(tspec.tv_nsec) / 1e9
end

local SYMBOLS = { "BTCUSDT", "ETHUSDT", "XAUUSD", "EURUSD", "AAPL" }
local SOURCES = { "binance", "coinbase", "kraken" }
local START = { BTCUSDT = 64000, ETHUSDT = 3400, XAUUSD = 2400, EURUSD = 1.08, AAPL = 190 }

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

-- Per thread (each has its own Lua state from here on). The counters are globals so that
-- done() can read them with thread:get.
local run_id, stop_at, out
local price, seq = {}, {}
local headers
n, sent, answered, accepted, duplicates, non_2xx = 0, 0, 0, 0, 0, 0
statuses = {}
first_send, last_answer = 0, 0

function init(args)
  run_id = args[1]
  stop_at = now(CLOCK_MONOTONIC) + tonumber(args[3])
  out = assert(io.open(args[4] .. "/accepted-" .. tid .. ".txt", "w"))
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = args[2] }
  for _, s in ipairs(SYMBOLS) do
    price[s] = START[s]
  end
  math.randomseed(tid * 7919 + math.floor(now(CLOCK_REALTIME)))
end

local ticking = true
-- wrk calls the first thread's request() once before any connection exists, to count the
-- requests it returns (script_verify_request); that tick is never sent, so it is not counted.
local verifying = nil

function request()
  if verifying == nil then
    verifying = tid == 1
  end
  if verifying then
    verifying = false
    return wrk.format("POST", "/ingest/tick", headers, "{}")
  end
  if ticking and now(CLOCK_MONOTONIC) >= stop_at then
    ticking = false
  end
  if not ticking then
    return wrk.format("GET", "/health/liveness")
  end
  n = n + 1
  local symbol = SYMBOLS[(n - 1) % #SYMBOLS + 1]
  local source = SOURCES[math.floor((n - 1) / #SYMBOLS) % #SOURCES + 1]
  if tid > 1 then
    source = source .. "-t" .. tid
  end
  local key = source .. "/" .. symbol
  seq[key] = (seq[key] or 0) + 1
  local p = price[symbol] * (1 + (math.random() - 0.5) * 0.0004)
  price[symbol] = p
  local body = string.format(
    '{"symbol":"%s","price":%.6g,"volume":%.4f,"source":"%s","ts":%d,"event_id":"%s-t%d-%d","seq":%d}',
    symbol, p, math.random() * 2 + 0.0001, source, math.floor(now(CLOCK_REALTIME) * 1000),
    run_id, tid, n, seq[key]
  )
  sent = sent + 1
  if first_send == 0 then
    first_send = now(CLOCK_MONOTONIC)
  end
  return wrk.format("POST", "/ingest/tick", headers, body)
end

function response(status, _headers, body)
  local event_id = body and body:match('"event_id"%s*:%s*"([^"]+)"')
  if event_id == nil then
    -- GET /health/liveness after the stop, or an error body naming no tick.
    if status >= 200 and status < 300 then
      return
    end
  end
  answered = answered + 1
  last_answer = now(CLOCK_MONOTONIC)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 200 and status < 300 and event_id ~= nil then
    if body:find('"accepted"', 1, true) then
      accepted = accepted + 1
      out:write(event_id, "\n")
    else
      duplicates = duplicates + 1
    end
  else
    non_2xx = non_2xx + 1
  end
end

function done(summary, latency, _requests)
  local parts = {}
  for _, t in ipairs(threads) do
    local codes = {}
    for code, count in pairs(t:get("statuses")) do
      table.insert(codes, string.format('"%d":%d', code, count))
    end
    table.insert(parts, string.format(
      '{"tid":%d,"sent":%d,"answered":%d,"accepted":%d,"duplicates":%d,"non_2xx":%d,'
        .. '"first_send":%.6f,"last_answer":%.6f,"statuses":{%s}}',
      t:get("tid"), t:get("sent"), t:get("answered"), t:get("accepted"), t:get("duplicates"),
      t:get("non_2xx"), t:get("first_send"), t:get("last_answer"), table.concat(codes, ",")
    ))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"threads":[%s],"duration_s":%.6f,"requests":%d,"socket_errors":'
      .. '{"connect":%d,"read":%d,"write":%d,"timeout":%d},"latency_ms":'
      .. '{"p50":%.3f,"p95":%.3f,"p99":%.3f,"max":%.3f}}\n',
    table.concat(parts, ","), summary.duration / 1e6, summary.requests,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000
  ))
end
