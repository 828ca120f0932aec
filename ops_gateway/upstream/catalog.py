"""The model catalogue: one shared cache for the whole deployment, with graceful degradation.

The list lives in Postgres (``model_catalog`` row 1) so a refresh by any worker, instance or the
scheduler is seen by all; each process keeps a copy for ``LOCAL_CHECK_SECONDS`` and re-reads it
only when the shared version changed. A refresh reads both of OpenRouter's model lists and merges
them (``model_lists``). A failed refresh never empties the list: a list that could not be read
keeps its previous entries, the others' new entries are stored, and the catalogue keeps serving,
marked stale, its age unchanged (it is fresh again only once every list was read). Hits and misses
are counted in Redis (deployment-wide); each process adds its counts at most every
``COUNTER_FLUSH_SECONDS`` rather than once per request. Its statements are in ``catalog_queries``.
"""

import collections
import logging
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import redis
from flask import current_app

from ops_gateway.billing import pricing
from ops_gateway.core import db, redis_store
from ops_gateway.telemetry import metrics
from ops_gateway.upstream import catalog_queries, model_lists
from ops_gateway.upstream.failures import UpstreamError

logger = logging.getLogger("ops_gateway.openrouter")

LOCAL_CHECK_SECONDS = 2.0
REFRESH_LOCK_KEY = "gw:models:refreshing"
REFRESH_BACKOFF_SECONDS = 15
COUNTER_KEY = "gw:models:counters"
COUNTER_FLUSH_SECONDS = 1.0  # how late another process may see this one's hits and misses


class _LocalCopy:
    """This process's copy of the shared catalogue."""

    def __init__(self):
        self.lock = threading.Lock()
        self.version = None
        self.models = {}
        self.fetched_at = None
        self.checked_at = 0.0
        self.counts_lock = threading.Lock()
        self.pending_counts = collections.Counter()  # hits/misses not yet added in Redis
        self.counts_flushed_at = time.monotonic()


def init_app(app):
    """Give the app its per-process copy and its OpenRouter client."""
    from ops_gateway.upstream.openrouter import OpenRouterClient

    app.extensions["ops_gateway.model_copy"] = _LocalCopy()
    app.extensions["ops_gateway.openrouter"] = OpenRouterClient(
        app.config["OPENROUTER_BASE_URL"],
        app.config["OPENROUTER_API_KEY"] or "",
        read_timeout=app.config["OPENROUTER_TIMEOUT_SECONDS"],
        upstream_retries=app.config["UPSTREAM_RETRIES"],
        on_call=metrics.observe_upstream_call,
        on_retry=metrics.observe_upstream_retry,
    )


def _copy():
    return current_app.extensions["ops_gateway.model_copy"]


def with_hold_pricing(models):
    """``models`` by id, each unpriced one (``openrouter/auto``, a price missing or negative) given
    ``hold_pricing``: the dearest prompt and completion prices listed, so its hold bounds whatever
    model the router picks. What it is charged is what upstream reports (``pricing.charge``)."""
    priced = [m["pricing"] for m in models if not pricing.is_unpriced(m["pricing"])]
    dearest = {
        part: f"{max((Decimal(p[part]) for p in priced), default=Decimal(0)):f}" for part in ("prompt", "completion")
    }
    return {m["id"]: {**m, "hold_pricing": dearest} if pricing.is_unpriced(m["pricing"]) else m for m in models}


def refresh_models():
    """Fetch OpenRouter's model lists into the shared cache, merged; when a list fails, keep its
    previous entries (store the others'), record the failure and raise it."""
    started = time.perf_counter()
    entries, failures = model_lists.read_lists(current_app.extensions["ops_gateway.openrouter"])
    if failures:
        raise _record_failed_refresh(entries, failures)
    models = model_lists.merged(entries, previous=())
    with db.transaction() as cur:
        catalog_queries.store_models(cur, models)
    metrics.CACHE_REFRESHES.labels("success").inc()
    _copy().checked_at = 0.0  # re-read on next use in this process
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    logger.info("model list refreshed", extra={"total_models": len(models), "duration_ms": duration_ms})
    return {"total_models": len(models), "duration_ms": duration_ms}


def _record_failed_refresh(entries, failures):
    """Record a refresh in which the lists named in failures were not read, storing the ones in
    entries beside the others' previous entries; the UpstreamError to raise (the first failure's
    kind, every failure's message)."""
    message = "; ".join(error.message for error in failures.values())
    with db.transaction() as cur:
        if entries:
            previous = catalog_queries.locked_catalog_models(cur)
            catalog_queries.store_models_in_part(cur, model_lists.merged(entries, previous))
        catalog_queries.record_refresh_failure(cur, message[:500])
    _copy().checked_at = 0.0  # re-read on next use in this process
    metrics.CACHE_REFRESHES.labels("failed").inc()
    logger.error(
        "model refresh failed; serving the previous entries of the lists not read",
        extra={"error": message[:200], "lists_failed": sorted(failures), "lists_read": sorted(entries)},
    )
    first = next(iter(failures.values()))
    return UpstreamError(first.kind, message, first.status, first.retry_after)


def _load_shared():
    local = _copy()
    with db.transaction() as cur:
        head = catalog_queries.catalog_head(cur)
        if head["version"] != local.version:
            local.models = with_hold_pricing(model_lists.with_endpoints(catalog_queries.catalog_models(cur)))
            local.version = head["version"]
        local.fetched_at = head["fetched_at"]
        local.checked_at = time.monotonic()


def _count(field):
    metrics.CACHE_LOOKUPS.labels(field).inc()
    local = _copy()
    with local.counts_lock:
        local.pending_counts[field] += 1
        due = time.monotonic() - local.counts_flushed_at >= COUNTER_FLUSH_SECONDS
    if due:
        _flush_counts()


def _flush_counts():
    """Add this process's pending hit/miss counts to the shared counters (one round trip)."""
    local = _copy()
    with local.counts_lock:
        pending, local.pending_counts = local.pending_counts, collections.Counter()
        local.counts_flushed_at = time.monotonic()
    if not pending:
        return
    try:
        pipe = redis_store.get_redis().pipeline(transaction=False)
        for field, count in pending.items():
            pipe.hincrby(COUNTER_KEY, field, count)
        pipe.execute()
    except redis.RedisError:
        pass  # counters are best-effort; serving models is not


def _age_seconds():
    fetched_at = _copy().fetched_at
    return None if fetched_at is None else (datetime.now(UTC) - fetched_at).total_seconds()


def _try_refresh(wait):
    """Refresh unless another process is already doing it (when ``wait``, refresh regardless)."""
    try:
        got_lock = redis_store.get_redis().set(REFRESH_LOCK_KEY, 1, nx=True, ex=30)
    except redis.RedisError:
        got_lock = True
    if not (got_lock or wait):
        return
    try:
        refresh_models()
        _release_refresh_lock()
    except UpstreamError:
        # Keep the lock for a while: requests serve the stale list instead of each retrying upstream.
        _hold_refresh_lock(REFRESH_BACKOFF_SECONDS)
        if wait:
            raise
    _load_shared()


def _release_refresh_lock():
    try:
        redis_store.get_redis().delete(REFRESH_LOCK_KEY)
    except redis.RedisError:
        pass


def _hold_refresh_lock(seconds):
    try:
        redis_store.get_redis().set(REFRESH_LOCK_KEY, 1, ex=seconds)
    except redis.RedisError:
        pass


def get_models():
    """The cached models by id: refreshed when expired, stale when upstream is down, never empty by failure.

    Raises UpstreamError only when there has never been a successful fetch.
    """
    local = _copy()
    with local.lock:
        if time.monotonic() - local.checked_at >= LOCAL_CHECK_SECONDS:
            _load_shared()
    age = _age_seconds()
    if age is not None and age < current_app.config["MODEL_CACHE_TTL_SECONDS"]:
        _count("hits")
        return local.models
    _count("misses")
    _try_refresh(wait=age is None)
    return local.models


def find_model(model_id):
    """One cached model or None."""
    return get_models().get(model_id)


def cache_status():
    """The cache_info document of /admin/cache-status."""
    with db.transaction() as cur:
        row = catalog_queries.catalog_status(cur)
    _flush_counts()  # this process's latest lookups count too
    try:
        counters = redis_store.get_redis().hgetall(COUNTER_KEY)
    except redis.RedisError:
        counters = {}
    hits, misses = int(counters.get("hits", 0)), int(counters.get("misses", 0))
    ttl = current_app.config["MODEL_CACHE_TTL_SECONDS"]
    age = (datetime.now(UTC) - row["fetched_at"]).total_seconds() if row["fetched_at"] else None
    failed_since = row["last_error_at"] is not None and (
        row["fetched_at"] is None or row["last_error_at"] >= row["fetched_at"]
    )
    has_data = row["fetched_at"] is not None
    return {
        "has_data": has_data,
        "cache_age_seconds": None if age is None else round(age, 1),
        "ttl_seconds": ttl,
        "is_valid": has_data and age < ttl and not failed_since,
        "is_stale": has_data and (age >= ttl or failed_since),
        "total_cached_models": row["total"],
        "last_refresh_at": row["fetched_at"],
        "last_error": row["last_error"] if failed_since else None,
        "last_error_at": row["last_error_at"],
        "hits": hits,
        "misses": misses,
        "hit_rate": round(hits / (hits + misses), 4) if hits + misses else 0.0,
        "refresh_count": row["refresh_count"],
        "refresh_failures": row["refresh_failures"],
    }
