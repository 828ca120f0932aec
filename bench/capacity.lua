-- wrk script for the capacity suite: request.lua's fixed request, plus a count of every status and
-- of the 200s answered in each wall-clock second (the steady rate, without the run's ramp and cut-off).
dofile(os.getenv("BENCH_LUA_DIR") .. "/request_setup.lua")

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  ok_per_second = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 then
    local second = os.time()
    ok_per_second[second] = (ok_per_second[second] or 0) + 1
  end
end

-- Latencies are microseconds; the Python side turns this line into numbers.
function done(summary, latency, requests)
  local counts, seconds = {}, {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + count
    end
    for second, count in pairs(thread:get("ok_per_second")) do
      seconds[second] = (seconds[second] or 0) + count
    end
  end
  local parts, per_second = {}, {}
  for status, count in pairs(counts) do
    table.insert(parts, string.format("\"%d\": %d", status, count))
  end
  for second, count in pairs(seconds) do
    table.insert(per_second, string.format("\"%d\": %d", second, count))
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\"requests\": %d, \"duration_us\": %d, \"p50_us\": %d, \"p95_us\": %d, \"p99_us\": %d," ..
    " \"mean_us\": %.1f, \"max_us\": %d, \"connect_errors\": %d, \"read_errors\": %d, \"write_errors\": %d," ..
    " \"non_2xx\": %d, \"timeouts\": %d, \"statuses\": {%s}, \"ok_per_second\": {%s}}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout, table.concat(parts, ", "),
    table.concat(per_second, ", ")))
end
