"""Plans and per-user rate-limit overrides as admins see them: read, set, clear (each change audited)."""

from ops_gateway.core.errors import NotFound
from ops_gateway.limits import plans, queries
from ops_gateway.limits.windows import LIMIT_FIELDS
from ops_gateway.telemetry import audit


def list_plans(cur):
    """Every plan with its limits."""
    return queries.all_plans(cur)


def effective_for_user(cur, user_id):
    """(limits, sources, plan) for a user: each window's override, else the plan's value."""
    row = queries.limit_row(cur, user_id)
    if row is None:
        raise NotFound(f"user {user_id} does not exist", code="user_not_found")
    limits, sources = plans.effective_limits(row)
    return limits, sources, row["plan"]


def set_overrides(cur, user_id, rate_limits, actor):
    """Upsert the given windows (null = inherit the plan); fields not given keep their override."""
    given = {f: rate_limits[f] for f in LIMIT_FIELDS if f in rate_limits}
    queries.upsert_overrides(cur, user_id, given, actor)
    audit.record(cur, "limits_updated", actor, user_id, details={"rate_limits": given})


def clear_overrides(cur, user_id, actor):
    """Drop every override: the user is back on the plan's limits."""
    queries.delete_overrides(cur, user_id)
    audit.record(cur, "limits_updated", actor, user_id, details={"rate_limits": "plan"})
