"""The opt-in response cache: a request asking for it (``X-Gateway-Cache-TTL: <seconds>``, or its
key's ``cache_ttl_seconds``) is answered from Redis when the same tenant sent the same body to the
same endpoint within the TTL, without reaching upstream, and charged CACHE_HIT_PRICE_FACTOR times
what the original was charged. ``Cache-Control: no-store`` bypasses it both ways.

An entry is keyed by tenant (an org key's org, else the key's user: one tenant's entries never
answer another's), endpoint and a digest of the validated body (``stream`` included: a stream is
replayed as the events it sent). Only a whole, successful answer no larger than
CACHE_MAX_ENTRY_BYTES is kept. Redis is a cache here: when it is unreachable or was flushed the
request simply goes upstream. Two identical requests at once may both go upstream (neither
waits for the other); each gets its own correct answer.
"""

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from decimal import Decimal

import redis

from ops_gateway.core import redis_store
from ops_gateway.core.errors import BadRequest
from ops_gateway.limits import windows
from ops_gateway.telemetry import metrics

logger = logging.getLogger("ops_gateway.pipeline")

TTL_HEADER = "X-Gateway-Cache-TTL"
STATUS_HEADER = "X-Gateway-Cache"
_TTL = re.compile(r"^\d{1,9}$")


@dataclass
class Lookup:
    """One request's cache lookup: where its answer is kept, for how long, and a hit's entry."""

    key: str
    ttl: int
    entry: dict | None = None  # a hit: {"body", "model", "prompt_tokens", "completion_tokens", "cost"}

    @property
    def status(self):
        """``hit`` or ``miss``: the response's X-Gateway-Cache."""
        return "hit" if self.entry else "miss"


def requested_ttl(header, max_ttl):
    """The seconds an X-Gateway-Cache-TTL header asks for (None: no header); 400 ``invalid_cache_ttl``."""
    if not header:
        return None
    text = header.strip()
    if not _TTL.match(text) or not 1 <= int(text) <= max_ttl:
        details = {"header": TTL_HEADER, "max_seconds": max_ttl}
        raise BadRequest(f"{TTL_HEADER} must be whole seconds from 1 to {max_ttl}", details, code="invalid_cache_ttl")
    return int(text)


def _key(principal, endpoint, body):
    tenant = windows.tenant(principal)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return f"gw:cache:{tenant}:{endpoint.name}:{hashlib.sha256(canonical.encode()).hexdigest()}"


def lookup(principal, endpoint, body, ttl, no_store, max_ttl):
    """The request's lookup, with a hit's entry read from Redis; None when caching was not asked
    (no TTL from the request or the key, whose own is bounded by ``max_ttl``) or the client said
    ``no-store``."""
    ttl = ttl or min(principal.get("cache_ttl_seconds") or 0, max_ttl)
    if not ttl or no_store:
        return None
    found = Lookup(_key(principal, endpoint, body), ttl)
    try:
        raw = redis_store.get_redis().get(found.key)
    except redis.RedisError as error:
        logger.warning("response cache unreadable: %s", error.__class__.__name__)
        raw = None
    found.entry = json.loads(raw) if raw else None
    metrics.RESPONSE_CACHE.labels(found.status).inc()
    return found


def keep(found, body_text, model, prompt_tokens, completion_tokens, cost, max_bytes):
    """Store a miss's whole answer for its TTL (nothing when it is larger than ``max_bytes``)."""
    entry = json.dumps(
        {
            "body": body_text,
            "model": model,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cost": str(cost),
        }
    )
    if len(entry) > max_bytes:
        metrics.RESPONSE_CACHE.labels("too_large").inc()
        return
    try:
        redis_store.get_redis().set(found.key, entry, ex=found.ttl)
    except redis.RedisError as error:
        logger.warning("response cache unwritable: %s", error.__class__.__name__)
        return
    metrics.RESPONSE_CACHE_BYTES.inc(len(entry))


def hit_cost(entry, factor):
    """What a hit is charged: ``factor`` times what the original was."""
    return round(Decimal(entry["cost"]) * factor, 10)


def replay(body):
    """A cached stream's events (its ``body``), one at a time, as they were sent."""
    for event in body.split("\n\n")[:-1]:
        yield f"{event}\n\n"
