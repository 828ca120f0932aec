"""Per-user rate limits on /v1: request and token windows, quotas and concurrency.

Every counter lives in the shared Redis, so limits are exact across gunicorn workers and
instances; the windows and quotas themselves are declared in ``windows``, their values come
from the user's plan and overrides (read with the key on every request, so admin changes apply
at once). A request is admitted by one Lua call (``gate.lua``: IP block, new IP, concurrency
slot, quotas, token windows, request windows) and a completion settled by one more
(``charge.lua``: its real tokens, the quotas, the slot, and the windows read back). On a Redis
Cluster the IP block, which is not the user's, is one more read before the gate.

Redis may lose everything (a restart without persistence, FLUSHALL, a failover to an empty
replica): a concurrency slot is an entry with its own deadline, so none is stuck or negative, and
the quotas are seeded again from Postgres (``quota_usage``); the per-minute to per-day windows
restart.

Redis unreachable: fail open (logged, /health degraded) unless RATE_LIMIT_FAIL_CLOSED=true,
which rejects with 503.
"""

import json
import logging
import math
import time
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import redis
from flask import current_app

from ops_gateway.billing.credits import hold_lifetime_seconds
from ops_gateway.core import db, redis_store
from ops_gateway.core.errors import RateLimited, Unavailable
from ops_gateway.core.extensions import limiter
from ops_gateway.limits import quota_usage, security, windows
from ops_gateway.limits import window_status as window_status
from ops_gateway.limits.windows import QUOTA_PERIODS, QUOTAS, REQUEST_WINDOWS, TOKEN_WINDOWS, WINDOWS
from ops_gateway.telemetry import metrics

logger = logging.getLogger("ops_gateway.app")

INFLIGHT_KEY = "gw:{user_tag}:inflight"  # the user's concurrency slots: request id -> deadline
PROBE_USER = "health"  # /health runs the gate on this user's keys


class Mode(StrEnum):
    """What the gate checks: only the IP block and the key's new IP (a request refused before it
    counts), also the request windows (/v1/models), or everything (a completion). A probe
    (/health) only runs the script on a made-up user's keys."""

    PROBE = "probe"
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
    NEEDS_SEED = "needs_seed"


class Admission:
    """The rate-limit side of one /v1 request, from the gate to the settlement.

    ``principal`` is set once the key is known. The gate records the concurrency slot the request
    holds (its id in the user's in-flight set, given back by ``charge_tokens`` or ``release_slot``;
    None: none) and whether it was let
    through unchecked because Redis was unreachable (then nothing is charged and no window
    headers are sent); ``charge_tokens`` keeps the windows it read back for the response headers.
    """

    def __init__(self, client_ip, principal=None):
        self.client_ip = client_ip
        self.principal = principal
        self.slot = None
        self.skipped = False
        self.window_status = None


def init_app(app):
    """Bind Flask-Limiter (its ``limits`` strategy names every window's key) and load the Lua scripts."""
    config = app.config
    url, cert_reqs, cluster = config["REDIS_URL"], config["REDIS_SSL_CERT_REQS"], config["REDIS_CLUSTER"]
    storage_options = redis_store.limits_storage_options(url, cert_reqs, cluster, config["REDIS_SSL_CA_CERTS"])
    config.setdefault("RATELIMIT_STORAGE_OPTIONS", storage_options)
    # Flask-Limiter merges each app's options into the one shared Limiter's dict: without this, an
    # app built after a TLS-cluster one (same process) would open its Redis with ``ssl=True`` too.
    limiter._storage_options = {}
    limiter.init_app(app)
    app.extensions["ops_gateway.window_limiter"] = limiter.limiter
    client = app.extensions["ops_gateway.redis"]
    for name in ("gate", "charge"):
        source = (Path(__file__).parent / f"{name}.lua").read_text()
        app.extensions[f"ops_gateway.{name}"] = client.register_script(source)


def _run_script(name, keys, plan):
    """One registered Lua script with its JSON argument: EVALSHA, loading it again when Redis lost
    it (a restart)."""
    script = current_app.extensions[f"ops_gateway.{name}"]
    return script(keys, [json.dumps(plan)], client=redis_store.get_redis())


def _run_gate(principal, ip, mode, limits, window_keys, slot=None):
    """The gate script's reply for one request: on a cluster the IP block is read first (another
    slot); a period's missing quota hash is seeded from Postgres and the gate run once more."""
    tenant, now = windows.tenant(principal), datetime.now(UTC)
    keys = [
        INFLIGHT_KEY.format(user_tag=redis_store.user_tag(tenant)),
        security.key_ips_key(tenant, principal["api_key_id"]),
        *(period.key(tenant, now) for period in QUOTA_PERIODS),
        *(window_keys[w.name] for w in TOKEN_WINDOWS),
        *(window_keys[w.name] for w in REQUEST_WINDOWS),
    ]
    if redis_store.is_cluster(redis_store.get_redis()):
        blocked = redis_store.get_redis().ttl(security.block_key(ip))
        if blocked > 0:
            return [Verdict.IP_BLOCKED, 0, blocked, 0]
    else:
        keys.append(security.block_key(ip))
    plan = {
        "mode": mode,
        "ip": ip,
        "ips_ttl": security.KEY_IPS_TTL_SECONDS,
        "slot": slot or "",
        "slot_lifetime": math.ceil(hold_lifetime_seconds(current_app.config)),
        "max_concurrent": principal["max_concurrent_requests"],
        "period_ttls": [period.ttl_seconds for period in QUOTA_PERIODS],
        "quotas": [
            [windows.period_number(q), q.kind.quota_tag, principal[q.name], q.kind.counts_in_flight] for q in QUOTAS
        ],
        "token_limits": [limits[w.name] for w in TOKEN_WINDOWS],
        "request_windows": [[w.ttl_at(now.timestamp()), limits[w.name]] for w in REQUEST_WINDOWS],
    }
    reply = _run_script("gate", keys, plan)
    if reply[0] == Verdict.NEEDS_SEED:
        plan["seed"] = quota_usage.period_seeds(principal, now)
        reply = _run_script("gate", keys, plan)
    return reply


def gate(admission, mode):
    """Admit an authenticated /v1 request (one Redis call, two on a cluster); raise the 429 envelopes.

    A 0 limit blocks its window. A completion let through holds a concurrency slot until
    ``charge_tokens`` (or ``release_slot``) gives it back.
    """
    principal, ip = admission.principal, admission.client_ip
    limits, window_keys = window_status.user_windows(principal)
    slot = uuid.uuid4().hex if mode == Mode.COMPLETION else None  # unique, whatever X-Request-ID says
    try:
        verdict, index, ttl, new_ip = _run_gate(principal, ip, mode, limits, window_keys, slot)
    except redis.RedisError as exc:
        _redis_unavailable(admission, exc)
        return
    if verdict == Verdict.IP_BLOCKED:
        raise security.ip_blocked_error(ttl)
    if new_ip:
        security.record_key_ip(principal, ip)
    if verdict == Verdict.PASSED:
        admission.slot = slot
    elif verdict == Verdict.TOO_MANY_CONCURRENT:
        _reject(admission, "max_concurrent_requests", principal["max_concurrent_requests"], 1)
    elif verdict == Verdict.QUOTA_USED:
        quota = QUOTAS[index - 1]
        _reject(admission, quota.name, principal[quota.name], quota.seconds_left(datetime.now(UTC)))
    elif verdict == Verdict.TOKEN_WINDOW_FULL:
        window = TOKEN_WINDOWS[index - 1]
        _reject(admission, window.name, limits[window.name], max(ttl, 1))
    elif verdict == Verdict.REQUEST_WINDOW_FULL:
        _request_window_breach(admission, REQUEST_WINDOWS[index - 1], limits, ttl)


def probe():
    """Run the gate script as a request would (same keys, same slot discipline) without counting
    anything; raise the RedisError a request would meet (unreachable, CROSSSLOT, a broken script)."""
    principal = {"user_id": PROBE_USER, "api_key_id": PROBE_USER, "max_concurrent_requests": 0}
    principal.update({q.name: 0 for q in QUOTAS})
    limits = dict.fromkeys(windows.LIMIT_FIELDS, 0)
    window_keys = windows.window_keys(security.window_limiter().storage.key_prefix, PROBE_USER, tuple(limits.values()))
    _run_gate(principal, "0.0.0.0", Mode.PROBE, limits, window_keys)


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
    tenant, now = windows.tenant(principal), datetime.now(UTC)
    limits, window_keys = window_status.user_windows(principal)
    slot, admission.slot = admission.slot, None
    keys = [
        *(window_keys[w.name] for w in TOKEN_WINDOWS),
        *(period.key(tenant, now) for period in QUOTA_PERIODS),
        INFLIGHT_KEY.format(user_tag=redis_store.user_tag(tenant)),
        *(window_keys[w.name] for w in WINDOWS),
    ]
    plan = {
        "tokens": tokens,
        "token_expiries": [w.ttl_at(now.timestamp()) for w in TOKEN_WINDOWS],
        "periods": len(QUOTA_PERIODS),
        "quotas": [[windows.period_number(q), q.kind.quota_tag, q.kind.quota_increment(tokens)] for q in QUOTAS],
    }
    if slot is not None:  # JSON null would be true in Lua
        plan["slot"] = slot
    try:
        replies = _run_script("charge", keys, plan)
        admission.window_status = window_status.status_from(limits, replies)
    except redis.RedisError as exc:
        admission.slot = slot  # release_slot tries again; else the slot's deadline frees it
        logger.warning("could not charge tokens to rate-limit windows: %s", exc.__class__.__name__)


def release_slot(admission):
    """Free a concurrency slot ``charge_tokens`` did not (a request that failed before upstream)."""
    slot, admission.slot = admission.slot, None
    if slot is None:
        return
    user_tag = redis_store.user_tag(windows.tenant(admission.principal))
    try:
        redis_store.get_redis().zrem(INFLIGHT_KEY.format(user_tag=user_tag), slot)
    except redis.RedisError:
        pass  # the slot's deadline frees it


def rate_limit_headers(admission):
    """OpenAI-style and IETF rate-limit headers from the tightest request and token windows."""
    # A completion read its windows when it charged its tokens; anything else reads them now.
    status, admission.window_status = admission.window_status, None
    return window_status.headers_for(status or window_status.window_status(admission.principal))


def _reject(admission, window, limit, retry_after, headers=None):
    """Audit (aggregated) and raise the 429 envelope naming the window."""
    metrics.RATE_LIMIT_REJECTIONS.labels(window).inc()
    record_violation(admission.principal, window, admission.client_ip)
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
    _reject(admission, window.name, limits[window.name], reset_time - time.time(), headers)


def record_violation(principal, window, ip):
    """One security_events row per key, window and minute, counting repeats (no flood of rows); the
    row carries the client IP of its first rejection, so an operator can see where the flood comes from."""
    minute = datetime.now(UTC).strftime("%Y%m%d%H%M")
    try:
        with db.transaction() as cur:
            security.record_event(
                cur,
                "rate_limit_exceeded",
                principal["user_id"],
                principal["api_key_id"],
                ip,
                {"window": window, "key": principal["key_mask"]},
                dedupe_key=f"rl:{principal['api_key_id']}:{window}:{minute}",
            )
    except db.UNAVAILABLE_ERRORS:
        logger.warning("could not record rate-limit violation")
