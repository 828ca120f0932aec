"""The limits domain's SQL: plans, per-user overrides, and the usage the quotas are rebuilt from.
Plain functions taking the cursor first and returning dicts; their column lists come from the
window registry (``plans``, ``windows``)."""

from ops_gateway.limits import plans


def all_plans(cur):
    """Every plan with its limits, smallest first."""
    cur.execute(f"SELECT {plans.PLAN_COLUMNS} FROM plans ORDER BY requests_per_minute")
    return cur.fetchall()


def limit_row(cur, user_id):
    """The user's plan name with ``plans.LIMIT_COLUMNS`` (plan values and overrides), or None."""
    cur.execute(
        f"SELECT u.plan, {plans.LIMIT_COLUMNS} FROM users u JOIN plans p ON p.name = u.plan"
        " LEFT JOIN rate_limit_overrides o ON o.user_id = u.id WHERE u.id = %s",
        (user_id,),
    )
    return cur.fetchone()


def upsert_overrides(cur, user_id, windows, actor):
    """Set the given {window: value or None} overrides; windows not given keep theirs."""
    columns = ", ".join(windows)
    placeholders = ", ".join(["%s"] * len(windows))
    updates = ", ".join(f"{window} = EXCLUDED.{window}" for window in windows)
    cur.execute(
        f"INSERT INTO rate_limit_overrides (user_id, updated_by, {columns}) VALUES (%s, %s, {placeholders})"
        f" ON CONFLICT (user_id) DO UPDATE SET updated_by = EXCLUDED.updated_by, updated_at = now(), {updates}",
        [user_id, actor, *windows.values()],
    )


def delete_overrides(cur, user_id):
    """Drop every override of the user."""
    cur.execute("DELETE FROM rate_limit_overrides WHERE user_id = %s", (user_id,))


def usage_since(cur, user_id, sums):
    """{name: total} over the user's usage_daily_totals rows: each (name, column expression, first
    day) of ``sums`` adds up its column from its first day on (names and columns are ours, not input)."""
    selects = ", ".join(f"coalesce(sum({column}) FILTER (WHERE day >= %s), 0) AS {name}" for name, column, _ in sums)
    days = [day for _, _, day in sums]
    cur.execute(
        f"SELECT {selects} FROM usage_daily_totals WHERE user_id = %s AND day >= %s", [*days, user_id, min(days)]
    )
    return cur.fetchone()
