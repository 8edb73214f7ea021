-- Cycles through the requests listed in the file named by BENCH_REQUESTS,
-- one per line: METHOD <tab> PATH <tab> BODY. Prints one BENCH_JSON line when done.
--
-- With BENCH_WINDOW_S set (S2), it also times every answer against the thread's start and
-- counts the answers that arrive in [BENCH_SKIP_S, BENCH_SKIP_S + BENCH_WINDOW_S), answers
-- per whole second, and answers whose status is not 2xx. wrk calls response() only when the
-- script defines it, and parsing headers for it costs time, so S1 runs without it.
local list = {}
local n = 0
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    local method, path, body = line:match("^(%u+)\t(%S+)\t?(.*)$")
    local headers = {}
    if body ~= nil and body ~= "" then
      headers["Content-Type"] = "application/json"
    else
      body = nil
    end
    list[#list + 1] = wrk.format(method, path, headers, body)
  end
end

function request()
  n = n + 1
  return list[(n % #list) + 1]
end

local window = tonumber(os.getenv("BENCH_WINDOW_S") or "")
local skip = tonumber(os.getenv("BENCH_SKIP_S") or "0")

if window then
  -- wrk's Lua is LuaJIT: the monotonic clock through its FFI (os.time counts whole seconds).
  local ffi = require("ffi")
  ffi.cdef([[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clock, bench_timespec *now);
  ]])
  local now_ts = ffi.new("bench_timespec")
  local function now()
    ffi.C.clock_gettime(1, now_ts) -- CLOCK_MONOTONIC
    return tonumber(now_ts.tv_sec) + tonumber(now_ts.tv_nsec) / 1e9
  end
  -- Globals, so that done() can read them from each thread with thread:get().
  started = nil
  in_window, not_2xx, per_second = 0, 0, {}

  function response(status, headers, body)
    local at = now() - started
    if at >= skip and at < skip + window then
      in_window = in_window + 1
    end
    local second = math.floor(at) + 1
    per_second[second] = (per_second[second] or 0) + 1
    if status < 200 or status > 299 then
      not_2xx = not_2xx + 1
    end
  end

  local load_requests = init
  function init(args)
    load_requests(args)
    started = now()
  end
end

local function window_json()
  if not window then
    return ""
  end
  local answers, bad, seconds = 0, 0, {}
  for _, thread in ipairs(threads) do
    answers = answers + thread:get("in_window")
    bad = bad + thread:get("not_2xx")
    for second, count in pairs(thread:get("per_second")) do
      seconds[second] = (seconds[second] or 0) + count
    end
  end
  local last = 0
  for second in pairs(seconds) do
    last = math.max(last, second)
  end
  local counts = {}
  for second = 1, last do
    counts[second] = tostring(seconds[second] or 0)
  end
  return string.format(
    ', "window": {"skip_s": %.3f, "window_s": %.3f, "answers": %d, "not_2xx": %d, ' ..
    '"per_second": [%s]}',
    skip, window, answers, bad, table.concat(counts, ", "))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"mean_us": %.1f%s}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    window_json()))
end
