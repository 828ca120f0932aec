"""Per-user rate limits on /v1: request windows, token windows, quotas and concurrency.

Every counter lives in the shared Redis, so limits are exact across gunicorn workers and
instances. Request windows are fixed windows of the ``limits`` library (the keys and counting
Flask-Limiter used), all three hit in one round trip; their values come from the user's plan and
overrides (read fresh with the key on every request, so admin changes apply immediately).
Token windows use the ``limits`` library: checked before the upstream call against what is
left, charged after with the real token count. Windows are fixed and UTC-aligned.

Redis unreachable: fail open (logged, /health degraded) unless RATE_LIMIT_FAIL_CLOSED=true,
which rejects with 503.
"""

import functools
import logging
import time
from datetime import UTC, datetime

import redis
from flask import current_app, g
from limits import RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from limits.util import WindowStats

from ops_gateway import db, metrics, redis_store, security
from ops_gateway.errors import ApiError

logger = logging.getLogger("ops_gateway.app")

WINDOWS = ("minute", "hour", "day")
_ITEMS = {"minute": RateLimitItemPerMinute, "hour": RateLimitItemPerHour, "day": RateLimitItemPerDay}
LIMIT_FIELDS = tuple(f"{kind}_per_{window}" for kind in ("requests", "tokens") for window in WINDOWS)
CONCURRENCY_KEY = "gw:concurrent:{user_id}"
CONCURRENCY_TTL_SECONDS = 600  # a crashed worker's slot frees itself after this
QUOTA_KEY = "gw:quota:{user_id}:{kind}:{period}"
REQUEST_SCOPE = "v1"  # shared by every /v1 route: one budget (the scope Flask-Limiter's keys carried)

# The three request windows in order, minute first, each counted as FixedWindowRateLimiter.hit
# counts (the first hit sets the TTL); the first window over its limit stops the rest, as
# Flask-Limiter did. Returns {breached window's 1-based index or 0, that window's TTL}.
_HIT_REQUEST_WINDOWS = """
for i, key in ipairs(KEYS) do
    local current = redis.call("incrby", key, 1)
    if current == 1 then
        redis.call("expire", key, ARGV[2 * i - 1])
    end
    if current > tonumber(ARGV[2 * i]) then
        return {i, redis.call("ttl", key)}
    end
end
return {0, 0}
"""


def init_app(app):
    """Create the ``limits`` limiter on the shared Redis (its storage names every window's key)."""
    storage = storage_from_string(app.config["RATELIMIT_STORAGE_URI"], socket_timeout=0.5, socket_connect_timeout=0.5)
    app.extensions["ops_gateway.window_limiter"] = FixedWindowRateLimiter(storage)


def effective_limits(principal):
    """The six window limits (override, else plan) with each one's source."""
    limits, sources = {}, {}
    for field in LIMIT_FIELDS:
        override = principal.get(f"o_{field}")
        limits[field] = override if override is not None else principal[field]
        sources[field] = "override" if override is not None else "plan"
    return limits, sources


def request_windows(view):
    """Decorator for /v1 views: count the request against the user's three request windows.

    It wraps the view itself, so a request refused earlier (validation, auth) is not counted.
    A 0 limit blocks its window.
    """

    @functools.wraps(view)
    def counted(*args, **kwargs):
        if not g.get("rate_limits_skipped"):  # Redis was found down earlier in this request
            _hit_request_windows(g.user)
        return view(*args, **kwargs)

    return counted


def _hit_request_windows(principal):
    limits, _ = effective_limits(principal)
    windows = [_window_keys(principal, limits)[f"requests_per_{w}"] for w in WINDOWS]
    args = [value for item, _ in windows for value in (item.get_expiry(), item.amount)]
    try:
        breached, ttl = redis_store.get_redis().eval(
            _HIT_REQUEST_WINDOWS, len(windows), *[k for _, k in windows], *args
        )
    except redis.RedisError as exc:
        _redis_unavailable(exc)
        return
    if breached:
        _request_window_breach(principal, windows[breached - 1][0], ttl)


def _window_limiter():
    return current_app.extensions["ops_gateway.window_limiter"]


def _window_keys(principal, limits):
    """{field: (limit item, Redis key)} of the six windows, named exactly as the limits library names them."""
    storage = _window_limiter().storage
    keys = {}
    for kind in ("requests", "tokens"):
        identifiers = ("tokens", str(principal["user_id"])) if kind == "tokens" else _request_window_key(principal)
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
        raise ApiError(503, "rate_limiter_unavailable", "rate limiting is unavailable; retry shortly") from None


def _period_keys(user_id):
    now = datetime.now(UTC)
    day, month = now.strftime("%Y%m%d"), now.strftime("%Y%m")
    return {
        "daily_request_quota": (QUOTA_KEY.format(user_id=user_id, kind="req", period=day), 90000),
        "monthly_request_quota": (QUOTA_KEY.format(user_id=user_id, kind="req", period=month), 32 * 86400),
        "daily_token_quota": (QUOTA_KEY.format(user_id=user_id, kind="tok", period=day), 90000),
        "monthly_token_quota": (QUOTA_KEY.format(user_id=user_id, kind="tok", period=month), 32 * 86400),
    }


def admit(principal):
    """Before the upstream call: concurrency slot, quotas and token windows. Raises 429 envelopes."""
    user_id = principal["user_id"]
    keys = _period_keys(user_id)
    limits, _ = effective_limits(principal)
    windows = _window_keys(principal, limits)
    try:
        # One round trip: the slot, the quotas and the token windows' counts and TTLs.
        pipe = redis_store.get_redis().pipeline()
        pipe.incr(CONCURRENCY_KEY.format(user_id=user_id))
        pipe.expire(CONCURRENCY_KEY.format(user_id=user_id), CONCURRENCY_TTL_SECONDS)
        pipe.get(keys["daily_request_quota"][0])
        pipe.get(keys["monthly_request_quota"][0])
        pipe.get(keys["daily_token_quota"][0])
        pipe.get(keys["monthly_token_quota"][0])
        for window in WINDOWS:
            pipe.get(windows[f"tokens_per_{window}"][1])
            pipe.ttl(windows[f"tokens_per_{window}"][1])
        in_flight, _, *replies = pipe.execute()
    except redis.RedisError as exc:
        _redis_unavailable(exc)
        return
    used, token_windows = replies[:4], replies[4:]
    g.concurrency_slot = True
    if in_flight > principal["max_concurrent_requests"]:
        _reject(principal, "max_concurrent_requests", principal["max_concurrent_requests"], 1)
    for field, value in zip(
        ("daily_request_quota", "monthly_request_quota", "daily_token_quota", "monthly_token_quota"), used, strict=True
    ):
        if int(value or 0) >= principal[field]:
            _reject(principal, field, principal[field], _seconds_to_period_end(field))
    for index, window in enumerate(WINDOWS):
        limit = limits[f"tokens_per_{window}"]
        stats = _stats(windows[f"tokens_per_{window}"][0], *token_windows[2 * index : 2 * index + 2])
        if limit == 0 or stats.remaining <= 0:
            _reject(principal, f"tokens_per_{window}", limit, max(int(stats.reset_time - time.time()), 1))


def _seconds_to_period_end(field):
    now = datetime.now(UTC)
    if field.startswith("daily"):
        return 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
    next_month = (now.replace(day=28) + (now.replace(day=28) - now.replace(day=1))).replace(day=1)
    return int((next_month.replace(hour=0, minute=0, second=0, microsecond=0) - now).total_seconds())


def charge_tokens(principal, tokens):
    """After the upstream call: count the real tokens against every token window and quota."""
    if g.get("rate_limits_skipped"):
        return
    user_id = principal["user_id"]
    limits, _ = effective_limits(principal)
    windows = _window_keys(principal, limits)
    try:
        keys = _period_keys(user_id)
        pipe = redis_store.get_redis().pipeline()  # one round trip for windows and quotas
        if tokens:
            # FixedWindowRateLimiter.hit(item, "tokens", user, cost=tokens): the library's own script.
            incr_expire = _window_limiter().storage.lua_incr_expire.script
            for window in WINDOWS:
                item, key = windows[f"tokens_per_{window}"]
                pipe.eval(incr_expire, 1, key, item.get_expiry(), tokens)
        for field in ("daily_request_quota", "monthly_request_quota"):
            pipe.incr(keys[field][0])
            pipe.expire(keys[field][0], keys[field][1])
        for field in ("daily_token_quota", "monthly_token_quota"):
            pipe.incrby(keys[field][0], tokens)
            pipe.expire(keys[field][0], keys[field][1])
        _queue_window_reads(pipe, windows)  # the response's rate-limit headers, in the same round trip
        replies = pipe.execute()
        g.window_status = _status_from(limits, windows, replies[-2 * len(windows) :])
    except redis.RedisError as exc:
        logger.warning("could not charge tokens to rate-limit windows: %s", exc.__class__.__name__)


def release_slot():
    """Teardown: free the concurrency slot taken by ``admit`` (also after errors and streams)."""
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


def _request_window_key(principal):
    """The identifiers of a user's shared /v1 request windows (the ones Flask-Limiter used)."""
    return (f"user:{principal['user_id']}", REQUEST_SCOPE)


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
    raise ApiError(
        429,
        "rate_limited",
        f"rate limit exceeded: {window.replace('_', ' ')} ({limit})",
        {"limit": limit, "window": window},
        {"Retry-After": str(max(int(retry_after), 1))},
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
    raise ApiError(
        429,
        "rate_limited",
        f"rate limit exceeded: {window.replace('_', ' ')} ({item.amount})",
        {"limit": item.amount, "window": window},
        headers,
    )
