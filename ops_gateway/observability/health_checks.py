"""Health checks: what /health, /health/live and /health/ready report, from real probes."""

import logging
import time
from datetime import UTC, datetime

import psycopg2
import redis
from flask import current_app
from redis.exceptions import RedisClusterException

from ops_gateway.core import db, migrations, redis_store
from ops_gateway.limits import rate_limits
from ops_gateway.observability import queries
from ops_gateway.upstream import openrouter

logger = logging.getLogger("ops_gateway.app")

HEALTH_QUERY_TIMEOUT_MS = 1000
UNCONFIGURED_REASON = "OPENROUTER_API_KEY is not set: /v1 requests cannot reach OpenRouter"


def _database_probe():
    """Return (connected, user_count, openrouter_state) from one short query."""
    try:
        with db.transaction() as cur:
            db.set_local(cur, "statement_timeout", HEALTH_QUERY_TIMEOUT_MS)
            row = queries.health_probe(cur)
        return True, row
    except db.UNAVAILABLE_ERRORS:
        db.get_database().discard_idle()
        return False, None
    except psycopg2.ProgrammingError:  # schema not migrated yet: "degraded", not a crash
        return True, None


def openrouter_state(row):
    """connected / error / unconfigured, from the last model-list fetch (no live call)."""
    if not openrouter.is_configured(current_app.config):
        return "unconfigured"
    if row is None or row["last_attempt_at"] is None:
        return "connected" if row is not None else "error"
    if row["last_error_at"] is not None and (row["fetched_at"] is None or row["last_error_at"] >= row["fetched_at"]):
        return "error"
    return "connected"


def redis_state():
    """connected, disconnected (no PING) or failing: Redis answers but the admission script cannot
    run as requests run it (keys across cluster slots, a cluster node behind a plain client, a
    broken script), so every /v1 request would fail open or, fail-closed, be a 503."""
    client = redis_store.get_redis()
    if not redis_store.is_up(client):
        return "disconnected"
    try:
        if not redis_store.is_cluster(client) and client.info("cluster").get("cluster_enabled"):
            raise RedisClusterException("a Redis Cluster node behind the single-node client: set REDIS_CLUSTER=true")
        rate_limits.probe()
    except (redis.RedisError, RedisClusterException) as exc:
        logger.error("Redis answers but the admission script fails: %s", exc)
        return "failing"
    return "connected"


def degraded_reasons(database_ok, redis_status, openrouter, row):
    """Why /health is not ``healthy``, one short sentence per failing dependency (empty when healthy).

    An unconfigured upstream counts: every /v1 call would fail, so "healthy" would mislead.
    """
    if not database_ok:
        return ["database unreachable"]
    reasons = []
    if row is None:
        reasons.append("database schema not migrated")
    if redis_status == "disconnected":
        reasons.append("redis unreachable: rate limits and caches are degraded")
    elif redis_status == "failing":
        reasons.append("redis answers but the admission script fails: rate limits are not applied")
    if openrouter == "unconfigured":
        reasons.append(UNCONFIGURED_REASON)
    elif openrouter == "error":
        reasons.append("the last OpenRouter model-list fetch failed")
    return reasons


def health_report():
    """The /health document and its HTTP status."""
    database_ok, row = _database_probe()
    redis_status = redis_state()
    openrouter = openrouter_state(row) if database_ok else "error"
    reasons = degraded_reasons(database_ok, redis_status, openrouter, row)
    if not database_ok:
        status = "unhealthy"
    else:
        status = "degraded" if reasons else "healthy"
    report = {
        "status": status,
        "reasons": reasons,
        "database": "connected" if database_ok else "disconnected",
        "redis": redis_status,
        "openrouter": openrouter,
        "user_count": int(row["user_count"]) if row else 0,
        "timestamp": datetime.now(UTC).isoformat(),
        "version": current_app.config["VERSION"],
        "uptime_seconds": round(time.time() - current_app.config["STARTED_AT"], 1),
    }
    return report, 503 if status == "unhealthy" else 200


def readiness():
    """(ready, reason): the database answers, no migration is pending, and Redis is not failing
    (nor, with RATE_LIMIT_FAIL_CLOSED, unreachable: then every /v1 request would be a 503; failing
    open, an instance without Redis still serves)."""
    try:
        with db.transaction() as cur:
            db.set_local(cur, "statement_timeout", HEALTH_QUERY_TIMEOUT_MS)
            missing = migrations.pending(cur)
    except db.UNAVAILABLE_ERRORS:
        db.get_database().discard_idle()
        return False, "database unreachable"
    if missing:
        return False, f"migrations pending: {', '.join(missing)}"
    redis_status = redis_state()
    if redis_status == "failing" or (redis_status == "disconnected" and current_app.config["RATE_LIMIT_FAIL_CLOSED"]):
        return False, f"redis {redis_status}"
    return True, "ready"
