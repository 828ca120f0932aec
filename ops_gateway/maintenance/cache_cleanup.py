"""Cache cleanup: find leaked Redis keys (no TTL) under the gateway's prefixes and delete them.

Every rate-limit and limiter key is written with a TTL, so Redis expires them itself; a key under
those prefixes without one was leaked (a crash between a write and its EXPIRE, an old code
version) and would live forever. Keys are walked with SCAN, never KEYS, so Redis is not blocked.
A key is deleted only if it still has no TTL at delete time and nobody touched it for
LEAKED_MIN_IDLE_SECONDS, so a key between its write and its EXPIRE is never taken.
The model catalogue lives in Postgres and is replaced, not expired: here we only report its age.
"""

from datetime import UTC, datetime

from ops_gateway.core import db
from ops_gateway.maintenance import queries
from ops_gateway.upstream.catalog import COUNTER_KEY

PREFIXES = ("gw:", "LIMITS:")  # our counters, and Flask-Limiter/limits windows
PERSISTENT_KEYS = frozenset({COUNTER_KEY})  # meant to live without a TTL: never swept
LEAKED_MIN_IDLE_SECONDS = 3600
SCAN_COUNT = 500

# Delete only if the key still has no TTL and is still idle: the check and the delete are atomic.
# Under an LFU eviction policy OBJECT IDLETIME is an error; then nothing is deleted.
_DELETE_IF_LEAKED = """
if redis.call('TTL', KEYS[1]) ~= -1 then return 0 end
local idle = redis.pcall('OBJECT', 'IDLETIME', KEYS[1])
if type(idle) ~= 'number' or idle < tonumber(ARGV[1]) then return 0 end
return redis.call('DEL', KEYS[1])
"""


def sweep_prefix(client, prefix, min_idle_seconds=LEAKED_MIN_IDLE_SECONDS):
    """SCAN one prefix; delete its leaked keys; return counts of what was seen and done."""
    delete_if_leaked = client.register_script(_DELETE_IF_LEAKED)
    report = {"scanned": 0, "with_ttl": 0, "leaked_deleted": 0, "no_ttl_kept": 0}
    for batch in _batches(client.scan_iter(match=f"{prefix}*", count=SCAN_COUNT), SCAN_COUNT):
        with client.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.ttl(key)
            ttls = pipe.execute()
        report["scanned"] += len(batch)
        for key, ttl in zip(batch, ttls, strict=True):
            if ttl >= 0:
                report["with_ttl"] += 1
            elif ttl == -1 and key not in PERSISTENT_KEYS and delete_if_leaked(keys=[key], args=[min_idle_seconds]):
                report["leaked_deleted"] += 1
            elif ttl == -1:
                report["no_ttl_kept"] += 1
    return report


def _batches(iterable, size):
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def catalog_age(cur, ttl_seconds):
    """Age of the shared model catalogue and whether requests would treat it as stale."""
    row = queries.catalog_fetch(cur)
    if row is None or row["fetched_at"] is None:
        return {"model_catalog_age_seconds": None, "model_catalog_stale": True, "model_catalog_models": 0}
    age = (datetime.now(UTC) - row["fetched_at"]).total_seconds()
    return {
        "model_catalog_age_seconds": round(age, 1),
        "model_catalog_stale": age >= ttl_seconds,
        "model_catalog_models": row["models"],
    }


def clean_caches(client, ttl_seconds, min_idle_seconds=LEAKED_MIN_IDLE_SECONDS):
    """The cache_cleanup job body: sweep every prefix and report the model catalogue's age."""
    report = {"redis": {prefix: sweep_prefix(client, prefix, min_idle_seconds) for prefix in PREFIXES}}
    with db.transaction() as cur:
        report.update(catalog_age(cur, ttl_seconds))
    return report
