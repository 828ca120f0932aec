"""Security events for operators: filtered pages, recent counts, the suspicious-activity detector, the audit report.

The report reads audit and security rows through a server-side cursor on its own pooled
connection, REPORT_ITERSIZE rows at a time, so a year of events streams in flat memory.
"""

import csv
import io
import json

from flask import current_app

from ops_gateway.accounts import security
from ops_gateway.core import db

REPORT_ITERSIZE = 2000
REPORT_FLUSH_ROWS = 500
REPORT_COLUMNS = (
    "source",
    "id",
    "created_at",
    "type",
    "actor",
    "user_id",
    "api_key_id",
    "ip",
    "user_agent",
    "request_id",
    "count",
    "details",
)
HOURS_IN_BASELINE = 7 * 24

# Written so the planner merges the two (created_at, id) indexes in order instead of sorting the
# whole range before the first row: exactly matching column types, the range outside the union.
_REPORT = """
SELECT * FROM (
    SELECT 'audit'::text AS source, id, created_at, action AS type, actor, user_id, api_key_id, host(ip) AS ip,
           user_agent, request_id, 1 AS count, details
    FROM api_key_audit_logs
    UNION ALL
    SELECT 'security'::text, id, created_at, type, NULL::text, user_id, api_key_id, host(ip), NULL::text, NULL::text,
           count, details
    FROM security_events
) events
WHERE created_at >= %(start)s AND created_at <= %(end)s
ORDER BY created_at, id
"""

# Users far above their own hourly average of the previous 7 days (usage_daily_totals), not yet
# flagged this hour. Only users past the floors are looked up, so the current hour is the only
# stretch of usage_records read.
_SUSPICIOUS = """
WITH this_hour AS (
    SELECT user_id, count(*) AS requests, sum(cost) AS cost,
           'suspicious:' || user_id || ':' || to_char(date_trunc('hour', now()), 'YYYYMMDDHH24') AS dedupe_key
    FROM usage_records WHERE created_at >= date_trunc('hour', now())
    GROUP BY user_id
    HAVING count(*) > %(min_requests)s OR sum(cost) > %(min_cost)s
), baseline AS (
    SELECT t.user_id, sum(t.requests)::numeric / %(hours)s AS requests, sum(t.cost) / %(hours)s AS cost
    FROM usage_daily_totals t JOIN this_hour h ON h.user_id = t.user_id
    WHERE t.day >= (now() AT TIME ZONE 'UTC')::date - 7 AND t.day < (now() AT TIME ZONE 'UTC')::date
    GROUP BY t.user_id
)
SELECT h.user_id, h.requests, h.cost, h.dedupe_key,
       round(coalesce(b.requests, 0), 2) AS baseline_requests, round(coalesce(b.cost, 0), 6) AS baseline_cost
FROM this_hour h LEFT JOIN baseline b ON b.user_id = h.user_id
WHERE NOT EXISTS (SELECT 1 FROM security_events e WHERE e.dedupe_key = h.dedupe_key)
  AND (h.requests > greatest(%(factor)s * coalesce(b.requests, 0), %(min_requests)s)
       OR h.cost > greatest(%(factor)s * coalesce(b.cost, 0), %(min_cost)s))
"""


def query_events(cur, event_type=None, user_id=None, ip=None, start=None, end=None, limit=100, cursor=None):
    """A newest-first page of security events; each filter maps onto an index."""
    clauses, params = [], []
    for clause, value in (("type = %s", event_type), ("user_id = %s", user_id), ("ip = %s::inet", ip)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    if start is not None:
        clauses.append("created_at >= %s")
        params.append(start)
    if end is not None:
        clauses.append("created_at <= %s")
        params.append(end)
    if cursor is not None:
        clauses.append("(created_at, id) < (%s, %s)")
        params.extend(cursor)
    cur.execute(
        "SELECT id, type, user_id, api_key_id, host(ip) AS ip, details, count, created_at, last_seen_at"
        f" FROM security_events WHERE {' AND '.join(clauses) or 'TRUE'}"
        " ORDER BY created_at DESC, id DESC LIMIT %s",
        params + [limit],
    )
    return cur.fetchall()


def auth_failures_since(cur, minutes):
    """Failed authentications audited in the last ``minutes``."""
    cur.execute(
        "SELECT count(*) AS n FROM api_key_audit_logs"
        " WHERE action = 'auth_failure' AND created_at >= now() - make_interval(mins => %s)",
        (minutes,),
    )
    return cur.fetchone()["n"]


def rate_limit_rejections_since(cur, minutes):
    """429s for rate limits in the last ``minutes`` (events fold a key's repeats per minute into ``count``)."""
    cur.execute(
        "SELECT coalesce(sum(count), 0)::bigint AS n FROM security_events"
        " WHERE type = 'rate_limit_exceeded' AND created_at >= now() - make_interval(mins => %s)",
        (minutes,),
    )
    return cur.fetchone()["n"]


def detect_suspicious_activity():
    """Record one ``suspicious_activity`` event per user and hour whose usage is far above their baseline."""
    config = current_app.config
    params = {
        "factor": config["SUSPICIOUS_ACTIVITY_FACTOR"],
        "min_requests": config["SUSPICIOUS_MIN_REQUESTS_PER_HOUR"],
        "min_cost": config["SUSPICIOUS_MIN_COST_PER_HOUR"],
        "hours": HOURS_IN_BASELINE,
    }
    with db.transaction() as cur:
        cur.execute(_SUSPICIOUS, params)
        flagged = cur.fetchall()
        for row in flagged:
            details = {
                "requests_this_hour": row["requests"],
                "cost_this_hour": str(row["cost"]),
                "baseline_requests_per_hour": str(row["baseline_requests"]),
                "baseline_cost_per_hour": str(row["baseline_cost"]),
                "factor": params["factor"],
            }
            security.record_event(
                cur, "suspicious_activity", row["user_id"], details=details, dedupe_key=row["dedupe_key"]
            )
    return [row["user_id"] for row in flagged]


class AuditReport:
    """Every audit-log row and security event in [start, end], oldest first, from a server-side cursor."""

    def __init__(self, start, end):
        """Borrow a connection and open the cursor (so database errors surface before any byte is sent)."""
        self.start, self.end, self.count = start, end, 0
        self._database = db.get_database()
        self._conn = self._database.getconn()
        try:
            self._cursor = self._conn.cursor(name="audit_report")
            self._cursor.itersize = REPORT_ITERSIZE
            self._cursor.execute(_REPORT, {"start": start, "end": end})
        except BaseException:
            self.close()
            raise

    def rows(self):
        """The rows, counted as they go."""
        for row in self._cursor:
            self.count += 1
            yield row

    def close(self):
        """Give the connection back (the open transaction is rolled back); safe to call twice."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._database.putconn(conn, broken=conn.closed)


def _cell(value):
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return "" if value is None else value


def csv_chunks(report):
    """The report as CSV (header first), in chunks of REPORT_FLUSH_ROWS rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(REPORT_COLUMNS)
    for row in report.rows():
        writer.writerow([_cell(row[column]) for column in REPORT_COLUMNS])
        if report.count % REPORT_FLUSH_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _json_default(value):
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def json_chunks(report):
    """The report as one JSON document: its range, the ``records`` array, then ``total_records``."""
    head = {"status": "success", "start_date": report.start.isoformat(), "end_date": report.end.isoformat()}
    yield json.dumps(head)[:-1] + ', "records": ['
    batch, separator = [], ""
    for row in report.rows():
        batch.append(json.dumps({column: row[column] for column in REPORT_COLUMNS}, default=_json_default))
        if len(batch) == REPORT_FLUSH_ROWS:
            yield separator + ",".join(batch)
            batch, separator = [], ","
    if batch:
        yield separator + ",".join(batch)
    yield f'], "total_records": {report.count}}}'
