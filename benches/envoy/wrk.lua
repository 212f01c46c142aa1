-- The load of benches/envoy/run.sh: one request shape (a Lua table written by
-- `warden-bench prepare`, in WARDEN_BENCH_REQUEST) and, when WARDEN_BENCH_TOKENS names a file,
-- a token from it on every request, cycling through the file: with a pool larger than any
-- cache, every request carries a token the proxy has not verified recently.
--
-- Requests are formatted once, in init(), so the client spends nothing per request beyond
-- picking the next one. No response() callback: wrk would parse every response into Lua for
-- it. wrk counts answers with a status of 400 or more as errors.status, which the report shows.
--
-- done() prints one JSON line for the report (latency in µs).

local requests = {}
local count = 0
local next_index = 0

function init(args)
  local spec = dofile(os.getenv("WARDEN_BENCH_REQUEST"))
  local tokens = {}
  local file = os.getenv("WARDEN_BENCH_TOKENS")
  if file and file ~= "" and file ~= "-" then
    for line in io.lines(file) do
      if line ~= "" then tokens[#tokens + 1] = line end
    end
  end
  if #tokens == 0 then tokens = { false } end
  for _, token in ipairs(tokens) do
    local headers = {}
    for name, value in pairs(spec.headers) do headers[name] = value end
    if token then headers["Authorization"] = "Bearer " .. token end
    requests[#requests + 1] = wrk.format(spec.method, spec.path, headers)
  end
  count = #requests
end

function request()
  next_index = next_index % count + 1
  return requests[next_index]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
