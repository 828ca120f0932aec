-- Admit one /v1 request in one round trip (rate_limits.gate).
-- KEYS: the user's in-flight set, the key's set of recent IPs, the user's quota hash of each
--       period, the token-window keys and the request-window keys in registry order, then, on a
--       single Redis only, the IP block (on a cluster it lives in another slot and is read apart).
-- ARGV[1]: JSON {mode ("probe" | "ip_only" | "requests" | "completion"), ip, ips_ttl,
--       slot (this request's id), slot_lifetime, max_concurrent, period_ttls [per period],
--       quotas [{period index, field, limit, counts the requests in flight}], token_limits [...],
--       request_windows [{expiry, limit}],
--       seed [per period: field, value, ...] (only on the retry after "needs_seed")}.
-- Returns {verdict, 1-based index of the refusing quota or window (0: none), its TTL, 1 if the IP is new}.
--
-- Every key but the IP block carries the user's hash tag, so this runs on a Redis Cluster.
-- A completion's concurrency slot is a member of the in-flight set scored by its deadline: taken
-- last, once everything else passed, so a refusal writes nothing to it (expired members are
-- dropped). Quotas and token windows are only read (the settlement counts the real tokens;
-- request quotas add the requests in flight);
-- request windows are counted, shortest first, and the first one over its limit stops the count
-- of the longer ones. A missing quota hash (a new period, or Redis lost it) is seeded from
-- Postgres: the first call answers "needs_seed", the retry brings the usage.
local a = cjson.decode(ARGV[1])
local inflight, key_ips = KEYS[1], KEYS[2]
local periods = #a.period_ttls
local token_at = 2 + periods
local request_at = token_at + #a.token_limits
local block_key = KEYS[request_at + #a.request_windows + 1]

if block_key then
    local blocked = redis.call("ttl", block_key)
    if blocked > 0 then return {"ip_blocked", 0, blocked, 0} end
end
if a.mode == "probe" then return {"passed", 0, 0, 0} end
if a.mode == "completion" then
    for p = 1, periods do
        local key = KEYS[2 + p]
        if redis.call("exists", key) == 0 then
            if not a.seed then return {"needs_seed", 0, 0, 0} end
            redis.call("hset", key, unpack(a.seed[p]))
            redis.call("expire", key, a.period_ttls[p])
        end
    end
end
local new_ip = redis.call("sadd", key_ips, a.ip)
if new_ip == 1 then redis.call("expire", key_ips, a.ips_ttl) end
if a.mode == "ip_only" then return {"passed", 0, 0, new_ip} end

local now
if a.mode == "completion" then
    now = tonumber(redis.call("time")[1])
    redis.call("zremrangebyscore", inflight, "-inf", now)
    local in_flight = redis.call("zcard", inflight)
    if in_flight >= a.max_concurrent then return {"too_many_concurrent", 0, 0, new_ip} end
    for i, quota in ipairs(a.quotas) do
        local used = tonumber(redis.call("hget", KEYS[2 + quota[1]], quota[2]) or "0")
        -- A request quota counts the requests in flight too: the settlement moves each from the
        -- in-flight set to the quota in one script, so settled + in flight is exact at any moment.
        if quota[4] then used = used + in_flight end
        if used >= quota[3] then
            return {"quota_used", i, 0, new_ip}
        end
    end
    for i, limit in ipairs(a.token_limits) do
        local key = KEYS[token_at + i]
        if limit == 0 or tonumber(redis.call("get", key) or "0") >= limit then
            return {"token_window_full", i, redis.call("ttl", key), new_ip}
        end
    end
end

for i, window in ipairs(a.request_windows) do
    local key = KEYS[request_at + i]
    local current = redis.call("incrby", key, 1)
    if current == 1 then redis.call("expire", key, window[1]) end
    if current > window[2] then return {"request_window_full", i, redis.call("ttl", key), new_ip} end
end
if a.mode == "completion" then
    redis.call("zadd", inflight, now + a.slot_lifetime, a.slot)
    redis.call("expire", inflight, a.slot_lifetime)
end
return {"passed", 0, 0, new_ip}
