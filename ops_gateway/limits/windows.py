"""The rate-limit windows and quotas, declared once; everything else is derived from this list.

A window is a fixed window aligned to UTC: a minute window resets on the minute, an hour window
on the hour, a day window at midnight UTC. It is counted in Redis on the key the ``limits``
library names (the key carries the limit, so a changed limit starts a fresh counter); the first
hit sets its TTL to the time left until the window's boundary (``Window.ttl_at``), so the key's
TTL is always the true time to its reset. Its name is
also its column in ``plans`` and ``rate_limit_overrides``, its field in the admin and monitor
schemas and its key in responses. Quotas are calendar (UTC) counters taken from the plan only.
Adding a window: one ``Window`` below and one migration adding its two columns.

Every key of a user carries the user's hash tag (``redis_store.user_tag``), so the Lua scripts,
which touch many of them at once, run on a Redis Cluster too.

Nothing here touches Redis, Flask or the database: the arithmetic is testable on its own.
"""

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime

from limits import (
    RateLimitItemPerDay,
    RateLimitItemPerHour,
    RateLimitItemPerMinute,
    RateLimitItemPerMonth,
    RateLimitItemPerSecond,
    RateLimitItemPerYear,
)

from ops_gateway.core.redis_store import user_tag

_ITEMS = {
    "second": RateLimitItemPerSecond,
    "minute": RateLimitItemPerMinute,
    "hour": RateLimitItemPerHour,
    "day": RateLimitItemPerDay,
    "month": RateLimitItemPerMonth,
    "year": RateLimitItemPerYear,
}


@dataclass(frozen=True)
class Kind:
    """What a window or quota counts, and how responses report the tightest window of the kind."""

    name: str  # "requests" (one per request) or "tokens" (a completion's real tokens)
    headers: tuple[str, str, str]  # OpenAI-style limit, remaining and reset headers
    ietf_headers: tuple[str, str, str] | None  # IETF RateLimit-* headers, sent for one kind only
    identifiers: tuple[str, ...]  # the window key's identifiers (``{user_tag}`` filled in)
    quota_tag: str  # the kind's field in a quota hash
    usage_column: str  # what one usage_daily_totals row counts of this kind (the quota's record)

    def quota_increment(self, tokens):
        """How much one finished completion adds to a quota of this kind."""
        return tokens if self.name == "tokens" else 1

    @property
    def counts_in_flight(self):
        """Whether a quota of this kind also counts the requests still in flight at admission:
        known for requests (one each), not for tokens (known only once a completion is settled)."""
        return self.name == "requests"


REQUESTS = Kind(
    "requests",
    ("X-RateLimit-Limit-Requests", "X-RateLimit-Remaining-Requests", "X-RateLimit-Reset-Requests"),
    ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"),
    # One budget for every /v1 route: the user and the "v1" scope name its keys.
    ("{user_tag}", "v1"),
    "req",
    "requests",
)
TOKENS = Kind(
    "tokens",
    ("X-RateLimit-Limit-Tokens", "X-RateLimit-Remaining-Tokens", "X-RateLimit-Reset-Tokens"),
    None,
    ("tokens", "{user_tag}"),
    "tok",
    "prompt_tokens + completion_tokens",
)
KINDS = (REQUESTS, TOKENS)


@dataclass(frozen=True)
class Window:
    """One fixed window: ``length`` ``unit``s long, limited per user by plan or override."""

    name: str  # also the plans / rate_limit_overrides column
    kind: Kind
    unit: str  # a key of _ITEMS
    length: int = 1

    @property
    def seconds(self):
        """The window's length in seconds."""
        return _ITEMS[self.unit](1, self.length).get_expiry()

    def ttl_at(self, now):
        """The TTL a first hit at ``now`` (epoch seconds) sets: whole seconds left until the
        window's next UTC boundary, so the window ends on it (within the second EXPIRE rounds to).

        Epoch seconds start at a UTC midnight, so every minute, hour and day boundary is a
        multiple of the window's length.
        """
        return self.seconds - int(now) % self.seconds

    def key(self, prefix, user_id, limit):
        """The window's Redis key, exactly as the ``limits`` library names it (``prefix``: its storage's)."""
        identifiers = [part.format(user_tag=user_tag(user_id)) for part in self.kind.identifiers]
        return f"{prefix}:{_ITEMS[self.unit](limit, self.length).key_for(*identifiers)}"


# Checked and counted in this order within each kind: the first full window refuses a request
# and the longer ones are not counted for it.
WINDOWS = (
    Window("requests_per_minute", REQUESTS, "minute"),
    Window("requests_per_hour", REQUESTS, "hour"),
    Window("requests_per_day", REQUESTS, "day"),
    Window("tokens_per_minute", TOKENS, "minute"),
    Window("tokens_per_hour", TOKENS, "hour"),
    Window("tokens_per_day", TOKENS, "day"),
)
REQUEST_WINDOWS = tuple(w for w in WINDOWS if w.kind is REQUESTS)
TOKEN_WINDOWS = tuple(w for w in WINDOWS if w.kind is TOKENS)
LIMIT_FIELDS = tuple(w.name for w in WINDOWS)


@dataclass(frozen=True)
class Period:
    """A calendar (UTC) period of the quotas: its part of the key, and how long the key outlives it.

    A user's quotas of one period are the fields of one hash: the hash exists once the period was
    seeded from Postgres (``quota_usage``), so its absence is how a flushed Redis is noticed.
    """

    name: str
    key_format: str
    ttl_seconds: int

    def key(self, user_id, now):
        """The user's quota hash for the period ``now`` falls in."""
        return QUOTA_KEY.format(user_tag=user_tag(user_id), period=now.strftime(self.key_format))

    def first_day(self, now):
        """The UTC day the period ``now`` falls in began (usage_daily_totals rows from there count)."""
        return date(now.year, now.month, now.day if self.name == "day" else 1)


PERIODS = {"day": Period("day", "%Y%m%d", 90000), "month": Period("month", "%Y%m", 32 * 86400)}
QUOTA_KEY = "gw:{user_tag}:quota:{period}"


@dataclass(frozen=True)
class Quota:
    """A calendar (UTC) counter with its plan's limit."""

    name: str  # the plans column
    kind: Kind
    period: str  # a key of PERIODS

    def key(self, user_id, now):
        """The user's hash of this period (the quota is its ``kind.quota_tag`` field)."""
        return PERIODS[self.period].key(user_id, now)

    @property
    def ttl_seconds(self):
        """How long the key is kept: past the end of its period, so the count is never cut short."""
        return PERIODS[self.period].ttl_seconds

    def seconds_left(self, now):
        """Seconds until the period ends and the quota starts again (the 429's Retry-After)."""
        if self.period == "day":
            return 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
        next_month = (now.replace(day=28) + (now.replace(day=28) - now.replace(day=1))).replace(day=1)
        return int((next_month.replace(hour=0, minute=0, second=0, microsecond=0) - now).total_seconds())


QUOTAS = (
    Quota("daily_request_quota", REQUESTS, "day"),
    Quota("monthly_request_quota", REQUESTS, "month"),
    Quota("daily_token_quota", TOKENS, "day"),
    Quota("monthly_token_quota", TOKENS, "month"),
)
QUOTA_FIELDS = tuple(q.name for q in QUOTAS)


def tenant(principal):
    """Whose request it is: an org key's org (its members' org keys share it), else the key's
    user. Its windows, quotas and concurrency count against the tenant (at the org's plan), and
    its response-cache entries answer only the tenant."""
    org_id = principal.get("org_id")
    return f"org{org_id}" if org_id else principal["user_id"]


@functools.lru_cache(maxsize=4096)
def window_keys(prefix, user_id, limits):
    """{window name: Redis key} for a user's windows at ``limits`` (values in WINDOWS order).

    The same every request until a limit changes, so built once.
    """
    return {w.name: w.key(prefix, user_id, limit) for w, limit in zip(WINDOWS, limits, strict=True)}


def quota_keys(user_id, now=None):
    """{quota name: Redis hash} for the periods ``now`` (default: this moment, UTC) falls in."""
    now = now or datetime.now(UTC)
    return {q.name: q.key(user_id, now) for q in QUOTAS}


QUOTA_PERIODS = tuple(PERIODS[name] for name in dict.fromkeys(q.period for q in QUOTAS))


def period_number(quota):
    """The 1-based place of the quota's period in QUOTA_PERIODS (how the Lua scripts find its hash)."""
    return QUOTA_PERIODS.index(PERIODS[quota.period]) + 1


def reading(limit, count, ttl, read_at):
    """A window as read from Redis (its count and TTL at ``read_at``): how much is left, and when it resets.

    A missing counter (TTL -2) or one without expiry (-1) has nothing used and resets now.
    """
    remaining = max(0, limit - int(count or 0))
    return {"limit": limit, "used": limit - remaining, "remaining": remaining, "reset_time": max(ttl, 0) + read_at}


def reset_seconds(reset_time, now):
    """Whole seconds from ``now`` until ``reset_time`` (epoch seconds), never negative."""
    return max(int(reset_time - now), 0)
