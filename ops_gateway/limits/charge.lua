-- Settle a completion's rate-limit side in one round trip (rate_limits.charge_tokens).
-- KEYS: the token-window keys, the quota keys, the user's concurrency slot counter, then every
--       window key to read back for the response headers.
-- ARGV: tokens, how many token windows and quotas, "1" to give the slot back, each token
--       window's expiry, then each quota's increment and TTL.
-- Returns the value and TTL of each key read back, in order.
--
-- Token windows are counted as the limits library counts them (the first hit sets the TTL);
-- quota TTLs are refreshed on every count.
local tokens = tonumber(ARGV[1])
local token_windows, quotas = tonumber(ARGV[2]), tonumber(ARGV[3])
local give_slot_back = ARGV[4] == "1"
local quota_arg = 4 + token_windows
local slot = token_windows + quotas + 1

if tokens > 0 then
    for i = 1, token_windows do
        if redis.call("incrby", KEYS[i], tokens) == tokens then redis.call("expire", KEYS[i], ARGV[4 + i]) end
    end
end
for i = 1, quotas do
    local key = KEYS[token_windows + i]
    redis.call("incrby", key, ARGV[quota_arg + 2 * i - 1])
    redis.call("expire", key, ARGV[quota_arg + 2 * i])
end
if give_slot_back then redis.call("decr", KEYS[slot]) end

local reads = {}
for i = slot + 1, #KEYS do
    reads[#reads + 1] = redis.call("get", KEYS[i])
    reads[#reads + 1] = redis.call("ttl", KEYS[i])
end
return reads
