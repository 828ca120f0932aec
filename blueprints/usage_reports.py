"""Spend reports: everyone's (/admin/reports/usage, JSON or CSV) and the caller's own (/user/usage)."""

from flask import Response, g
from flask_smorest import Blueprint

from blueprints import paging
from blueprints.docs import ADMIN_ERRORS, USER_ERRORS, documents_errors
from blueprints.guards import admin_only, require_scope, require_user
from blueprints.query_args import page_cursor
from blueprints.usage_report_schemas import (
    UsageReportArgsSchema,
    UsageReportSchema,
    UserUsageArgsSchema,
    UserUsageSchema,
)
from ops_gateway.core import db
from ops_gateway.observability import spend_reports

admin_blp = Blueprint("admin_reports", __name__, url_prefix="/admin/reports", description="Spend reports (admin)")
admin_only(admin_blp)
user_blp = Blueprint("user_usage", __name__, url_prefix="/user", description="Your usage and spend")
user_blp.before_request(require_user)
# A CSV has no field for it, so the export says how fresh it is here.
ROLLED_UP_AT_HEADER = "X-Report-Rolled-Up-At"
# How a report answered by ``report_in_format`` is documented: JSON, or CSV with its freshness header.
REPORT_IN_FORMAT = {
    "description": "The groups as JSON, or as CSV (format=csv: the dimensions' columns, then the sums)",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/UsageReport"}},
        "text/csv": {"schema": {"type": "string"}},
    },
    "headers": {
        ROLLED_UP_AT_HEADER: {
            "description": "CSV only: the report's rolled_up_at (ISO 8601); absent: never rolled up",
            "schema": {"type": "string", "format": "date-time"},
        }
    },
}


@admin_blp.route("/usage")
@admin_blp.arguments(UsageReportArgsSchema, location="query")
@admin_blp.response(200, UsageReportSchema)
@admin_blp.doc(responses={"200": REPORT_IN_FORMAT})
@documents_errors(admin_blp, *ADMIN_ERRORS, 400, 422)
def usage_report(args):
    """Usage and spend grouped by user, key, model, endpoint, day and/or tag over whole UTC days, as JSON or CSV.

    Read from rollups that count the requests made before ``rolled_up_at`` (the last usage_rollup
    run, every few minutes). ``fresh=true`` adds the later ones from the usage records; it refuses
    (400 ``fresh_span_too_long``) rather than cap when that part of the range is more than 24 hours,
    since a capped report would look complete: end the range earlier or run the rollup first.
    """
    group_by = spend_reports.parse_group_by(args["group_by"])
    first, last = spend_reports.report_days(args.get("start_date"), args.get("end_date"))
    with db.transaction() as cur:
        report = spend_reports.usage_report(
            cur, group_by, first, last, endpoint=args.get("endpoint"), fresh=args["fresh"]
        )
    return report_in_format(report, args["format"], f"usage-{first}-{last}.csv")


def report_in_format(report, format_name, filename):
    """The report as it is (JSON through the view's schema) or as a CSV attachment named ``filename``
    that says how fresh it is in ROLLED_UP_AT_HEADER."""
    if format_name == "json":
        return report
    response = Response(spend_reports.report_csv(report), content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    if report["rolled_up_at"] is not None:
        response.headers[ROLLED_UP_AT_HEADER] = report["rolled_up_at"].isoformat()
    return response


@user_blp.route("/usage")
@user_blp.arguments(UserUsageArgsSchema, location="query")
@user_blp.response(200, UserUsageSchema)
@documents_errors(user_blp, *USER_ERRORS, 400, 422)
def user_usage(args):
    """Your usage grouped by key, model, endpoint, day and/or tag, and your requests (cost, tokens, latency,
    status), paged; ``fresh=true`` adds the usage not rolled up yet, as in /admin/reports/usage."""
    require_scope("usage:read")
    group_by = spend_reports.parse_group_by(args["group_by"], ("key", "model", "endpoint", "day", "tag"))
    first, last = spend_reports.report_days(args.get("start_date"), args.get("end_date"))
    user_id, limit, endpoint = g.user["user_id"], args["limit"], args.get("endpoint")
    with db.transaction() as cur:
        report = spend_reports.usage_report(cur, group_by, first, last, user_id, endpoint, args["fresh"])
        requests = spend_reports.last_requests(cur, user_id, first, last, limit, page_cursor(args), endpoint)
    return {**report, "requests": requests, "next_cursor": paging.next_cursor(requests, limit)}
