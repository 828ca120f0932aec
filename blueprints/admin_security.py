"""/admin/security-events and /admin/reports/audit: security events and the streamed audit report."""

from datetime import UTC

from flask import Response
from flask_smorest import Blueprint

from blueprints import paging
from blueprints.audit_schemas import AuditReportArgsSchema, SecurityEventArgsSchema, SecurityEventPageSchema
from blueprints.docs import ADMIN_ERRORS, documents_errors
from blueprints.guards import admin_only
from blueprints.query_args import date_range, page_cursor
from ops_gateway.core import db
from ops_gateway.core.addresses import canonical_ip
from ops_gateway.observability import security_events

blp = Blueprint(
    "admin_security",
    __name__,
    url_prefix="/admin",
    description="Security events (blocks, new key IPs, rate-limit breaches) and audit reports (admin key)",
)
admin_only(blp)

REPORT_FORMATS = {
    "csv": ("text/csv; charset=utf-8", security_events.csv_chunks),
    "json": ("application/json", security_events.json_chunks),
}


@blp.route("/security-events")
@blp.arguments(SecurityEventArgsSchema, location="query")
@blp.response(200, SecurityEventPageSchema)
@documents_errors(blp, *ADMIN_ERRORS, 400, 422)
def security_event_list(args):
    """Security events, newest first, filtered by type, user, IP and date range (cursor pagination)."""
    start, end = date_range(args)
    cursor = page_cursor(args)
    ip = canonical_ip(str(args["ip"])) if args.get("ip") else None  # events are recorded in this spelling
    with db.transaction() as cur:
        rows = security_events.query_events(
            cur, args.get("type"), args.get("user_id"), ip, start, end, args["limit"], cursor
        )
    return {"status": "success", "events": rows, "next_cursor": paging.next_cursor(rows, args["limit"])}


@blp.route("/reports/audit")
@blp.arguments(AuditReportArgsSchema, location="query")
@blp.doc(
    responses={
        "200": {
            "description": "Every audit-log row and security event in the range, oldest first, streamed",
            "content": {"application/json": {"schema": {"type": "object"}}, "text/csv": {"schema": {"type": "string"}}},
        }
    }
)
@documents_errors(blp, *ADMIN_ERRORS, 400, 422)
def audit_report(args):
    """Stream every audit and security event between start_date and end_date as CSV or JSON."""
    start, end = date_range(args)
    mimetype, chunks = REPORT_FORMATS[args["format"]]
    report = security_events.AuditReport(start, end)
    response = Response(chunks(report), content_type=mimetype)
    response.call_on_close(report.close)
    filename = f"audit-{start.astimezone(UTC):%Y%m%dT%H%M%SZ}-{end.astimezone(UTC):%Y%m%dT%H%M%SZ}.{args['format']}"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
