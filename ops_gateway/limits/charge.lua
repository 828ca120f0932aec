-- Settle a completion's rate-limit side in one round trip (rate_limits.charge_tokens).
-- KEYS: the token-window keys, the user's quota hash of each period, the user's in-flight set,
--       then every window key to read back for the response headers (all under the user's tag).
-- ARGV[1]: JSON {tokens, token_expiries [per token window], periods (how many),
--       quotas [{period index, field, increment}], slot (the request's id, absent: none to give back)}.
-- Returns the value and TTL of each key read back, in order.
--
-- Token windows are counted as the limits library counts them (the first hit sets the TTL).
-- A quota hash that is gone (Redis lost it) is not recreated here: this request is already in
-- Postgres, which the next admission seeds the hash from.
local a = cjson.decode(ARGV[1])
local token_windows = #a.token_expiries
local inflight = KEYS[token_windows + a.periods + 1]

if a.tokens > 0 then
    for i, expiry in ipairs(a.token_expiries) do
        if redis.call("incrby", KEYS[i], a.tokens) == a.tokens then redis.call("expire", KEYS[i], expiry) end
    end
end
for _, quota in ipairs(a.quotas) do
    local key = KEYS[token_windows + quota[1]]
    if redis.call("exists", key) == 1 then redis.call("hincrby", key, quota[2], quota[3]) end
end
if a.slot then redis.call("zrem", inflight, a.slot) end

local reads = {}
for i = token_windows + a.periods + 2, #KEYS do
    reads[#reads + 1] = redis.call("get", KEYS[i])
    reads[#reads + 1] = redis.call("ttl", KEYS[i])
end
return reads
