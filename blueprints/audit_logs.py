"""Audit logs: the caller's own (/user/api-keys/audit-logs) and everyone's (/admin/audit-logs)."""

from flask import g
from flask_smorest import Blueprint

from blueprints import paging
from blueprints.audit_schemas import AdminAuditLogArgsSchema, AuditLogArgsSchema, AuditLogPageSchema
from blueprints.docs import ADMIN_ERRORS, USER_ERRORS, documents_errors
from blueprints.guards import admin_only, require_scope, require_user
from blueprints.query_args import date_range, page_cursor
from ops_gateway.core import db
from ops_gateway.telemetry import audit

user_blp = Blueprint(
    "user_audit",
    __name__,
    url_prefix="/user/api-keys",
    description="Who did what to your account and API keys, newest first",
)
user_blp.before_request(require_user)
admin_blp = Blueprint(
    "admin_audit",
    __name__,
    url_prefix="/admin",
    description="The audit trail of every user, key and admin action, filterable (admin key)",
)
admin_only(admin_blp)


def _page(args, user_id):
    start, end = date_range(args)
    cursor = page_cursor(args)
    with db.transaction() as cur:
        total, rows = audit.query_logs(
            cur, user_id, args.get("key_id"), args.get("action"), start, end, args["limit"], cursor
        )
    next_cursor = paging.next_cursor(rows, args["limit"])
    return {"status": "success", "total_logs": total, "logs": rows, "next_cursor": next_cursor}


@user_blp.route("/audit-logs")
@user_blp.arguments(AuditLogArgsSchema, location="query")
@user_blp.response(200, AuditLogPageSchema)
@documents_errors(user_blp, *USER_ERRORS, 400, 422)
def user_audit_logs(args):
    """Your own audit entries, newest first, filtered by key, action and date range (keys:manage scope)."""
    require_scope("keys:manage")
    return _page(args, g.user["user_id"])


@admin_blp.route("/audit-logs")
@admin_blp.arguments(AdminAuditLogArgsSchema, location="query")
@admin_blp.response(200, AuditLogPageSchema)
@documents_errors(admin_blp, *ADMIN_ERRORS, 400, 422)
def admin_audit_logs(args):
    """Every user's audit entries, newest first, with an optional user_id filter."""
    return _page(args, args.get("user_id"))
