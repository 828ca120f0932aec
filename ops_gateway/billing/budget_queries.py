"""The budgets' SQL (spend caps on users, keys, orgs and org members: sql/0015, sql/0024): the
locked hold of a budgeted request, the period's figures, setting a cap, and claiming a
threshold's announcement.

``OWNERS`` names the table of each budget scope; every statement takes the scope from it, never
from input. The period's spend is ``budget_spent`` only while ``budget_period_start`` is the
current period's start; otherwise the period has rolled over and the spend is 0.
"""

OWNERS = {"user": "users", "key": "api_keys", "org": "organizations", "member": "org_members"}

# Which usage records count against a scope's cap (the seed of a new cap): a user's cap counts
# their personal use only, a member's their use of the org's keys.
_SPENDERS = {
    "user": "user_id = %(id)s AND org_id IS NULL",
    "key": "api_key_id = %(id)s",
    "org": "org_id = %(id)s",
    "member": "(org_id, user_id) = (SELECT org_id, user_id FROM org_members WHERE id = %(id)s)",
}


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


def _figures(alias, prefix=""):
    """A cap's figures this period from ``alias``'s row, each column named with ``prefix`` (a hold's
    locked rows name each scope's figures apart: ``user_budget``, ``key_budget``...)."""
    columns = {
        "budget": f"{alias}.budget",
        "budget_period": f"{alias}.budget_period",
        "budget_alert_thresholds": f"{alias}.budget_alert_thresholds",
        "budget_reserved": f"{alias}.budget_reserved",
        "budget_spent": spent_now(alias),
        "budget_resets_at": f"budget_period_end({alias}.budget_period, now())",
        "budget_current_start": f"budget_period_start({alias}.budget_period, now())",
        "budget_alerted": f"{alias}.budget_alerted",
    }
    return ",\n       ".join(f"{sql} AS {prefix}{name}" for name, sql in columns.items())


# Both rows locked, the user's first (the settlement's order too), with what the hold checks.
# (Inside ``_HOLD``: FOR UPDATE in its first CTE.)
_LOCK_FOR_HOLD = f"""
SELECT u.credits, u.reserved_credits, {_figures("u", "user_")}, {_figures("k", "key_")}
FROM users u JOIN api_keys k ON k.id = %(api_key_id)s AND k.user_id = u.id
WHERE u.id = %(user_id)s
FOR UPDATE OF u, k
"""

# An org key's three rows locked, the org's first: the org's balance and cap, the member's org
# cap and the key's. No row when the key's user is no longer a member.
_LOCK_FOR_ORG_HOLD = f"""
SELECT o.credits, o.reserved_credits, {_figures("o", "org_")}, {_figures("m", "member_")},
       {_figures("k", "key_")}
FROM organizations o
JOIN org_members m ON m.org_id = o.id AND m.user_id = %(user_id)s
JOIN api_keys k ON k.id = %(api_key_id)s AND k.org_id = o.id
WHERE o.id = %(org_id)s
FOR UPDATE OF o, m, k
"""


def _hold_on(table, alias, where, balance=""):
    """An UPDATE adding the hold to a locked row's budget_reserved when it has a cap (rolling a
    past period's spend to 0) and making the ``balance`` assignments (the hold on the balance it
    is drawn from), when the hold fits (``ok``); it returns whether the row had a cap."""
    return f"""UPDATE {table} {alias}
    SET {balance}
        budget_reserved = {alias}.budget_reserved + CASE WHEN {alias}.budget IS NULL THEN 0 ELSE %(amount)s END,
        {charge_columns(alias, "0")}
    WHERE {where} AND EXISTS (SELECT FROM ok) RETURNING {alias}.budget IS NOT NULL AS budgeted"""


def _fits(scopes):
    """SQL: the locked figures ``f`` have room for %(amount)s on the balance and under each cap of ``scopes``."""
    room = "f.{s}_budget IS NULL OR f.{s}_budget_spent + f.{s}_budget_reserved + %(amount)s <= f.{s}_budget"
    caps = " AND ".join(f"({room.format(s=scope)})" for scope in scopes)
    return f"f.credits - f.reserved_credits >= %(amount)s AND {caps}"


_HOLD_BALANCE = "reserved_credits = {a}.reserved_credits + %(amount)s,"
_KEY_HOLD = _hold_on("api_keys", "k", "k.id = %(api_key_id)s")
_HOLD_ROW = """INSERT INTO credit_holds (user_id, api_key_id, request_id, amount, expires_at, org_id, user_budgeted,
    key_budgeted, org_budgeted, member_budgeted)
SELECT %(user_id)s, %(api_key_id)s, %(request_id)s, %(amount)s, now() + make_interval(secs => %(hold_seconds)s),
       %(org_id)s, {user}, (SELECT budgeted FROM key_hold), {org}, {member}
WHERE %(amount)s > 0 AND EXISTS (SELECT FROM ok)
RETURNING id"""


def _hold_statement(lock, scopes, holds, hold_row):
    """One statement: lock the rows, check the hold fits them all, take it on each and write its row.

    One statement, so the rows stay locked for its run and its commit only (a transaction around a
    lock, a check in Python and an update kept every other request of an org waiting for the
    round trips between them, and for the worker to be scheduled again under load).
    """
    return f"""WITH f AS ({lock}), ok AS (SELECT FROM f WHERE {_fits(scopes)}), {holds}, hold_row AS ({hold_row})
SELECT f.*, EXISTS (SELECT FROM ok) AS held, (SELECT id FROM hold_row) AS hold_id FROM f"""


_USER_BALANCE_HOLD = _HOLD_BALANCE.format(a="u") + " reserved_at = now(),"
_HOLD = _hold_statement(
    _LOCK_FOR_HOLD,
    ("user", "key"),
    f"""user_hold AS ({_hold_on("users", "u", "u.id = %(user_id)s", _USER_BALANCE_HOLD)}),
key_hold AS ({_KEY_HOLD})""",
    _HOLD_ROW.format(user="(SELECT budgeted FROM user_hold)", org="false", member="false"),
)
_ORG_HOLD = _hold_statement(
    _LOCK_FOR_ORG_HOLD,
    ("org", "member", "key"),
    f"""org_hold AS ({_hold_on("organizations", "o", "o.id = %(org_id)s", _HOLD_BALANCE.format(a="o"))}),
member_hold AS ({_hold_on("org_members", "m", "m.org_id = %(org_id)s AND m.user_id = %(user_id)s")}),
key_hold AS ({_KEY_HOLD})""",
    _HOLD_ROW.format(user="false", org="(SELECT budgeted FROM org_hold)", member="(SELECT budgeted FROM member_hold)"),
)


def hold(cur, params):
    """Hold ``amount`` on a capped key's rows in one statement (params: user_id, api_key_id, org_id,
    request_id, amount, hold_seconds): the balance and each cap's figures as they were locked,
    ``held`` (it fitted them all) and ``hold_id`` (None for a zero hold); None when the key's
    user is no longer a member of its org."""
    cur.execute(_HOLD if params["org_id"] is None else _ORG_HOLD, params)
    return cur.fetchone()


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
    cur.execute(
        f"SELECT coalesce(sum(cost), 0) AS spent FROM usage_records"
        f" WHERE {_SPENDERS[scope]} AND created_at >= budget_period_start(%(period)s, now())",
        {"id": owner_id, "period": period},
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
