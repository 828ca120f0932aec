"""The request log: everyone's (/admin/requests) and the caller's own (/user/requests)."""

from flask import g
from flask_smorest import Blueprint

from blueprints import paging
from blueprints.docs import ADMIN_ERRORS, USER_ERRORS, documents_errors
from blueprints.guards import admin_only, require_scope, require_user
from blueprints.query_args import date_range, page_cursor
from blueprints.request_log_schemas import (
    AdminRequestLogArgsSchema,
    RequestDetailSchema,
    RequestLogArgsSchema,
    RequestLogPageSchema,
)
from ops_gateway.core import db
from ops_gateway.core.addresses import canonical_ip
from ops_gateway.observability import request_log

admin_blp = Blueprint(
    "admin_requests", __name__, url_prefix="/admin/requests", description="Every settled /v1 request (admin)"
)
admin_only(admin_blp)
user_blp = Blueprint("user_requests", __name__, url_prefix="/user/requests", description="Your settled /v1 requests")
user_blp.before_request(require_user)
_FIELDS = ("key_id", "model", "endpoint", "status", "tag", "min_latency_ms")


def request_page(args, user_id=None):
    """A page of the log for validated query ``args`` (``user_id``: one user's only); the dashboard's too."""
    start, end = date_range(args)
    filters = {name: args.get(name) for name in _FIELDS}
    filters.update(start=start, end=end, ip=canonical_ip(args["ip"]) if args.get("ip") else None)
    filters.update(user_id=user_id if user_id is not None else args.get("user_id"), org_id=args.get("org_id"))
    cursor, limit = page_cursor(args), args["limit"]
    with db.transaction() as cur:
        rows = request_log.entries(cur, filters, limit, cursor)
    return {"requests": rows, "next_cursor": paging.next_cursor(rows, limit)}


@admin_blp.route("")
@admin_blp.arguments(AdminRequestLogArgsSchema, location="query")
@admin_blp.response(200, RequestLogPageSchema)
@documents_errors(admin_blp, *ADMIN_ERRORS, 400, 422)
def admin_requests(args):
    """Settled requests, newest first, filtered by user, org, key, model, endpoint, status, tag, IP,
    minimum latency and time range; paged with limit/cursor."""
    return request_page(args)


@admin_blp.route("/<request_id>")
@admin_blp.response(200, RequestDetailSchema)
@documents_errors(admin_blp, *ADMIN_ERRORS, 404)
def admin_request(request_id):
    """The newest request sent with this X-Request-ID."""
    with db.transaction() as cur:
        return request_log.entry(cur, request_id)


@user_blp.route("")
@user_blp.arguments(RequestLogArgsSchema, location="query")
@user_blp.response(200, RequestLogPageSchema)
@documents_errors(user_blp, *USER_ERRORS, 400, 422)
def user_requests(args):
    """Your settled requests (every key of yours, org keys included), newest first; usage:read scope."""
    require_scope("usage:read")
    return request_page(args, g.user["user_id"])


@user_blp.route("/<request_id>")
@user_blp.response(200, RequestDetailSchema)
@documents_errors(user_blp, *USER_ERRORS, 404)
def user_request(request_id):
    """Your newest request sent with this X-Request-ID (another user's is a 404)."""
    require_scope("usage:read")
    with db.transaction() as cur:
        return request_log.entry(cur, request_id, g.user["user_id"])
