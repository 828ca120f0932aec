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
