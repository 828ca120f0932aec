"""Per-user rate limits on /v1: request and token windows, quotas and concurrency.

Every counter lives in the shared Redis, so limits are exact across gunicorn workers and
instances; the windows and quotas themselves are declared in ``windows``, their values come
from the user's plan and overrides (read with the key on every request, so admin changes apply
at once). A request is admitted by one Lua call (``gate.lua``: IP block, new IP, concurrency
slot, quotas, token windows, request windows) and a completion settled by one more
(``charge.lua``: its real tokens, the quotas, the slot, and the windows read back).

Redis unreachable: fail open (logged, /health degraded) unless RATE_LIMIT_FAIL_CLOSED=true,
which rejects with 503.
"""

import logging
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import redis
from flask import current_app

from ops_gateway.accounts import security
from ops_gateway.core import db, redis_store
from ops_gateway.core.errors import RateLimited, Unavailable
from ops_gateway.core.extensions import limiter
from ops_gateway.limits import status as window_status
from ops_gateway.limits import windows
from ops_gateway.limits.windows import QUOTAS, REQUEST_WINDOWS, TOKEN_WINDOWS, WINDOWS
from ops_gateway.observability import metrics

logger = logging.getLogger("ops_gateway.app")

CONCURRENCY_KEY = "gw:concurrent:{user_id}"
CONCURRENCY_TTL_SECONDS = 600  # a crashed worker's slot frees itself after this


class Mode(StrEnum):
    """What the gate checks: only the IP block and the key's new IP (a request refused before it
    counts), also the request windows (/v1/models), or everything (a completion)."""

    IP_ONLY = "ip_only"
    REQUESTS = "requests"
    COMPLETION = "completion"


class Verdict(StrEnum):
    """The gate's answer (the strings gate.lua returns)."""

    PASSED = "passed"
    IP_BLOCKED = "ip_blocked"
    TOO_MANY_CONCURRENT = "too_many_concurrent"
    QUOTA_USED = "quota_used"
    TOKEN_WINDOW_FULL = "token_window_full"
    REQUEST_WINDOW_FULL = "request_window_full"


class Admission:
    """The rate-limit side of one /v1 request, from the gate to the settlement.

    ``principal`` is set once the key is known. The gate records whether the request holds a
    concurrency slot (given back by ``charge_tokens`` or ``release_slot``) and whether it was let
    through unchecked because Redis was unreachable (then nothing is charged and no window
    headers are sent); ``charge_tokens`` keeps the windows it read back for the response headers.
    """

    def __init__(self, client_ip, principal=None):
        self.client_ip = client_ip
        self.principal = principal
        self.holds_slot = False
        self.skipped = False
        self.window_status = None


def init_app(app):
    """Bind Flask-Limiter (its ``limits`` strategy names every window's key) and load the Lua scripts."""
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_timeout": 0.5, "socket_connect_timeout": 0.5})
    limiter.init_app(app)
    app.extensions["ops_gateway.window_limiter"] = limiter.limiter
    client = app.extensions["ops_gateway.redis"]
    for name in ("gate", "charge"):
        source = (Path(__file__).parent / f"{name}.lua").read_text()
        app.extensions[f"ops_gateway.{name}"] = client.register_script(source)


def _run_script(name, keys, args):
    """One registered Lua script: EVALSHA, loading it again when Redis lost it (a restart)."""
    return current_app.extensions[f"ops_gateway.{name}"](keys, args, client=redis_store.get_redis())


def gate(admission, mode):
    """Admit an authenticated /v1 request (one Redis call); raise the 429 envelopes.

    A 0 limit blocks its window. A completion let through holds a concurrency slot until
    ``charge_tokens`` (or ``release_slot``) gives it back.
    """
    principal, ip = admission.principal, admission.client_ip
    limits, window_keys = window_status.user_windows(principal)
    quota_keys = windows.quota_keys(principal["user_id"])
    keys = [
        security.BLOCK_KEY.format(ip=ip),
        security.KEY_IPS_KEY.format(key_id=principal["api_key_id"]),
        CONCURRENCY_KEY.format(user_id=principal["user_id"]),
        *(quota_keys[q.name] for q in QUOTAS),
        *(window_keys[w.name] for w in TOKEN_WINDOWS),
        *(window_keys[w.name] for w in REQUEST_WINDOWS),
    ]
    args = [ip, security.KEY_IPS_TTL_SECONDS, mode, principal["max_concurrent_requests"], CONCURRENCY_TTL_SECONDS]
    args += [len(QUOTAS), len(TOKEN_WINDOWS), len(REQUEST_WINDOWS)]
    args += [principal[q.name] for q in QUOTAS]
    args += [limits[w.name] for w in TOKEN_WINDOWS]
    for window in REQUEST_WINDOWS:
        args += [window.seconds, limits[window.name]]
    try:
        verdict, index, ttl, new_ip = _run_script("gate", keys, args)
    except redis.RedisError as exc:
        _redis_unavailable(admission, exc)
        return
    if verdict == Verdict.IP_BLOCKED:
        raise security.ip_blocked_error(ttl)
    if new_ip:
        security.record_key_ip(principal, ip)
    if verdict == Verdict.PASSED:
        admission.holds_slot = mode == Mode.COMPLETION
    elif verdict == Verdict.TOO_MANY_CONCURRENT:
        _reject(principal, "max_concurrent_requests", principal["max_concurrent_requests"], 1)
    elif verdict == Verdict.QUOTA_USED:
        quota = QUOTAS[index - 1]
        _reject(principal, quota.name, principal[quota.name], quota.seconds_left(datetime.now(UTC)))
    elif verdict == Verdict.TOKEN_WINDOW_FULL:
        window = TOKEN_WINDOWS[index - 1]
        _reject(principal, window.name, limits[window.name], max(ttl, 1))
    elif verdict == Verdict.REQUEST_WINDOW_FULL:
        _request_window_breach(admission, REQUEST_WINDOWS[index - 1], limits, ttl)


def refuse_uncounted(admission, error):
    """Raise ``error`` for a request refused before it counts; a blocked IP gets its 429 instead."""
    gate(admission, Mode.IP_ONLY)
    raise error


def _redis_unavailable(admission, exc):
    """Fail open (marking the request unchecked) or closed, as configured."""
    admission.skipped = True
    logger.warning("rate-limit storage unreachable: %s", exc.__class__.__name__)
    if current_app.config["RATE_LIMIT_FAIL_CLOSED"]:
        raise Unavailable("rate limiting is unavailable; retry shortly", code="rate_limiter_unavailable") from None


def charge_tokens(admission, tokens):
    """After the upstream call, in one Redis call: count the real tokens against every token
    window and quota, give the concurrency slot back and read the windows for the headers."""
    if admission.skipped:
        return
    principal = admission.principal
    limits, window_keys = window_status.user_windows(principal)
    quota_keys = windows.quota_keys(principal["user_id"])
    slot, admission.holds_slot = admission.holds_slot, False
    keys = [
        *(window_keys[w.name] for w in TOKEN_WINDOWS),
        *(quota_keys[q.name] for q in QUOTAS),
        CONCURRENCY_KEY.format(user_id=principal["user_id"]),
        *(window_keys[w.name] for w in WINDOWS),
    ]
    args = [tokens, len(TOKEN_WINDOWS), len(QUOTAS), int(slot), *(w.seconds for w in TOKEN_WINDOWS)]
    for quota in QUOTAS:
        args += [quota.kind.quota_increment(tokens), quota.ttl_seconds]
    try:
        replies = _run_script("charge", keys, args)
        admission.window_status = window_status.status_from(limits, replies)
    except redis.RedisError as exc:
        admission.holds_slot = slot  # release_slot tries again; else the slot key expires by itself
        logger.warning("could not charge tokens to rate-limit windows: %s", exc.__class__.__name__)


def release_slot(admission):
    """Free a concurrency slot ``charge_tokens`` did not (a request that failed before upstream)."""
    if not admission.holds_slot:
        return
    admission.holds_slot = False
    try:
        redis_store.get_redis().decr(CONCURRENCY_KEY.format(user_id=admission.principal["user_id"]))
    except redis.RedisError:
        pass  # the slot key expires by itself


def rate_limit_headers(admission):
    """OpenAI-style and IETF rate-limit headers from the tightest request and token windows."""
    # A completion read its windows when it charged its tokens; anything else reads them now.
    status, admission.window_status = admission.window_status, None
    return window_status.headers_for(status or window_status.window_status(admission.principal))


def _reject(principal, window, limit, retry_after, headers=None):
    """Audit (aggregated) and raise the 429 envelope naming the window."""
    metrics.RATE_LIMIT_REJECTIONS.labels(window).inc()
    record_violation(principal, window)
    raise RateLimited(
        f"rate limit exceeded: {window.replace('_', ' ')} ({limit})",
        {"limit": limit, "window": window},
        code="rate_limited",
        headers={"Retry-After": str(max(int(retry_after), 1)), **(headers or {})},
    )


def _request_window_breach(admission, window, limits, ttl):
    """Raise the 429 for a full request window, with Retry-After and the window headers."""
    reset_time = windows.reading(limits[window.name], None, ttl, time.time())["reset_time"]
    try:
        headers = rate_limit_headers(admission)
    except redis.RedisError:
        headers = {}
    _reject(admission.principal, window.name, limits[window.name], reset_time - time.time(), headers)


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
