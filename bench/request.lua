-- wrk script: one fixed request (request_setup.lua) and a machine-readable summary.
dofile(os.getenv("BENCH_LUA_DIR") .. "/request_setup.lua")

-- Latencies are microseconds; the Python side turns this line into numbers.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\"requests\": %d, \"duration_us\": %d, \"p50_us\": %d, \"p95_us\": %d, \"p99_us\": %d," ..
    " \"mean_us\": %.1f, \"max_us\": %d, \"connect_errors\": %d, \"read_errors\": %d, \"write_errors\": %d," ..
    " \"non_2xx\": %d, \"timeouts\": %d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
