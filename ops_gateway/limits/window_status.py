"""Where a user's windows stand now: the /user/monitor document and the rate-limit headers.

Both are derived from the window registry: one entry per window, and per kind the OpenAI-style
headers (and, for requests, the IETF ``RateLimit-*`` ones) of its tightest window.
"""

import time
from datetime import UTC, datetime

from ops_gateway.core import redis_store
from ops_gateway.limits import plans, security, windows
from ops_gateway.limits.windows import KINDS, LIMIT_FIELDS, WINDOWS


def user_windows(principal):
    """(effective limits, {window: Redis key}) of the authenticated caller's windows."""
    limits, _ = plans.effective_limits(principal)
    prefix = security.window_limiter().storage.key_prefix
    return limits, windows.window_keys(prefix, windows.tenant(principal), tuple(limits[f] for f in LIMIT_FIELDS))


def window_status(principal):
    """{window: {limit, used, remaining, reset_at, reset_seconds}} for every window, read now."""
    limits, keys = user_windows(principal)
    pipe = redis_store.get_redis().pipeline(transaction=False)  # every read in one round trip
    for key in keys.values():
        pipe.get(key)
        pipe.ttl(key)
    return status_from(limits, pipe.execute())


def status_from(limits, replies):
    """``window_status``'s document from a count and a TTL per window, in registry order."""
    replies = iter(replies)
    status = {}
    for window in WINDOWS:
        reading = windows.reading(limits[window.name], next(replies), next(replies), time.time())
        status[window.name] = {
            "limit": reading["limit"],
            "used": reading["used"],
            "remaining": reading["remaining"],
            "reset_at": datetime.fromtimestamp(reading["reset_time"], UTC).isoformat(),
            "reset_seconds": windows.reset_seconds(reading["reset_time"], time.time()),
        }
    return status


def headers_for(status):
    """The rate-limit headers of a ``window_status`` document: per kind, its tightest window."""
    headers = {}
    for kind in KINDS:
        tightest = min((status[w.name] for w in WINDOWS if w.kind is kind), key=lambda s: s["remaining"])
        limit, remaining, reset = kind.headers
        headers[limit] = str(tightest["limit"])
        headers[remaining] = str(tightest["remaining"])
        headers[reset] = f"{tightest['reset_seconds']}s"
        if kind.ietf_headers:
            limit, remaining, reset = kind.ietf_headers
            headers[limit] = str(tightest["limit"])
            headers[remaining] = str(tightest["remaining"])
            headers[reset] = str(tightest["reset_seconds"])
    return headers
