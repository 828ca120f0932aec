"""/user/monitor (the caller's usage and limits) and /admin/monitor (the whole gateway at a glance)."""

from flask import g
from flask_smorest import Blueprint

from blueprints.docs import ADMIN_ERRORS, USER_ERRORS, documents_errors
from blueprints.guards import admin_only, require_scope, require_user
from blueprints.monitor_schemas import AdminMonitorSchema, AlertListArgsSchema, AlertListSchema, UserMonitorSchema
from ops_gateway.core import db
from ops_gateway.observability import monitor_documents, system_state

user_blp = Blueprint(
    "user_monitor", __name__, url_prefix="/user", description="Your current usage against your rate limits and quotas"
)
user_blp.before_request(require_user)
admin_blp = Blueprint(
    "admin_monitor",
    __name__,
    url_prefix="/admin",
    description="Gateway-wide traffic, latency and errors, and the alerts firing (admin key)",
)
admin_only(admin_blp)


@user_blp.route("/monitor")
@user_blp.response(200, UserMonitorSchema)
@documents_errors(user_blp, *USER_ERRORS)
def user_monitor():
    """Your usage (all time, this month, today, per model), balance and rate-limit windows; needs usage:read."""
    require_scope("usage:read")
    return monitor_documents.user_monitor(g.user)


@admin_blp.route("/monitor")
@admin_blp.response(200, AdminMonitorSchema)
@documents_errors(admin_blp, *ADMIN_ERRORS)
def admin_monitor():
    """Usage, top users, recent activity, performance, cache, database, resources, jobs and firing alerts."""
    return monitor_documents.admin_monitor()


@admin_blp.route("/alerts")
@admin_blp.arguments(AlertListArgsSchema, location="query")
@admin_blp.response(200, AlertListSchema)
@documents_errors(admin_blp, *ADMIN_ERRORS, 422)
def alert_list(args):
    """Alerts firing now, and the most recent incidents (firing or resolved) newest first."""
    with db.transaction() as cur:
        active = system_state.active_alerts(cur)
        recent = system_state.recent_alerts(cur, args.get("status"), args["limit"])
    return {"status": "success", "active": active, "recent": recent}
