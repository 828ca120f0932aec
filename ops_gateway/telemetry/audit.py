"""The API-key audit trail: rows written in the caller's transaction, read newest first with exact totals."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ops_gateway.telemetry import audit_queries

ACTIONS = (  # every action ``record`` writes, so the dashboard can filter by each
    "create",
    "update",
    "rotate",
    "delete",
    "auth_failure",
    "ip_blocked",
    "credits_adjusted",
    "user_created",
    "user_updated",
    "limits_updated",
    "budget_threshold",
    "grant_refused",
    "org_created",
    "org_updated",
    "org_credits_adjusted",
    "org_member_added",
    "org_member_updated",
    "org_member_removed",
)
USER_AGENT_MAX = 300


@dataclass(frozen=True)
class Origin:
    """Where a change came from: the client's address and user agent, and the request id."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


NO_ORIGIN = Origin()  # a change made outside any request: the scheduler, the CLI
_origin_provider = None


def use_origin_provider(provider):
    """Set how to find the current request's Origin when a caller passes none (the HTTP layer does)."""
    global _origin_provider
    _origin_provider = provider


def record(cur, action, actor, user_id=None, api_key_id=None, details=None, origin=None, flushed=True):
    """Insert one audit row using the caller's cursor (so it commits or rolls back with the change).

    ``origin`` defaults to the current request's, as the HTTP layer reports it. ``flushed=False``
    (a statement of its own): its commit does not wait for the WAL flush.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}: add it to audit.ACTIONS")
    if origin is None:
        origin = _origin_provider() if _origin_provider else NO_ORIGIN
    user_agent = origin.user_agent[:USER_AGENT_MAX] if origin.user_agent else None
    audit_queries.insert_audit_row(
        cur, user_id, api_key_id, action, actor, origin.ip, user_agent, origin.request_id, details or {}, flushed
    )


def _midnight(day):
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _whole_days(start, end):
    """[first, stop): the UTC days lying wholly inside [start, end], or None when there is none.

    A missing bound stays None (open). The days' rows are in the counter tables of sql/0007.
    """
    first = stop = None
    if start is not None:
        first = start.astimezone(UTC).date()
        if start > _midnight(first):
            if first == date.max:
                return None  # no later day exists (in Python) to start from
            first += timedelta(days=1)
    if end is not None:
        stop = end.astimezone(UTC).date()
    if first is not None and stop is not None and first >= stop:
        return None
    return first, stop


def count_logs(cur, user_id=None, key_id=None, action=None, start=None, end=None):
    """Exact number of audit rows matching the filters: counters for whole UTC days, rows for the rest.

    Only the partial first and last days of [start, end] are counted row by row (an index range
    each), so the cost follows the number of days, not the number of matching rows.
    """
    filters = {"user_id": user_id, "api_key_id": key_id, "action": action}
    days = _whole_days(start, end)
    if days is None:  # the range lies within two partial days: count its rows
        return audit_queries.count_audit_rows(cur, filters, None, [(start, end, True)])
    first, stop = days
    row_ranges = []
    if start is not None and start < _midnight(first):
        row_ranges.append((start, _midnight(first), False))
    if end is not None:
        row_ranges.append((_midnight(stop), end, True))
    return audit_queries.count_audit_rows(cur, filters, days, row_ranges)


def query_logs(cur, user_id=None, key_id=None, action=None, start=None, end=None, limit=100, cursor=None, count=True):
    """(exact total matching, newest-first page): every filter maps onto an index; ``count=False`` skips the total."""
    total = count_logs(cur, user_id, key_id, action, start, end) if count else None
    filters = {"user_id": user_id, "api_key_id": key_id, "action": action}
    return total, audit_queries.audit_page(cur, filters, start, end, limit, cursor)
