"""The budgets' SQL (spend caps on users and keys, sql/0015): the locked hold of a budgeted
request, the period's figures, setting a cap, and claiming a threshold's announcement.

``OWNERS`` names the table of each budget scope; every statement takes the scope from it, never
from input. The period's spend is ``budget_spent`` only while ``budget_period_start`` is the
current period's start; otherwise the period has rolled over and the spend is 0.
"""

OWNERS = {"user": "users", "key": "api_keys"}


def spent_now(alias):
    """SQL for the current period's settled spend of ``alias``'s row."""
    return (
        f"CASE WHEN {alias}.budget_period_start = budget_period_start({alias}.budget_period, now())"
        f" THEN {alias}.budget_spent ELSE 0 END"
    )


def charge_columns(alias, cost):
    """SET assignments adding ``cost`` (SQL) to the current period's spend of a budgeted row."""
    current = f"budget_period_start({alias}.budget_period, now())"
    return f"""budget_spent = CASE WHEN {alias}.budget IS NULL THEN {alias}.budget_spent
                        ELSE {spent_now(alias)} + {cost} END,
           budget_alerted = CASE WHEN {alias}.budget_period_start = {current} THEN {alias}.budget_alerted ELSE 0 END,
           budget_period_start = CASE WHEN {alias}.budget IS NULL THEN {alias}.budget_period_start ELSE {current} END"""


def _figures(alias):
    return f"""{alias}.budget, {alias}.budget_period, {alias}.budget_alert_thresholds, {alias}.budget_reserved,
       {spent_now(alias)} AS budget_spent, budget_period_end({alias}.budget_period, now()) AS budget_resets_at,
       budget_period_start({alias}.budget_period, now()) AS budget_current_start, {alias}.budget_alerted"""


# Both rows locked, the user's first (the settlement's order too), with what the hold checks.
_LOCK_FOR_HOLD = f"""
SELECT u.credits, u.reserved_credits, {_figures("u")},
       k.budget AS key_budget, k.budget_period AS key_budget_period, k.budget_reserved AS key_budget_reserved,
       {spent_now("k")} AS key_budget_spent, budget_period_end(k.budget_period, now()) AS key_budget_resets_at
FROM users u JOIN api_keys k ON k.id = %(api_key_id)s AND k.user_id = u.id
WHERE u.id = %(user_id)s
FOR UPDATE OF u, k
"""

# With both rows locked: take the hold on the balance and on each budget that is set, rolling a
# past period's spend to 0, and write the hold's row.
_TAKE_HOLD = f"""
WITH user_hold AS (
    UPDATE users u SET reserved_credits = u.reserved_credits + %(amount)s, reserved_at = now(),
           budget_reserved = u.budget_reserved + CASE WHEN u.budget IS NULL THEN 0 ELSE %(amount)s END,
           {charge_columns("u", "0")}
    WHERE u.id = %(user_id)s RETURNING u.budget IS NOT NULL AS budgeted
), key_hold AS (
    UPDATE api_keys k SET budget_reserved = k.budget_reserved + CASE WHEN k.budget IS NULL THEN 0 ELSE %(amount)s END,
           {charge_columns("k", "0")}
    WHERE k.id = %(api_key_id)s RETURNING k.budget IS NOT NULL AS budgeted
)
INSERT INTO credit_holds (user_id, api_key_id, request_id, amount, expires_at, user_budgeted, key_budgeted)
SELECT %(user_id)s, %(api_key_id)s, %(request_id)s, %(amount)s, now() + make_interval(secs => %(hold_seconds)s),
       (SELECT budgeted FROM user_hold), (SELECT budgeted FROM key_hold)
WHERE %(amount)s > 0
RETURNING id
"""


def lock_for_hold(cur, user_id, api_key_id):
    """Lock the user's and the key's rows; their balance and both budgets' current figures."""
    cur.execute(_LOCK_FOR_HOLD, {"user_id": user_id, "api_key_id": api_key_id})
    return cur.fetchone()


def take_hold(cur, params):
    """Hold ``amount`` on the locked rows (params: user_id, api_key_id, request_id, amount,
    hold_seconds); the hold's id, or None for a zero hold (nothing to give back)."""
    cur.execute(_TAKE_HOLD, params)
    row = cur.fetchone()
    return row["id"] if row else None


def figures(cur, scope, owner_id):
    """A budget's cap, period, thresholds, spend, holds and reset time (None: no such row)."""
    cur.execute(f"SELECT {_figures('b')} FROM {OWNERS[scope]} b WHERE b.id = %s", (owner_id,))
    return cur.fetchone()


def set_budget(cur, scope, owner_id, budget, period, thresholds, seed_spend):
    """Set (or, budget None, remove) a cap from the current period on, its spend so far
    ``seed_spend`` and nothing announced yet."""
    cur.execute(
        f"UPDATE {OWNERS[scope]} SET budget = %(budget)s, budget_period = %(period)s,"
        " budget_alert_thresholds = %(thresholds)s::numeric[], budget_spent = %(spent)s, budget_alerted = 0,"
        " budget_period_start = budget_period_start(%(period)s, now()) WHERE id = %(id)s",
        {"budget": budget, "period": period, "thresholds": thresholds, "spent": seed_spend, "id": owner_id},
    )


def period_spend(cur, scope, owner_id, period):
    """What the owner's completions cost since the start of the current ``period`` (the seed of a new cap)."""
    column = "user_id" if scope == "user" else "api_key_id"
    cur.execute(
        f"SELECT coalesce(sum(cost), 0) AS spent FROM usage_records"
        f" WHERE {column} = %s AND created_at >= budget_period_start(%s, now())",
        (owner_id, period),
    )
    return cur.fetchone()["spent"]


def claim_announcement(cur, scope, owner_id, level, period_start):
    """Raise the announced threshold to ``level`` for this period; whether this call did (once
    across workers and instances)."""
    cur.execute(
        f"UPDATE {OWNERS[scope]} SET budget_alerted = %s"
        " WHERE id = %s AND budget_alerted < %s AND budget_period_start = %s RETURNING id",
        (level, owner_id, level, period_start),
    )
    return cur.fetchone() is not None


def caps_of_user(cur, user_id):
    """The user's cap and their unrevoked keys' caps, with this period's figures (the dashboard)."""
    cur.execute(
        f"""SELECT 'user' AS scope, b.id, NULL AS key_name, {_figures("b")} FROM users b
WHERE b.id = %(user_id)s AND b.budget IS NOT NULL
UNION ALL
SELECT 'key', b.id, b.name, {_figures("b")} FROM api_keys b
WHERE b.user_id = %(user_id)s AND b.budget IS NOT NULL AND b.status <> 'revoked'
ORDER BY 1 DESC, 2""",
        {"user_id": user_id},
    )
    return cur.fetchall()


def ended_period_alerts(cur):
    """The rules of firing threshold alerts whose budget period has ended."""
    cur.execute(
        "SELECT rule FROM alerts WHERE status = 'firing' AND rule LIKE 'budget:%%'"
        " AND (details->>'resets_at')::timestamptz <= now()"
    )
    return [row["rule"] for row in cur.fetchall()]
