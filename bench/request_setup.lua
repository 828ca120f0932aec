-- The fixed request both wrk scripts send, taken from the environment:
--   BENCH_METHOD (GET), BENCH_BODY (JSON, optional), BENCH_AUTH (bearer token, optional)
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
local token = os.getenv("BENCH_AUTH")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

-- One BENCH_JSON line (latencies in microseconds) for the Python side; ``extra`` is more JSON
-- members, already formatted (", \"name\": value...").
function write_summary(summary, latency, extra)
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\"requests\": %d, \"duration_us\": %d, \"p50_us\": %d, \"p95_us\": %d, \"p99_us\": %d," ..
    " \"mean_us\": %.1f, \"max_us\": %d, \"connect_errors\": %d, \"read_errors\": %d, \"write_errors\": %d," ..
    " \"non_2xx\": %d, \"timeouts\": %d%s}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout, extra or ""))
end
