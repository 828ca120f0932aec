-- wrk script: one fixed request (request_setup.lua) and a machine-readable summary.
dofile(os.getenv("BENCH_LUA_DIR") .. "/request_setup.lua")

function done(summary, latency, requests)
  write_summary(summary, latency)
end
