"""The API-key audit trail: rows written in the caller's transaction, queried with cursors."""

import base64
import json
from datetime import datetime

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


def query_logs(cur, user_id=None, key_id=None, action=None, start=None, end=None, limit=100, cursor=None, count=True):
    """(total matching, newest-first page) — every filter maps onto an index; ``count=False`` skips the total (None)."""
    clauses, params = [], []
    for column, value in (("user_id", user_id), ("api_key_id", key_id), ("action", action)):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    if start is not None:
        clauses.append("created_at >= %s")
        params.append(start)
    if end is not None:
        clauses.append("created_at <= %s")
        params.append(end)
    where = " AND ".join(clauses) or "TRUE"
    total = None
    if count:  # a count visits every matching row; pages that only browse skip it
        cur.execute(f"SELECT count(*) AS total FROM api_key_audit_logs WHERE {where}", params)
        total = cur.fetchone()["total"]
    page_clause, page_params = "", []
    if cursor is not None:
        page_clause = " AND (created_at, id) < (%s, %s)"
        page_params = list(cursor)
    cur.execute(
        "SELECT id, user_id, api_key_id, action, actor, host(ip) AS ip, user_agent, request_id, details, created_at"
        f" FROM api_key_audit_logs WHERE {where}{page_clause}"
        " ORDER BY created_at DESC, id DESC LIMIT %s",
        params + page_params + [limit],
    )
    return total, cur.fetchall()
