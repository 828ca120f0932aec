"""Security monitoring on the request path: brute-force IP blocks, new-IP events and the per-key /user limit.

Counters live in Redis (shared by every worker and instance); events are rows in
``security_events`` and one log line each on ``ops_gateway.security``. When Redis is down these
checks fail open: authentication itself still runs against Postgres.
"""

import logging
import time

import redis
from flask import current_app, g, has_request_context
from limits import parse

from ops_gateway.core import db, redis_store
from ops_gateway.core.addresses import canonical_ip
from ops_gateway.core.errors import RateLimited
from ops_gateway.limits import ip_block_queries, queries, windows
from ops_gateway.telemetry import metrics

logger = logging.getLogger("ops_gateway.security")

BLOCK_KEY = "gw:ipblock:{ip}"  # one key per IP, read on its own: on a cluster it is in no user's slot
KEY_IPS_KEY = "gw:{user_tag}:keyips:{key_id}"  # under the key owner's tag: the gate script adds to it
KEY_IPS_TTL_SECONDS = 86400
EVENT_TYPES = ("ip_blocked", "ip_unblocked", "new_ip_for_key", "rate_limit_exceeded", "suspicious_activity")


def record_event(cur, event_type, user_id=None, api_key_id=None, ip=None, details=None, dedupe_key=None):
    """Insert a security event (folded into one row per dedupe_key) and log it as one line."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown security event type {event_type!r}: add it to security.EVENT_TYPES")
    queries.upsert_security_event(cur, event_type, user_id, api_key_id, ip, details, dedupe_key)
    logger.warning(
        "security event",
        extra={
            "event": event_type,
            "event_user_id": user_id,
            "api_key_id": api_key_id,
            "ip": ip,
            "details": details or {},
            "request_id": g.get("request_id") if has_request_context() else None,
        },
    )


def block_key(ip):
    """The Redis key of ``ip``'s block, named by the address's canonical spelling."""
    return BLOCK_KEY.format(ip=canonical_ip(ip) or ip)


def window_limiter():
    """The ``limits`` fixed-window strategy on the shared Redis (Flask-Limiter's own)."""
    return current_app.extensions["ops_gateway.window_limiter"]


def check_ip_block(ip):
    """Refuse a blocked IP with 429 before any key is looked at."""
    try:
        ttl = redis_store.get_redis().ttl(block_key(ip))
    except redis.RedisError:
        return
    if ttl and ttl > 0:
        raise ip_blocked_error(ttl)


def ip_blocked_error(ttl):
    """The 429 for an IP blocked for another ``ttl`` seconds."""
    return RateLimited(
        "too many failed authentication attempts from this IP; try again later",
        {"retry_after": ttl},
        code="ip_blocked",
        headers={"Retry-After": str(ttl)},
    )


def note_auth_failure(ip):
    """Count a failed authentication; the failure that reaches AUTH_FAILURE_LIMIT blocks the IP (one event)."""
    ip = canonical_ip(ip) or ip
    limit = parse(current_app.config["AUTH_FAILURE_LIMIT"])
    try:
        # The window's count in one call (what the strategy's hit does, without a second read):
        # the failure that reaches the limit, and any past it, block.
        failures = window_limiter().storage.incr(limit.key_for("authfail", ip), limit.get_expiry())
        if failures < limit.amount:
            return
        block_seconds = current_app.config["AUTH_BLOCK_SECONDS"]
        newly_blocked = redis_store.get_redis().set(block_key(ip), 1, ex=block_seconds, nx=True)
    except redis.RedisError:
        return
    if newly_blocked:
        with db.transaction() as cur:
            # Redis enforces the block; the row lists it and lets restore_ip_blocks set it again.
            ip_block_queries.upsert_block(cur, ip, "repeated_auth_failures", "system", block_seconds)
            record_event(
                cur,
                "ip_blocked",
                ip=ip,
                details={"reason": "repeated_auth_failures", "limit": str(limit), "block_seconds": block_seconds},
            )


def key_ips_key(user_id, key_id):
    """The Redis set of the IPs a key was used from in the last day."""
    return KEY_IPS_KEY.format(user_tag=redis_store.user_tag(user_id), key_id=key_id)


def note_key_ip(principal, ip):
    """Record a security event the first time a key is used from an IP it has not used before."""
    try:
        cache = redis_store.get_redis()
        cache_key = key_ips_key(windows.tenant(principal), principal["api_key_id"])
        if not cache.sadd(cache_key, ip):
            return
        cache.expire(cache_key, KEY_IPS_TTL_SECONDS)
    except redis.RedisError:
        return
    record_key_ip(principal, ip)


def record_key_ip(principal, ip):
    """An IP not in the key's Redis set of the last day: keep it, and raise an event if it is new for the key."""
    key_id = principal["api_key_id"]
    with db.transaction() as cur:
        if queries.insert_key_ip(cur, key_id, ip) is None:
            return
        if queries.count_key_ips(cur, key_id) > 1:
            record_event(cur, "new_ip_for_key", principal["user_id"], key_id, ip, {"key": principal["key_mask"]})


def check_key_rate_limit(principal, limit_text):
    """429 ``rate_limited`` (window ``user_key``) once the caller's key has made ``limit_text`` requests.

    Counted per key id in the ``limits`` fixed-window strategy of the shared Flask-Limiter, after
    authentication, so refused keys never consume a real key's budget.
    """
    limit = parse(limit_text)
    key_id = principal["api_key_id"]
    try:
        if window_limiter().hit(limit, "user_key", key_id):
            return
        reset_at = window_limiter().get_window_stats(limit, "user_key", key_id).reset_time
    except redis.RedisError:
        return
    retry_after = max(int(reset_at - time.time()), 1)
    metrics.RATE_LIMIT_REJECTIONS.labels("user_key").inc()
    raise RateLimited(
        "too many requests with this API key",
        {"limit": str(limit), "window": "user_key"},
        retry_after=retry_after,
    )
