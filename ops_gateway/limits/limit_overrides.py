"""Plans and per-user rate-limit overrides as admins see them: read, set, clear (each change audited)."""

from ops_gateway.accounts import audit
from ops_gateway.core.errors import NotFound
from ops_gateway.limits import plans
from ops_gateway.limits.windows import LIMIT_FIELDS


def list_plans(cur):
    """Every plan with its limits."""
    cur.execute(f"SELECT {plans.PLAN_COLUMNS} FROM plans ORDER BY requests_per_minute")
    return cur.fetchall()


def effective_for_user(cur, user_id):
    """(limits, sources, plan) for a user: each window's override, else the plan's value."""
    cur.execute(
        f"SELECT u.plan, {plans.LIMIT_COLUMNS} FROM users u JOIN plans p ON p.name = u.plan"
        " LEFT JOIN rate_limit_overrides o ON o.user_id = u.id WHERE u.id = %s",
        (user_id,),
    )
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"user {user_id} does not exist", code="user_not_found")
    limits, sources = plans.effective_limits(row)
    return limits, sources, row["plan"]


def set_overrides(cur, user_id, rate_limits, actor):
    """Upsert the given windows (null = inherit the plan); fields not given keep their override."""
    given = {f: rate_limits[f] for f in LIMIT_FIELDS if f in rate_limits}
    columns = ", ".join(given)
    placeholders = ", ".join(["%s"] * len(given))
    updates = ", ".join(f"{f} = EXCLUDED.{f}" for f in given)
    cur.execute(
        f"INSERT INTO rate_limit_overrides (user_id, updated_by, {columns}) VALUES (%s, %s, {placeholders})"
        f" ON CONFLICT (user_id) DO UPDATE SET updated_by = EXCLUDED.updated_by, updated_at = now(), {updates}",
        [user_id, actor, *given.values()],
    )
    audit.record(cur, "limits_updated", actor, user_id, details={"rate_limits": given})


def clear_overrides(cur, user_id, actor):
    """Drop every override: the user is back on the plan's limits."""
    cur.execute("DELETE FROM rate_limit_overrides WHERE user_id = %s", (user_id,))
    audit.record(cur, "limits_updated", actor, user_id, details={"rate_limits": "plan"})
