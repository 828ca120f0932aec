"""The rate-limit windows and quotas, declared once; everything else is derived from this list.

A window is a fixed window counted in Redis as the ``limits`` library counts it (the first hit
sets the TTL; the key carries the limit, so a changed limit starts a fresh counter). Its name is
also its column in ``plans`` and ``rate_limit_overrides``, its field in the admin and monitor
schemas and its key in responses. Quotas are calendar (UTC) counters taken from the plan only.
Adding a window: one ``Window`` below and one migration adding its two columns.

Nothing here touches Redis, Flask or the database: the arithmetic is testable on its own.
"""

import functools
from dataclasses import dataclass
from datetime import UTC, datetime

from limits import (
    RateLimitItemPerDay,
    RateLimitItemPerHour,
    RateLimitItemPerMinute,
    RateLimitItemPerMonth,
    RateLimitItemPerSecond,
    RateLimitItemPerYear,
)

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
    identifiers: tuple[str, ...]  # the window key's identifiers (``{user_id}`` filled in)
    quota_tag: str  # the kind's part of a quota key

    def quota_increment(self, tokens):
        """How much one finished completion adds to a quota of this kind."""
        return tokens if self.name == "tokens" else 1


REQUESTS = Kind(
    "requests",
    ("X-RateLimit-Limit-Requests", "X-RateLimit-Remaining-Requests", "X-RateLimit-Reset-Requests"),
    ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"),
    # One budget for every /v1 route: the user and the "v1" scope name its keys.
    ("user:{user_id}", "v1"),
    "req",
)
TOKENS = Kind(
    "tokens",
    ("X-RateLimit-Limit-Tokens", "X-RateLimit-Remaining-Tokens", "X-RateLimit-Reset-Tokens"),
    None,
    ("tokens", "{user_id}"),
    "tok",
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
        """The window's length in seconds: the TTL its first hit sets."""
        return _ITEMS[self.unit](1, self.length).get_expiry()

    def key(self, prefix, user_id, limit):
        """The window's Redis key, exactly as the ``limits`` library names it (``prefix``: its storage's)."""
        identifiers = [part.format(user_id=user_id) for part in self.kind.identifiers]
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
    """A calendar period of the quotas: its part of the key, and how long the key outlives it."""

    key_format: str
    ttl_seconds: int


PERIODS = {"day": Period("%Y%m%d", 90000), "month": Period("%Y%m", 32 * 86400)}
QUOTA_KEY = "gw:quota:{user_id}:{tag}:{period}"


@dataclass(frozen=True)
class Quota:
    """A calendar (UTC) counter with its plan's limit."""

    name: str  # the plans column
    kind: Kind
    period: str  # a key of PERIODS

    def key(self, user_id, now):
        """This period's Redis key for the user."""
        period = now.strftime(PERIODS[self.period].key_format)
        return QUOTA_KEY.format(user_id=user_id, tag=self.kind.quota_tag, period=period)

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


@functools.lru_cache(maxsize=4096)
def window_keys(prefix, user_id, limits):
    """{window name: Redis key} for a user's windows at ``limits`` (values in WINDOWS order).

    The same every request until a limit changes, so built once.
    """
    return {w.name: w.key(prefix, user_id, limit) for w, limit in zip(WINDOWS, limits, strict=True)}


def quota_keys(user_id, now=None):
    """{quota name: Redis key} for the periods ``now`` (default: this moment, UTC) falls in."""
    now = now or datetime.now(UTC)
    return {q.name: q.key(user_id, now) for q in QUOTAS}


def reading(limit, count, ttl, read_at):
    """A window as read from Redis (its count and TTL at ``read_at``): how much is left, and when it resets.

    A missing counter (TTL -2) or one without expiry (-1) has nothing used and resets now.
    """
    remaining = max(0, limit - int(count or 0))
    return {"limit": limit, "used": limit - remaining, "remaining": remaining, "reset_time": max(ttl, 0) + read_at}


def reset_seconds(reset_time, now):
    """Whole seconds from ``now`` until ``reset_time`` (epoch seconds), never negative."""
    return max(int(reset_time - now), 0)
