"""The telemetry floor's audit SQL: ``api_key_audit_logs`` rows and the day counters of sql/0007.

Plain functions taking the cursor first and returning rows as dicts.
"""

from psycopg2.extras import Json

from ops_gateway.core.sql_where import Where

AUDIT_COLUMNS = "id, user_id, api_key_id, action, actor, host(ip) AS ip, user_agent, request_id, details, created_at"

_INSERT_AUDIT = (
    "INSERT INTO api_key_audit_logs (user_id, api_key_id, action, actor, ip, user_agent, request_id, details)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
# The same row as a statement of its own that commits without waiting for the WAL flush.
_INSERT_AUDIT_UNFLUSHED = (
    "INSERT INTO api_key_audit_logs (user_id, api_key_id, action, actor, ip, user_agent, request_id, details)"
    " SELECT %s, %s, %s, %s, %s, %s, %s, %s FROM (SELECT set_config('synchronous_commit', 'off', true)) AS c"
)


def insert_audit_row(cur, user_id, api_key_id, action, actor, ip, user_agent, request_id, details, flushed=True):
    """One api_key_audit_logs row; ``flushed=False``: its commit does not wait for the WAL flush."""
    statement = _INSERT_AUDIT if flushed else _INSERT_AUDIT_UNFLUSHED
    cur.execute(statement, (user_id, api_key_id, action, actor, ip, user_agent, request_id, Json(details)))


def audit_page(cur, filters, start=None, end=None, limit=100, cursor=None):
    """A newest-first page of audit rows: ``filters`` (user_id, api_key_id, action) equal, created_at in range."""
    where = Where().equal_all(filters).between("created_at", start, end).older_than_cursor(cursor)
    cur.execute(
        f"SELECT {AUDIT_COLUMNS} FROM api_key_audit_logs WHERE {where.sql} ORDER BY created_at DESC, id DESC LIMIT %s",
        where.params + [limit],
    )
    return cur.fetchall()


def count_audit_rows(cur, filters, counted_days, row_ranges):
    """Audit rows matching ``filters``: the day counters of sql/0007 for ``counted_days`` ((first, stop), a
    half-open range of UTC days, or None) plus the rows of each (start, end, end_inclusive) range; one statement."""
    parts = []
    if counted_days is not None:
        first, stop = counted_days
        by_key = filters["user_id"] is not None or filters["api_key_id"] is not None
        table = "audit_log_key_counts" if by_key else "audit_log_daily_counts"
        where = Where().equal_all(filters).at_or_after("day", first).before("day", stop, inclusive=False)
        parts.append((f"(SELECT coalesce(sum(n), 0) FROM {table} WHERE {where.sql})", where.params))
    for start, end, end_inclusive in row_ranges:
        where = Where().equal_all(filters).between("created_at", start, end, end_inclusive)
        parts.append((f"(SELECT count(*) FROM api_key_audit_logs WHERE {where.sql})", where.params))
    total = " + ".join(subquery for subquery, _ in parts)
    cur.execute(f"SELECT ({total})::bigint AS total", [value for _, params in parts for value in params])
    return cur.fetchone()["total"]
