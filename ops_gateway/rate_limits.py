"""Per-user rate limits on /v1: request windows, token windows, quotas and concurrency.

Every counter lives in the shared Redis, so limits are exact across gunicorn workers and
instances. Request windows are Flask-Limiter limits whose values come from the user's plan and
overrides (read fresh with the key on every request, so admin changes apply immediately).
Token windows use the ``limits`` library: checked before the upstream call against what is
left, charged after with the real token count. Windows are fixed and UTC-aligned.

Redis unreachable: fail open (logged, /health degraded) unless RATE_LIMIT_FAIL_CLOSED=true,
which rejects with 503.
"""

import logging
import time
from datetime import UTC, datetime

import redis
from flask import current_app, g
from flask_limiter.errors import RateLimitExceeded
from limits import RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from ops_gateway import db, redis_store, security
from ops_gateway.errors import ApiError, error_response
from ops_gateway.extensions import limiter

logger = logging.getLogger("ops_gateway.app")

WINDOWS = ("minute", "hour", "day")
_ITEMS = {"minute": RateLimitItemPerMinute, "hour": RateLimitItemPerHour, "day": RateLimitItemPerDay}
LIMIT_FIELDS = tuple(f"{kind}_per_{window}" for kind in ("requests", "tokens") for window in WINDOWS)
CONCURRENCY_KEY = "gw:concurrent:{user_id}"
CONCURRENCY_TTL_SECONDS = 600  # a crashed worker's slot frees itself after this
QUOTA_KEY = "gw:quota:{user_id}:{kind}:{period}"
REQUEST_SCOPE = "v1"  # Flask-Limiter shared-limit scope: every /v1 route counts against one budget


def init_app(app):
    """Create the ``limits`` limiter (same Redis as Flask-Limiter) and the 429 handler."""
    storage = storage_from_string(app.config["RATELIMIT_STORAGE_URI"], socket_timeout=0.5, socket_connect_timeout=0.5)
    app.extensions["ops_gateway.window_limiter"] = FixedWindowRateLimiter(storage)
    app.register_error_handler(RateLimitExceeded, handle_request_window_breach)


def effective_limits(principal):
    """The six window limits (override, else plan) with each one's source."""
    limits, sources = {}, {}
    for field in LIMIT_FIELDS:
        override = principal.get(f"o_{field}")
        limits[field] = override if override is not None else principal[field]
        sources[field] = "override" if override is not None else "plan"
    return limits, sources


def request_limit_string():
    """Flask-Limiter's dynamic limit for the authenticated user (a 0 limit blocks the window)."""
    limits, _ = effective_limits(g.user)
    return "; ".join(f"{limits[f'requests_per_{w}']} per 1 {w}" for w in WINDOWS)


def _window_limiter():
    return current_app.extensions["ops_gateway.window_limiter"]


def _redis_unavailable(exc):
    """Fail open (flagging the request) or closed, as configured."""
    g.rate_limits_skipped = True
    logger.warning("rate-limit storage unreachable: %s", exc.__class__.__name__)
    if current_app.config["RATE_LIMIT_FAIL_CLOSED"]:
        raise ApiError(503, "rate_limiter_unavailable", "rate limiting is unavailable; retry shortly") from None


@limiter.request_filter
def skip_request_windows():
    """Flask-Limiter request filter: skip when Redis was found down earlier in this request."""
    return bool(g.get("rate_limits_skipped"))


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
    try:
        pipe = redis_store.get_redis().pipeline()
        pipe.incr(CONCURRENCY_KEY.format(user_id=user_id))
        pipe.expire(CONCURRENCY_KEY.format(user_id=user_id), CONCURRENCY_TTL_SECONDS)
        pipe.get(keys["daily_request_quota"][0])
        pipe.get(keys["monthly_request_quota"][0])
        pipe.get(keys["daily_token_quota"][0])
        pipe.get(keys["monthly_token_quota"][0])
        in_flight, _, *used = pipe.execute()
    except redis.RedisError as exc:
        _redis_unavailable(exc)
        return
    g.concurrency_slot = True
    if in_flight > principal["max_concurrent_requests"]:
        _reject(principal, "max_concurrent_requests", principal["max_concurrent_requests"], 1)
    for field, value in zip(
        ("daily_request_quota", "monthly_request_quota", "daily_token_quota", "monthly_token_quota"), used, strict=True
    ):
        if int(value or 0) >= principal[field]:
            _reject(principal, field, principal[field], _seconds_to_period_end(field))
    limits, _ = effective_limits(principal)
    try:
        for window in WINDOWS:
            limit = limits[f"tokens_per_{window}"]
            item = _ITEMS[window](limit)
            stats = _window_limiter().get_window_stats(item, "tokens", str(user_id))
            if limit == 0 or stats.remaining <= 0:
                _reject(principal, f"tokens_per_{window}", limit, max(int(stats.reset_time - time.time()), 1))
    except redis.RedisError as exc:
        _redis_unavailable(exc)


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
    try:
        for window in WINDOWS:
            if tokens:
                _window_limiter().hit(
                    _ITEMS[window](limits[f"tokens_per_{window}"]), "tokens", str(user_id), cost=tokens
                )
        keys = _period_keys(user_id)
        pipe = redis_store.get_redis().pipeline()
        for field in ("daily_request_quota", "monthly_request_quota"):
            pipe.incr(keys[field][0])
            pipe.expire(keys[field][0], keys[field][1])
        for field in ("daily_token_quota", "monthly_token_quota"):
            pipe.incrby(keys[field][0], tokens)
            pipe.expire(keys[field][0], keys[field][1])
        pipe.execute()
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


def window_status(principal):
    """{field: {limit, used, remaining, reset_at}} for every window (for /user/monitor and headers)."""
    limits, _ = effective_limits(principal)
    status = {}
    limiter = _window_limiter()
    for kind in ("requests", "tokens"):
        for window in WINDOWS:
            field = f"{kind}_per_{window}"
            item = _ITEMS[window](limits[field])
            stats = (
                limiter.get_window_stats(item, "tokens", str(principal["user_id"]))
                if kind == "tokens"
                else limiter.get_window_stats(item, *_request_window_key(principal))
            )
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
    """The key Flask-Limiter uses for a user's shared /v1 request windows."""
    return (f"user:{principal['user_id']}", REQUEST_SCOPE)


def rate_limit_headers(principal):
    """OpenAI-style and IETF rate-limit headers from the tightest request and token windows."""
    status = window_status(principal)
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


def handle_request_window_breach(error):
    """Flask-Limiter's RateLimitExceeded → our 429 envelope with the window and headers."""
    item = error.limit.limit
    window = f"requests_per_{item.GRANULARITY.name}"
    stats = _window_limiter().get_window_stats(item, *_request_window_key(g.user))
    retry_after = max(int(stats.reset_time - time.time()), 1)
    record_violation(g.user, window)
    headers = {"Retry-After": str(retry_after)}
    try:
        headers.update(rate_limit_headers(g.user))
    except redis.RedisError:
        pass
    return error_response(
        429,
        "rate_limited",
        f"rate limit exceeded: {window.replace('_', ' ')} ({item.amount})",
        {"limit": item.amount, "window": window},
        headers,
    )
