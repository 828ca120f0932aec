"""/admin/limit and /admin/plans: per-user rate-limit overrides on top of plans."""

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from blueprints.docs import ADMIN_ERRORS, documents_errors
from blueprints.guards import admin_only
from blueprints.limit_schemas import EffectiveLimitsSchema, PlanListSchema, SetRateLimitRequest, SetRateLimitResponse
from ops_gateway.accounts import users
from ops_gateway.core import db
from ops_gateway.limits import limit_overrides, window_caps

blp = Blueprint("admin_limits", __name__, url_prefix="/admin", description="Plans and rate limits (admin key)")
admin_only(blp)


@blp.route("/plans")
@blp.response(200, PlanListSchema)
@documents_errors(blp, *ADMIN_ERRORS)
def list_plans():
    """Every plan with its request/token windows, quotas and concurrency."""
    with db.transaction() as cur:
        return {"plans": limit_overrides.list_plans(cur)}


@blp.route("/limit", methods=["POST"])
@blp.arguments(SetRateLimitRequest)
@blp.response(200, SetRateLimitResponse)
@documents_errors(blp, *ADMIN_ERRORS, 404, 422)
def set_limit(body):
    """Override a user's windows (by user_id or api_key); applies to their next request everywhere.

    ``warnings`` names each window that a longer window of its kind caps, so such a limit is never set silently.
    """
    with db.transaction() as cur:
        if body.get("user_id") is not None:
            user_id = users.get_user(cur, body["user_id"])["id"]
        else:
            user_id = users.user_for_key(cur, body["api_key"])
        limit_overrides.set_overrides(cur, user_id, body["rate_limits"], g.user["actor"])
        limits, _, _ = limit_overrides.effective_for_user(cur, user_id)
    return {
        "status": "success",
        "message": "rate limits updated",
        "user_id": user_id,
        "rate_limits": limits,
        "warnings": window_caps.capped_windows(limits),
    }


@blp.route("/limit/<int:user_id>")
class UserLimits(MethodView):
    """A user's effective limits."""

    @blp.response(200, EffectiveLimitsSchema)
    @documents_errors(blp, *ADMIN_ERRORS, 404)
    def get(self, user_id):
        """Effective limits and where each comes from (plan or override)."""
        with db.transaction() as cur:
            limits, sources, plan = limit_overrides.effective_for_user(cur, user_id)
        return {"user_id": user_id, "plan": plan, "rate_limits": limits, "sources": sources}

    @blp.response(200, EffectiveLimitsSchema)
    @documents_errors(blp, *ADMIN_ERRORS, 404)
    def delete(self, user_id):
        """Remove every override: back to the plan's limits."""
        with db.transaction() as cur:
            users.get_user(cur, user_id)
            limit_overrides.clear_overrides(cur, user_id, g.user["actor"])
            limits, sources, plan = limit_overrides.effective_for_user(cur, user_id)
        return {"user_id": user_id, "plan": plan, "rate_limits": limits, "sources": sources}
