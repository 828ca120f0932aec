-- Admit one /v1 request in one round trip (rate_limits.gate).
-- KEYS: the IP block, the key's set of recent IPs, the user's concurrency slot counter, then
--       the quota keys, the token-window keys and the request-window keys, in registry order.
-- ARGV: IP, TTL of the key's IP set, mode ("ip_only" | "requests" | "completion"),
--       max concurrent requests, slot TTL, how many quotas, token windows and request windows,
--       then each quota's limit, each token window's limit, each request window's expiry and limit.
-- Returns {verdict, 1-based index of the refusing quota or window (0: none), its TTL, 1 if the IP is new}.
--
-- A completion takes a concurrency slot, given back at once when anything refuses it. Quotas and
-- token windows are only read (the settlement counts the real tokens); request windows are
-- counted, shortest first, and the first one over its limit stops the count of the longer ones.
local ip, ips_ttl, mode = ARGV[1], ARGV[2], ARGV[3]
local max_concurrent, slot_ttl = tonumber(ARGV[4]), ARGV[5]
local quotas, token_windows, request_windows = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
-- Where each group starts (the index before its first entry).
local quota_key, token_key = 3, 3 + quotas
local request_key = token_key + token_windows
local quota_limit, token_limit = 8, 8 + quotas
local request_arg = token_limit + token_windows

local blocked = redis.call("ttl", KEYS[1])
if blocked > 0 then return {"ip_blocked", 0, blocked, 0} end
local new_ip = redis.call("sadd", KEYS[2], ip)
if new_ip == 1 then redis.call("expire", KEYS[2], ips_ttl) end
if mode == "ip_only" then return {"passed", 0, 0, new_ip} end

local holds_slot = false
local function refuse(verdict, index, ttl)
    if holds_slot then redis.call("decr", KEYS[3]) end
    return {verdict, index, ttl, new_ip}
end

if mode == "completion" then
    holds_slot = true
    local in_flight = redis.call("incr", KEYS[3])
    redis.call("expire", KEYS[3], slot_ttl)
    if in_flight > max_concurrent then return refuse("too_many_concurrent", 0, 0) end
    for i = 1, quotas do
        if tonumber(redis.call("get", KEYS[quota_key + i]) or "0") >= tonumber(ARGV[quota_limit + i]) then
            return refuse("quota_used", i, 0)
        end
    end
    for i = 1, token_windows do
        local key, limit = KEYS[token_key + i], tonumber(ARGV[token_limit + i])
        if limit == 0 or tonumber(redis.call("get", key) or "0") >= limit then
            return refuse("token_window_full", i, redis.call("ttl", key))
        end
    end
end

for i = 1, request_windows do
    local key = KEYS[request_key + i]
    local current = redis.call("incrby", key, 1)
    if current == 1 then redis.call("expire", key, ARGV[request_arg + 2 * i - 1]) end
    if current > tonumber(ARGV[request_arg + 2 * i]) then
        return refuse("request_window_full", i, redis.call("ttl", key))
    end
end
return {"passed", 0, 0, new_ip}
