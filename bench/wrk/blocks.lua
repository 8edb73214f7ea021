-- Cycles through the requests listed in the file named by BENCH_REQUESTS,
-- one per line: METHOD <tab> PATH <tab> BODY. Prints one BENCH_JSON line when done.
local list = {}
local n = 0

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

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
