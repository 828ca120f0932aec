"""The API-key audit trail: rows written in the caller's transaction, queried with cursors and exact totals."""

import base64
import json
from datetime import UTC, date, datetime, timedelta

from flask import g, has_request_context, request
from psycopg2.extras import Json

ACTIONS = (
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
    "rate_limit_exceeded",
)


def request_context():
    """ip, user agent and request id of the current request (empty outside one)."""
    if not has_request_context():
        return {"ip": None, "user_agent": None, "request_id": None}
    return {
        "ip": request.remote_addr,
        "user_agent": (request.user_agent.string or None) and request.user_agent.string[:300],
        "request_id": g.get("request_id"),
    }


def record(cur, action, actor, user_id=None, api_key_id=None, details=None):
    """Insert one audit row using the caller's cursor (so it commits or rolls back with the change)."""
    context = request_context()
    cur.execute(
        "INSERT INTO api_key_audit_logs (user_id, api_key_id, action, actor, ip, user_agent, request_id, details)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            user_id,
            api_key_id,
            action,
            actor,
            context["ip"],
            context["user_agent"],
            context["request_id"],
            Json(details or {}),
        ),
    )


def encode_cursor(row):
    """Opaque cursor of the last row returned: its (created_at, id)."""
    raw = json.dumps([row["created_at"].isoformat(), row["id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor):
    """(created_at, id) from a cursor; ValueError when it was not made by encode_cursor."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created_at), int(row_id)
    except (ValueError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc


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


def _midnight(day):
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _conditions(filters, start=None, end=None, end_inclusive=True):
    """SQL conditions and parameters: equality for each given filter, then the created_at bounds."""
    clauses = [f"{column} = %s" for column, value in filters.items() if value is not None]
    params = [value for value in filters.values() if value is not None]
    if start is not None:
        clauses.append("created_at >= %s")
        params.append(start)
    if end is not None:
        clauses.append("created_at <= %s" if end_inclusive else "created_at < %s")
        params.append(end)
    return " AND ".join(clauses) or "TRUE", params


def _row_count(filters, start, end, end_inclusive=True):
    where, params = _conditions(filters, start, end, end_inclusive)
    return f"(SELECT count(*) FROM api_key_audit_logs WHERE {where})", params


def _counted_days(filters, first, stop):
    """Sum of the counters (sql/0007) of the days in [first, stop) for these filters."""
    table = "audit_log_daily_counts"
    if filters["user_id"] is not None or filters["api_key_id"] is not None:
        table = "audit_log_key_counts"
    where, params = _conditions(filters)
    for clause, day in (("day >= %s", first), ("day < %s", stop)):
        if day is not None:
            where += f" AND {clause}"
            params.append(day)
    return f"(SELECT coalesce(sum(n), 0) FROM {table} WHERE {where})", params


def count_logs(cur, user_id=None, key_id=None, action=None, start=None, end=None):
    """Exact number of audit rows matching the filters: counters for whole UTC days, rows for the rest.

    Only the partial first and last days of [start, end] are counted row by row (an index range
    each), so the cost follows the number of days, not the number of matching rows.
    """
    filters = {"user_id": user_id, "api_key_id": key_id, "action": action}
    days = _whole_days(start, end)
    if days is None:  # the range lies within two partial days: count its rows
        parts = [_row_count(filters, start, end)]
    else:
        first, stop = days
        parts = [_counted_days(filters, first, stop)]
        if start is not None and start < _midnight(first):
            parts.append(_row_count(filters, start, _midnight(first), end_inclusive=False))
        if end is not None:
            parts.append(_row_count(filters, _midnight(stop), end))
    total = " + ".join(subquery for subquery, _ in parts)
    cur.execute(f"SELECT ({total})::bigint AS total", [value for _, params in parts for value in params])
    return cur.fetchone()["total"]


def query_logs(cur, user_id=None, key_id=None, action=None, start=None, end=None, limit=100, cursor=None, count=True):
    """(exact total matching, newest-first page): every filter maps onto an index; ``count=False`` skips the total."""
    total = count_logs(cur, user_id, key_id, action, start, end) if count else None
    where, params = _conditions({"user_id": user_id, "api_key_id": key_id, "action": action}, start, end)
    if cursor is not None:
        where += " AND (created_at, id) < (%s, %s)"
        params += list(cursor)
    cur.execute(
        "SELECT id, user_id, api_key_id, action, actor, host(ip) AS ip, user_agent, request_id, details, created_at"
        f" FROM api_key_audit_logs WHERE {where}"
        " ORDER BY created_at DESC, id DESC LIMIT %s",
        params + [limit],
    )
    return total, cur.fetchall()
