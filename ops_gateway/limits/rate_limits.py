"""Per-user rate limits on /v1: request windows, token windows, quotas and concurrency.

Every counter lives in the shared Redis, so limits are exact across gunicorn workers and
instances. Windows are fixed, UTC-aligned windows named as Flask-Limiter's ``limits`` strategy
names them; their values come from the user's plan and overrides (read fresh with the key on
every request, so admin changes apply immediately). A request is admitted by one Lua call
(``gate``: IP block, new IP, concurrency slot, quotas, token windows, request windows) and a
completion settled by one more (``charge_tokens``: its real tokens, quotas, the slot).

Redis unreachable: fail open (logged, /health degraded) unless RATE_LIMIT_FAIL_CLOSED=true,
which rejects with 503.
"""

import functools
import logging
import time
from datetime import UTC, datetime

import redis
from flask import current_app, g, request
from limits import RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.util import WindowStats

from ops_gateway.accounts import security
from ops_gateway.core import db, redis_store
from ops_gateway.core.errors import RateLimited, Unavailable
from ops_gateway.core.extensions import limiter
from ops_gateway.observability import metrics

logger = logging.getLogger("ops_gateway.app")

WINDOWS = ("minute", "hour", "day")
_ITEMS = {"minute": RateLimitItemPerMinute, "hour": RateLimitItemPerHour, "day": RateLimitItemPerDay}
LIMIT_FIELDS = tuple(f"{kind}_per_{window}" for kind in ("requests", "tokens") for window in WINDOWS)
CONCURRENCY_KEY = "gw:concurrent:{user_id}"
CONCURRENCY_TTL_SECONDS = 600  # a crashed worker's slot frees itself after this
QUOTA_KEY = "gw:quota:{user_id}:{kind}:{period}"
REQUEST_SCOPE = "v1"  # shared by every /v1 route: one budget (the scope Flask-Limiter's keys carried)

QUOTA_FIELDS = ("daily_request_quota", "monthly_request_quota", "daily_token_quota", "monthly_token_quota")

# What ``gate`` checks, by mode: only the IP block and the key's new-IP set (a request refused
# before it counts), also the request windows (/v1/models), or everything (completions).
IP_ONLY, REQUESTS, COMPLETION = 0, 1, 2
# Its verdicts ({verdict, 1-based index of the quota or window, TTL, new IP?}).
PASSED, IP_BLOCKED, TOO_MANY_CONCURRENT, QUOTA_USED, TOKEN_WINDOW_FULL, REQUEST_WINDOW_FULL = range(6)

# Everything a /v1 request needs from Redis before it is served, in one call. KEYS: IP block,
# key's IPs, concurrency slot, the four quotas, the three token windows, the three request
# windows. ARGV: IP, key-IPs TTL, mode, max concurrent, slot TTL, the four quota limits, the
# three token limits, then expiry and limit of each request window. A completion takes a slot
# (given back at once when anything refuses it); quotas and token windows are read, not
# counted (``charge_tokens`` counts the real tokens); the request windows are counted minute
# first as FixedWindowRateLimiter.hit counts them (the first hit sets the TTL, the keys are the
# ones Flask-Limiter used), and the first window over its limit stops the longer ones.
_GATE = """
local blocked = redis.call("ttl", KEYS[1])
if blocked > 0 then return {1, 0, blocked, 0} end
local new_ip = redis.call("sadd", KEYS[2], ARGV[1])
if new_ip == 1 then redis.call("expire", KEYS[2], ARGV[2]) end
local mode = tonumber(ARGV[3])
if mode == 0 then return {0, 0, 0, new_ip} end
local slot = 0
if mode == 2 then
    slot = 1
    local in_flight = redis.call("incr", KEYS[3])
    redis.call("expire", KEYS[3], ARGV[5])
    if in_flight > tonumber(ARGV[4]) then
        redis.call("decr", KEYS[3])
        return {2, 0, 0, new_ip}
    end
    for i = 1, 4 do
        if tonumber(redis.call("get", KEYS[3 + i]) or "0") >= tonumber(ARGV[5 + i]) then
            redis.call("decr", KEYS[3])
            return {3, i, 0, new_ip}
        end
    end
    for i = 1, 3 do
        local limit = tonumber(ARGV[9 + i])
        if limit == 0 or tonumber(redis.call("get", KEYS[7 + i]) or "0") >= limit then
            redis.call("decr", KEYS[3])
            return {4, i, redis.call("ttl", KEYS[7 + i]), new_ip}
        end
    end
end
for i = 1, 3 do
    local key = KEYS[10 + i]
    local current = redis.call("incrby", key, 1)
    if current == 1 then
        redis.call("expire", key, ARGV[11 + 2 * i])
    end
    if current > tonumber(ARGV[12 + 2 * i]) then
        if slot == 1 then redis.call("decr", KEYS[3]) end
        return {5, i, redis.call("ttl", key), new_ip}
    end
end
return {0, 0, 0, new_ip}
"""

# ``charge_tokens`` in one call. KEYS: the three token windows, the four quotas, the concurrency
# slot, then the six windows read back for the headers. ARGV: tokens, each token window's
# expiry, each quota's TTL, 1 to give the slot back. Token windows are counted as the limits
# library's incr-expire script counts (the first hit sets the TTL); quota TTLs are refreshed.
_CHARGE = """
local tokens = tonumber(ARGV[1])
if tokens > 0 then
    for i = 1, 3 do
        if redis.call("incrby", KEYS[i], tokens) == tokens then redis.call("expire", KEYS[i], ARGV[1 + i]) end
    end
end
for i = 4, 7 do
    redis.call("incrby", KEYS[i], i <= 5 and 1 or tokens)
    redis.call("expire", KEYS[i], ARGV[1 + i])
end
if ARGV[9] == "1" then redis.call("decr", KEYS[8]) end
local reads = {}
for i = 9, #KEYS do
    reads[#reads + 1] = redis.call("get", KEYS[i])
    reads[#reads + 1] = redis.call("ttl", KEYS[i])
end
return reads
"""


def init_app(app):
    """Bind Flask-Limiter (its ``limits`` strategy names every window's key) and load the Lua scripts."""
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_timeout": 0.5, "socket_connect_timeout": 0.5})
    limiter.init_app(app)
    app.extensions["ops_gateway.window_limiter"] = limiter.limiter
    app.extensions["ops_gateway.gate"] = app.extensions["ops_gateway.redis"].register_script(_GATE)
    app.extensions["ops_gateway.charge"] = app.extensions["ops_gateway.redis"].register_script(_CHARGE)


def effective_limits(principal):
    """The six window limits (override, else plan) with each one's source."""
    limits, sources = {}, {}
    for field in LIMIT_FIELDS:
        override = principal.get(f"o_{field}")
        limits[field] = override if override is not None else principal[field]
        sources[field] = "override" if override is not None else "plan"
    return limits, sources


def gate(principal, mode):
    """Admit an authenticated /v1 request (one Redis call); raise the 429 envelopes.

    ``mode``: IP_ONLY for a request refused before it counts (scope, validation), REQUESTS for
    /v1/models, COMPLETION for chat completions (slot, quotas, token windows, request windows).
    A 0 limit blocks its window. A completion let through holds a concurrency slot until
    ``charge_tokens`` (or the teardown) gives it back.
    """
    ip = request.remote_addr
    limits, _ = effective_limits(principal)
    windows = _window_keys(principal, limits)
    quotas = _period_keys(principal["user_id"])
    keys = [
        security.BLOCK_KEY.format(ip=ip),
        security.KEY_IPS_KEY.format(key_id=principal["api_key_id"]),
        CONCURRENCY_KEY.format(user_id=principal["user_id"]),
        *(quotas[field][0] for field in QUOTA_FIELDS),
        *(windows[f"tokens_per_{window}"][1] for window in WINDOWS),
        *(windows[f"requests_per_{window}"][1] for window in WINDOWS),
    ]
    args = [ip, security.KEY_IPS_TTL_SECONDS, mode, principal["max_concurrent_requests"], CONCURRENCY_TTL_SECONDS]
    args += [principal[field] for field in QUOTA_FIELDS]
    args += [limits[f"tokens_per_{window}"] for window in WINDOWS]
    for window in WINDOWS:
        item = windows[f"requests_per_{window}"][0]
        args += [item.get_expiry(), item.amount]
    try:
        verdict, index, ttl, new_ip = _run_script("ops_gateway.gate", keys, args)
    except redis.RedisError as exc:
        _redis_unavailable(exc)
        return
    if verdict == IP_BLOCKED:
        raise security.ip_blocked_error(ttl)
    if new_ip:
        security.record_key_ip(principal, ip)
    if verdict == PASSED:
        g.concurrency_slot = mode == COMPLETION
    elif verdict == TOO_MANY_CONCURRENT:
        _reject(principal, "max_concurrent_requests", principal["max_concurrent_requests"], 1)
    elif verdict == QUOTA_USED:
        field = QUOTA_FIELDS[index - 1]
        _reject(principal, field, principal[field], _seconds_to_period_end(field))
    elif verdict == TOKEN_WINDOW_FULL:
        field = f"tokens_per_{WINDOWS[index - 1]}"
        _reject(principal, field, limits[field], max(ttl, 1))
    elif verdict == REQUEST_WINDOW_FULL:
        _request_window_breach(principal, windows[f"requests_per_{WINDOWS[index - 1]}"][0], ttl)


def _run_script(name, keys, args):
    """One registered Lua script: EVALSHA, loading it again when Redis lost it (a restart)."""
    return current_app.extensions[name](keys, args, client=redis_store.get_redis())


def refuse_uncounted(principal, error):
    """Raise ``error`` for a request refused before it counts; a blocked IP gets its 429 instead."""
    gate(principal, IP_ONLY)
    raise error


def _window_keys(principal, limits):
    """{field: (limit item, Redis key)} of the six windows, named exactly as the limits library names them."""
    values = tuple(limits[field] for field in LIMIT_FIELDS)
    return _keys_for(security.window_limiter().storage, principal["user_id"], values)


@functools.lru_cache(maxsize=4096)
def _keys_for(storage, user_id, limit_values):
    """``_window_keys`` for one user and set of limits: the same every request, so built once."""
    limits = dict(zip(LIMIT_FIELDS, limit_values, strict=True))
    keys = {}
    for kind in ("requests", "tokens"):
        identifiers = ("tokens", str(user_id)) if kind == "tokens" else _request_window_key(user_id)
        for window in WINDOWS:
            item = _ITEMS[window](limits[f"{kind}_per_{window}"])
            keys[f"{kind}_per_{window}"] = (item, storage.prefixed_key(item.key_for(*identifiers)))
    return keys


def _stats(item, count, ttl):
    """FixedWindowRateLimiter.get_window_stats, from a GET and a TTL already fetched in a pipeline."""
    return WindowStats(max(ttl, 0) + time.time(), max(0, item.amount - int(count or 0)))


def _redis_unavailable(exc):
    """Fail open (flagging the request) or closed, as configured."""
    g.rate_limits_skipped = True
    logger.warning("rate-limit storage unreachable: %s", exc.__class__.__name__)
    if current_app.config["RATE_LIMIT_FAIL_CLOSED"]:
        raise Unavailable("rate limiting is unavailable; retry shortly", code="rate_limiter_unavailable") from None


def _period_keys(user_id):
    now = datetime.now(UTC)
    day, month = now.strftime("%Y%m%d"), now.strftime("%Y%m")
    return {
        "daily_request_quota": (QUOTA_KEY.format(user_id=user_id, kind="req", period=day), 90000),
        "monthly_request_quota": (QUOTA_KEY.format(user_id=user_id, kind="req", period=month), 32 * 86400),
        "daily_token_quota": (QUOTA_KEY.format(user_id=user_id, kind="tok", period=day), 90000),
        "monthly_token_quota": (QUOTA_KEY.format(user_id=user_id, kind="tok", period=month), 32 * 86400),
    }


def _seconds_to_period_end(field):
    now = datetime.now(UTC)
    if field.startswith("daily"):
        return 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
    next_month = (now.replace(day=28) + (now.replace(day=28) - now.replace(day=1))).replace(day=1)
    return int((next_month.replace(hour=0, minute=0, second=0, microsecond=0) - now).total_seconds())


def charge_tokens(principal, tokens):
    """After the upstream call, in one Redis call: count the real tokens against every token
    window and quota, give the concurrency slot back and read the windows for the headers."""
    if g.get("rate_limits_skipped"):
        return
    limits, _ = effective_limits(principal)
    windows = _window_keys(principal, limits)
    quotas = _period_keys(principal["user_id"])
    token_windows = [windows[f"tokens_per_{window}"] for window in WINDOWS]
    slot = g.pop("concurrency_slot", False)
    keys = [key for _, key in token_windows] + [quotas[field][0] for field in QUOTA_FIELDS]
    keys += [CONCURRENCY_KEY.format(user_id=principal["user_id"]), *(key for _, key in windows.values())]
    args = [tokens, *(item.get_expiry() for item, _ in token_windows), *(quotas[f][1] for f in QUOTA_FIELDS), int(slot)]
    try:
        replies = _run_script("ops_gateway.charge", keys, args)
        g.window_status = _status_from(limits, windows, replies)
    except redis.RedisError as exc:
        g.concurrency_slot = slot  # the teardown tries again; else the slot key expires by itself
        logger.warning("could not charge tokens to rate-limit windows: %s", exc.__class__.__name__)


def release_slot():
    """Teardown: free a concurrency slot ``charge_tokens`` did not (errors before the upstream call)."""
    if not g.pop("concurrency_slot", False):
        return
    try:
        redis_store.get_redis().decr(CONCURRENCY_KEY.format(user_id=g.user["user_id"]))
    except redis.RedisError:
        pass  # the slot key expires by itself


def _queue_window_reads(pipe, windows):
    """Add a GET and a TTL per window to ``pipe`` (read back by ``_status_from``)."""
    for _, key in windows.values():
        pipe.get(key)
        pipe.ttl(key)


def window_status(principal):
    """{field: {limit, used, remaining, reset_at}} for every window (for /user/monitor and headers)."""
    limits, _ = effective_limits(principal)
    windows = _window_keys(principal, limits)
    pipe = redis_store.get_redis().pipeline(transaction=False)  # twelve reads, one round trip
    _queue_window_reads(pipe, windows)
    return _status_from(limits, windows, pipe.execute())


def _status_from(limits, windows, replies):
    """window_status's document from the replies of ``_queue_window_reads``."""
    replies = iter(replies)
    status = {}
    for field, (item, _) in windows.items():
        stats = _stats(item, next(replies), next(replies))
        used = limits[field] - stats.remaining
        status[field] = {
            "limit": limits[field],
            "used": used,
            "remaining": max(limits[field] - used, 0),
            "reset_at": datetime.fromtimestamp(stats.reset_time, UTC).isoformat(),
            "reset_seconds": max(int(stats.reset_time - time.time()), 0),
        }
    return status


def _request_window_key(user_id):
    """The identifiers of a user's shared /v1 request windows (the ones Flask-Limiter used)."""
    return (f"user:{user_id}", REQUEST_SCOPE)


def rate_limit_headers(principal):
    """OpenAI-style and IETF rate-limit headers from the tightest request and token windows."""
    # A completion read its windows when it charged its tokens; anything else reads them now.
    status = g.pop("window_status", None) or window_status(principal)
    headers = {}
    for kind, suffix in (("requests", "Requests"), ("tokens", "Tokens")):
        tightest = min((status[f"{kind}_per_{w}"] for w in WINDOWS), key=lambda s: s["remaining"])
        headers[f"X-RateLimit-Limit-{suffix}"] = str(tightest["limit"])
        headers[f"X-RateLimit-Remaining-{suffix}"] = str(tightest["remaining"])
        headers[f"X-RateLimit-Reset-{suffix}"] = f"{tightest['reset_seconds']}s"
        if kind == "requests":
            headers["RateLimit-Limit"] = str(tightest["limit"])
            headers["RateLimit-Remaining"] = str(tightest["remaining"])
            headers["RateLimit-Reset"] = str(tightest["reset_seconds"])
    return headers


def _reject(principal, window, limit, retry_after):
    """Audit (aggregated) and raise the 429 envelope naming the window."""
    metrics.RATE_LIMIT_REJECTIONS.labels(window).inc()
    record_violation(principal, window)
    raise RateLimited(
        f"rate limit exceeded: {window.replace('_', ' ')} ({limit})",
        {"limit": limit, "window": window},
        code="rate_limited",
        headers={"Retry-After": str(max(int(retry_after), 1))},
    )


def record_violation(principal, window):
    """One security_events row per key, window and minute, counting repeats (no flood of rows)."""
    minute = datetime.now(UTC).strftime("%Y%m%d%H%M")
    try:
        with db.transaction() as cur:
            security.record_event(
                cur,
                "rate_limit_exceeded",
                principal["user_id"],
                principal["api_key_id"],
                None,
                {"window": window, "key": principal["key_mask"]},
                dedupe_key=f"rl:{principal['api_key_id']}:{window}:{minute}",
            )
    except db.UNAVAILABLE_ERRORS:
        logger.warning("could not record rate-limit violation")


def _request_window_breach(principal, item, ttl):
    """Raise the 429 envelope for a request window, with Retry-After and the window headers."""
    window = f"requests_per_{item.GRANULARITY.name}"
    stats = _stats(item, None, ttl)
    retry_after = max(int(stats.reset_time - time.time()), 1)
    metrics.RATE_LIMIT_REJECTIONS.labels(window).inc()
    record_violation(principal, window)
    headers = {"Retry-After": str(retry_after)}
    try:
        headers.update(rate_limit_headers(principal))
    except redis.RedisError:
        pass
    raise RateLimited(
        f"rate limit exceeded: {window.replace('_', ' ')} ({item.amount})",
        {"limit": item.amount, "window": window},
        code="rate_limited",
        headers=headers,
    )
