"""/dashboard/audit: the audit log and the security events, filtered, paged, and exported as CSV."""

import csv
import io
from datetime import UTC, datetime

from flask import Blueprint, Response, render_template, request, stream_with_context

from blueprints import paging
from blueprints.dashboard import protect
from blueprints.envelope import ApiError
from blueprints.query_args import whole_number
from blueprints.timeparse import parse_timestamp
from ops_gateway.core import db
from ops_gateway.core.addresses import canonical_ip
from ops_gateway.core.csv_cells import csv_cell
from ops_gateway.core.errors import GatewayError
from ops_gateway.limits import security
from ops_gateway.observability import security_events
from ops_gateway.telemetry import audit

blp = Blueprint("dashboard_audit", __name__, url_prefix="/dashboard/audit", template_folder="templates")
protect(blp)

PAGE_SIZE = 50
EXPORT_BATCH = 1000
EXPORT_MAX_ROWS = 100_000
COLUMNS = {
    "audit": (
        "id",
        "created_at",
        "action",
        "actor",
        "user_id",
        "api_key_id",
        "ip",
        "user_agent",
        "request_id",
        "details",
    ),
    "security": ("id", "created_at", "last_seen_at", "type", "count", "user_id", "api_key_id", "ip", "details"),
}


def _filters(args):
    """(view, filters, problem): the query string checked; a bad value becomes a message, not a 400 page."""
    view = "security" if args.get("view") == "security" else "audit"
    filters = {
        "user_id": None,
        "key_id": None,
        "action": None,
        "type": None,
        "ip": None,
        "start": None,
        "end": None,
        "cursor": None,
    }
    problem = None
    try:
        for name in ("user_id", "key_id"):
            raw = args.get(name, "").strip()
            if raw:
                if (number := whole_number(raw)) is None:
                    raise ApiError(400, "invalid_filter", f"{name.replace('_', ' ')} must be a number")
                filters[name] = number
        filters["action"] = args.get("action") if args.get("action") in audit.ACTIONS else None
        filters["type"] = args.get("type") if args.get("type") in security.EVENT_TYPES else None
        if args.get("ip", "").strip():
            filters["ip"] = canonical_ip(args["ip"].strip())  # the spelling rows are recorded in
            if filters["ip"] is None:
                raise ApiError(400, "invalid_filter", "IP must be an IPv4 or IPv6 address")
        for name in ("start", "end"):
            if args.get(name, "").strip():
                filters[name] = parse_timestamp(args[name], name)
        if args.get("cursor"):
            try:
                filters["cursor"] = paging.decode_cursor(args["cursor"])
            except ValueError:
                raise ApiError(400, "invalid_cursor", "that page link is not valid any more") from None
    except GatewayError as error:
        problem = error.message
    return view, filters, problem


def _page(cur, view, filters, limit, cursor):
    """One newest-first page of the chosen log."""
    if view == "security":
        return security_events.query_events(
            cur, filters["type"], filters["user_id"], filters["ip"], filters["start"], filters["end"], limit, cursor
        )
    _, rows = audit.query_logs(
        cur,
        filters["user_id"],
        filters["key_id"],
        filters["action"],
        filters["start"],
        filters["end"],
        limit,
        cursor,
        count=False,
    )
    return rows


@blp.route("")
def index():
    """The audit log (or, with view=security, the security events), newest first, 50 at a time."""
    view, filters, problem = _filters(request.args)
    rows = []
    if problem is None:
        with db.transaction() as cur:
            rows = _page(cur, view, filters, PAGE_SIZE, filters["cursor"])
    next_cursor = paging.next_cursor(rows, PAGE_SIZE)
    kept = {k: v for k, v in request.args.items() if k != "cursor" and v}
    return render_template(
        "dashboard/audit.html",
        view=view,
        rows=rows,
        args=kept,
        problem=problem,
        next_cursor=next_cursor,
        actions=audit.ACTIONS,
        event_types=security.EVENT_TYPES,
    )


def _csv_rows(view, filters):
    """The header, then every matching row newest first (up to EXPORT_MAX_ROWS), a batch at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS[view])
    cursor, written = None, 0
    while written < EXPORT_MAX_ROWS:
        with db.transaction() as cur:
            rows = _page(cur, view, filters, min(EXPORT_BATCH, EXPORT_MAX_ROWS - written), cursor)
        for row in rows:
            writer.writerow([csv_cell(row[column]) for column in COLUMNS[view]])
        written += len(rows)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < EXPORT_BATCH:
            break
        cursor = (rows[-1]["created_at"], rows[-1]["id"])


@blp.route("/export.csv")
def export_csv():
    """The filtered log as CSV, newest first (at most EXPORT_MAX_ROWS rows; narrow the dates for more)."""
    view, filters, problem = _filters(request.args)
    if problem:
        raise ApiError(400, "invalid_filter", problem)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    response = Response(stream_with_context(_csv_rows(view, filters)), content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{view}-log-{stamp}.csv"'
    return response
