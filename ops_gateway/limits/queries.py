"""The limits domain's SQL: plans, per-user overrides, the usage the quotas are rebuilt from, security
events and key IP history.
Plain functions taking the cursor first and returning dicts; their column lists come from the
window registry (``plans``, ``windows``)."""

from psycopg2.extras import Json

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


def usage_since(cur, user_id, org_id, sums):
    """{name: total} over the usage_daily_totals rows of a user's personal use (``org_id`` None) or
    of an org's: each (name, column expression, first day) of ``sums`` adds up its column from its
    first day on (names and columns are ours, not input)."""
    selects = ", ".join(f"coalesce(sum({column}) FILTER (WHERE day >= %s), 0) AS {name}" for name, column, _ in sums)
    days = [day for _, _, day in sums]
    owner, owner_id = ("user_id = %s AND org_id = 0", user_id) if org_id is None else ("org_id = %s", org_id)
    cur.execute(f"SELECT {selects} FROM usage_daily_totals WHERE {owner} AND day >= %s", [*days, owner_id, min(days)])
    return cur.fetchone()


# Security events and key IP history


def upsert_security_event(cur, event_type, user_id, api_key_id, ip, details, dedupe_key):
    """Insert a security event, or count one more on the row of the same ``dedupe_key``."""
    cur.execute(
        "INSERT INTO security_events (type, user_id, api_key_id, ip, details, dedupe_key)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (dedupe_key) DO UPDATE SET count = security_events.count + 1, last_seen_at = now()",
        (event_type, user_id, api_key_id, ip, Json(details or {}), dedupe_key),
    )


def insert_key_ip(cur, api_key_id, ip):
    """Remember that a key was used from ``ip``; the new row ({"ip"}) or None if it was already known."""
    cur.execute(
        "INSERT INTO key_ip_history (api_key_id, ip) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING ip",
        (api_key_id, ip),
    )
    return cur.fetchone()


def count_key_ips(cur, api_key_id):
    """How many IPs a key has ever been used from."""
    cur.execute("SELECT count(*) AS seen FROM key_ip_history WHERE api_key_id = %s", (api_key_id,))
    return cur.fetchone()["seen"]
