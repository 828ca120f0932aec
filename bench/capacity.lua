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
  write_summary(summary, latency, string.format(", \"statuses\": {%s}, \"ok_per_second\": {%s}",
    table.concat(parts, ", "), table.concat(per_second, ", ")))
end
