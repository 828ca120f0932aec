"""Security events for operators: filtered pages, recent counts, the suspicious-activity detector, the audit report.

The report reads audit and security rows through a server-side cursor on its own pooled
connection, REPORT_ITERSIZE rows at a time, so a year of events streams in flat memory.
"""

import csv
import io
import json

from flask import current_app

from ops_gateway.core import db
from ops_gateway.core.csv_cells import csv_cell
from ops_gateway.limits import security
from ops_gateway.observability import queries

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


def query_events(cur, event_type=None, user_id=None, ip=None, start=None, end=None, limit=100, cursor=None):
    """A newest-first page of security events; each filter maps onto an index."""
    return queries.security_events_page(cur, event_type, user_id, ip, start, end, limit, cursor)


def auth_failures_since(cur, minutes):
    """Failed authentications audited in the last ``minutes``."""
    return queries.auth_failures_since(cur, minutes)


def rate_limit_rejections_since(cur, minutes):
    """429s for rate limits in the last ``minutes``."""
    return queries.rate_limit_rejections_since(cur, minutes)


def detect_suspicious_activity():
    """Record one ``suspicious_activity`` event per user and hour whose usage is far above their baseline."""
    config = current_app.config
    factor = config["SUSPICIOUS_ACTIVITY_FACTOR"]
    with db.transaction() as cur:
        flagged = queries.suspicious_users(
            cur,
            factor,
            config["SUSPICIOUS_MIN_REQUESTS_PER_HOUR"],
            config["SUSPICIOUS_MIN_COST_PER_HOUR"],
            HOURS_IN_BASELINE,
        )
        for row in flagged:
            details = {
                "requests_this_hour": row["requests"],
                "cost_this_hour": str(row["cost"]),
                "baseline_requests_per_hour": str(row["baseline_requests"]),
                "baseline_cost_per_hour": str(row["baseline_cost"]),
                "factor": factor,
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
            queries.start_audit_report(self._cursor, start, end)
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


def csv_chunks(report):
    """The report as CSV (header first, formulas defused), in chunks of REPORT_FLUSH_ROWS rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(REPORT_COLUMNS)
    for row in report.rows():
        writer.writerow([csv_cell(row[column]) for column in REPORT_COLUMNS])
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
