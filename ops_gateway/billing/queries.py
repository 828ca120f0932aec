"""The billing domain's SQL, named and kept together: balances (a user's or an org's), holds, the
credit ledger and the settlement of a finished request. Plain functions taking the cursor first.

A request's worst case is held by the key lookup itself (``auth``'s key-and-hold statement) and
given back here (``release_hold``, or by the settlement). Settling is one prepared statement: one
round trip, and its parts commit or fail together even outside an explicit transaction.
"""

from ops_gateway.billing import budget_queries
from ops_gateway.core import db

BALANCE_OWNERS = {scope: budget_queries.OWNERS[scope] for scope in ("user", "org")}  # who has a balance


def add_credits(cur, owner_id, amount, owner="user"):
    """Add ``amount`` (negative: remove) to a user's or an org's (``owner``) balance unless a
    removal takes it below what is held.

    A credit is always accepted, even one that leaves a debt smaller but not paid. Returns the new
    balance, or None when the owner is missing or the change was refused.
    """
    cur.execute(
        f"UPDATE {BALANCE_OWNERS[owner]} SET credits = credits + %(amount)s, updated_at = now()"
        " WHERE id = %(id)s AND (%(amount)s >= 0 OR credits + %(amount)s >= reserved_credits) RETURNING credits",
        {"amount": amount, "id": owner_id},
    )
    row = cur.fetchone()
    return row["credits"] if row else None


def balance(cur, owner_id, owner="user"):
    """{credits, reserved_credits} of a user or an org, or None."""
    cur.execute(f"SELECT credits, reserved_credits FROM {BALANCE_OWNERS[owner]} WHERE id = %s", (owner_id,))
    return cur.fetchone()


def insert_ledger_row(cur, owner_id, amount, balance_after, kind, reason, actor, request_id, owner="user"):
    """One credit_transactions row: a balance change of a user or an org and the balance it left."""
    user_id, org_id = (owner_id, None) if owner == "user" else (None, owner_id)
    cur.execute(
        "INSERT INTO credit_transactions (user_id, org_id, amount, balance_after, kind, reason, actor, request_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (user_id, org_id, amount, balance_after, kind, reason, actor, request_id),
    )


# Give deleted holds (``gone``: user_id, api_key_id, org_id, amount and which budgets each took
# from) back to the balances they were held on (a user's, or an org key's org's) and to the
# budgets they counted against; the members' and keys' rows after the balances' (``balances_first``),
# the order every hold and settlement locks them in.
def _give_back_balance(scope, alias, column, gone_filter):
    """The CTEs freeing ``scope``'s balance rows (users or orgs) of the deleted holds ``gone_filter``
    selects: ``{scope}_freed`` per owner, then ``{scope}_released`` (returning the owners' ids)."""
    table = budget_queries.OWNERS[scope]
    return f"""{scope}_freed AS (
    SELECT {column} AS owner_id, sum(amount) AS amount,
           coalesce(sum(amount) FILTER (WHERE {scope}_budgeted), 0) AS budgeted
    FROM gone WHERE {gone_filter} GROUP BY {column}
), {scope}_released AS (
    UPDATE {table} {alias} SET reserved_credits = GREATEST({alias}.reserved_credits - f.amount, 0),
           budget_reserved = GREATEST({alias}.budget_reserved - f.budgeted, 0)
    FROM {scope}_freed f WHERE {alias}.id = f.owner_id RETURNING {alias}.id
)"""


_GIVE_BACK = f"""
{_give_back_balance("user", "u", "user_id", "org_id IS NULL")},
{_give_back_balance("org", "o", "org_id", "org_id IS NOT NULL")}, balances_first AS (
    SELECT (SELECT count(*) FROM user_released) + (SELECT count(*) FROM org_released) AS balances
), member_freed AS (
    SELECT org_id, user_id, sum(amount) AS amount FROM gone WHERE member_budgeted GROUP BY org_id, user_id
), member_released AS (
    UPDATE org_members m SET budget_reserved = GREATEST(m.budget_reserved - f.amount, 0)
    FROM member_freed f, balances_first WHERE m.org_id = f.org_id AND m.user_id = f.user_id
), key_freed AS (
    SELECT api_key_id, sum(amount) AS amount FROM gone WHERE key_budgeted GROUP BY api_key_id
), key_released AS (
    UPDATE api_keys k SET budget_reserved = GREATEST(k.budget_reserved - f.amount, 0)
    FROM key_freed f, balances_first WHERE k.id = f.api_key_id
)"""
_GONE = "RETURNING user_id, api_key_id, org_id, amount, user_budgeted, key_budgeted, org_budgeted, member_budgeted"


def release_hold(cur, hold_id):
    """Give back one request's hold without charging anything (it was refused before upstream)."""
    cur.execute(
        f"WITH gone AS (DELETE FROM credit_holds WHERE id = %s {_GONE}), {_GIVE_BACK} SELECT 1",
        (hold_id,),
    )


def release_expired_holds(cur, lifetime_seconds):
    """Release the holds of requests that are provably gone; return {holds, users}.

    A hold row expires past the longest a request can live, so a live stream's hold is never
    freed. A user whose newest hold is older than that and who has no hold rows (holds taken
    before holds had rows) is reset to nothing held.
    """
    cur.execute(
        f"""WITH gone AS (
    DELETE FROM credit_holds WHERE expires_at < now() {_GONE}
), {_GIVE_BACK}, unrowed AS (
    UPDATE users u SET reserved_credits = 0
    WHERE u.reserved_credits > 0 AND u.reserved_at < now() - make_interval(secs => %s)
      AND NOT EXISTS (SELECT FROM credit_holds h WHERE h.user_id = u.id) RETURNING u.id
)
SELECT (SELECT count(*) FROM gone) AS holds,
       (SELECT count(*) FROM (SELECT id FROM user_released UNION SELECT id FROM unrowed) AS u) AS users""",
        (lifetime_seconds,),
    )
    return cur.fetchone()


# What a budgeted hold took from a scope's budget_reserved, and a settled budget's figures (for
# the threshold announcements; NULL when the scope has no cap).
_BUDGETED_HOLD = "coalesce((SELECT amount FROM held WHERE {scope}_budgeted), 0)"
_BUDGET_FIGURES = """CASE WHEN {alias}.budget IS NOT NULL THEN json_build_object('scope', '{scope}', 'id', {alias}.id,
        'budget', {alias}.budget::text, 'spent', {alias}.budget_spent::text, 'alerted', {alias}.budget_alerted::text,
        'thresholds', {alias}.budget_alert_thresholds::text[], 'period', {alias}.budget_period,
        'period_start', {alias}.budget_period_start, 'resets_at', budget_period_end({alias}.budget_period, now()))
        END AS {scope}_budget"""


def _balance_charge(scope, alias, where):
    """An UPDATE of the balance row ``where`` selects (a user's or an org's) settling the request:
    its hold released, ``cost`` charged to the balance and to its cap, and the cap's figures."""
    return f"""
    UPDATE {budget_queries.OWNERS[scope]} {alias}
       SET reserved_credits = GREATEST({alias}.reserved_credits - coalesce((SELECT amount FROM held), 0), 0),
           credits = {alias}.credits - %(cost)s, updated_at = now(),
           budget_reserved = GREATEST({alias}.budget_reserved - {_BUDGETED_HOLD.format(scope=scope)}, 0),
           {budget_queries.charge_columns(alias, "%(cost)s")}
    WHERE {where} AND EXISTS (SELECT FROM settled)
    RETURNING {alias}.credits AS balance, {_BUDGET_FIGURES.format(scope=scope, alias=alias)}"""


# Release the request's own hold (by its id: a hold the scheduler already released is not given
# back twice) and its part of any budget's holds, and charge the real cost (to budgets too),
# whatever was held: when real usage exceeded the held worst case the balance may go below zero,
# a debt that refuses further requests until it is paid (a hold requires credits - holds >= the
# hold, and the hold is never negative). Then write the ledger row when anything was charged.
# A personal key's request is charged to its user (``user_charge``), an org key's to its org
# (``org_charge``) and its member's org budget; ``charge`` yields (charged, balance, user_budget,
# org_budget) from the one that ran, ``key_charge`` and ``member_charge`` their budgets. The member's
# and the key's rows are updated only after ``charge`` (so after the user's or org's row): the
# order a capped hold locks them in (``budget_queries``), so the two never wait on each other.
_CHARGE = f"""
held AS (
    DELETE FROM credit_holds WHERE id = %(hold_id)s AND EXISTS (SELECT FROM settled)
    RETURNING amount, user_budgeted, key_budgeted, org_budgeted, member_budgeted
), user_charge AS ({_balance_charge("user", "u", "u.id = %(user_id)s AND %(org_id)s::bigint IS NULL")}
), org_charge AS ({_balance_charge("org", "o", "o.id = %(org_id)s")}
), charge AS (
    SELECT %(cost)s::numeric AS charged, balance, user_budget, NULL::json AS org_budget FROM user_charge
    UNION ALL SELECT %(cost)s::numeric, balance, NULL::json, org_budget FROM org_charge
), member_charge AS (
    UPDATE org_members m SET budget_reserved = GREATEST(m.budget_reserved - {_BUDGETED_HOLD.format(scope="member")}, 0),
           {budget_queries.charge_columns("m", "%(cost)s")}
    WHERE m.org_id = %(org_id)s AND m.user_id = %(user_id)s AND (m.budget IS NOT NULL OR m.budget_reserved > 0)
      AND EXISTS (SELECT FROM charge)
    RETURNING {_BUDGET_FIGURES.format(scope="member", alias="m")}
), key_charge AS (
    UPDATE api_keys k SET budget_reserved = GREATEST(k.budget_reserved - {_BUDGETED_HOLD.format(scope="key")}, 0),
           {budget_queries.charge_columns("k", "%(cost)s")}
    WHERE k.id = %(api_key_id)s AND (k.budget IS NOT NULL OR k.budget_reserved > 0) AND EXISTS (SELECT FROM charge)
    RETURNING {_BUDGET_FIGURES.format(scope="key", alias="k")}
), ledger AS (
    INSERT INTO credit_transactions (user_id, org_id, amount, balance_after, kind, reason, actor, request_id,
        settlement_id)
    SELECT %(user_id)s, %(org_id)s, -charged, balance, 'usage',
           'usage: ' || coalesce(%(served_model)s::text, %(model)s::text), %(actor)s, %(request_id)s, %(settlement_id)s
    FROM charge WHERE charged > 0
)"""

# With nothing held and nothing to charge (free models) no balance or budget row is touched.
_NO_CHARGE = (
    "charge AS (SELECT 0::numeric AS charged, NULL::numeric AS balance, NULL::json AS user_budget,"
    " NULL::json AS org_budget FROM settled),"
    " key_charge AS (SELECT NULL::json AS key_budget), member_charge AS (SELECT NULL::json AS member_budget)"
)

# The usage row and the day's totals, at what ``charge`` charged; ``exceeded_hold`` marks a
# request whose real cost was more than its hold.
_RECORD = """, record AS (
    INSERT INTO usage_records (request_id, user_id, api_key_id, model, prompt_tokens, completion_tokens,
        total_tokens, cost, status, upstream_status, error_code, latency_ms, upstream_latency_ms, overhead_ms,
        streamed, exceeded_hold, upstream_cost, tags, endpoint, served_model, settlement_id, org_id, client_ip,
        cache_hit)
    SELECT %(request_id)s, %(user_id)s, %(api_key_id)s, %(model)s::text, %(prompt_tokens)s::int,
           %(completion_tokens)s::int, %(prompt_tokens)s::int + %(completion_tokens)s::int, charged, %(status)s::text,
           %(upstream_status)s, %(error_code)s, %(latency_ms)s::float8, %(upstream_latency_ms)s::float8,
           CASE WHEN %(upstream_latency_ms)s::float8 IS NOT NULL
                THEN greatest(%(latency_ms)s::float8 - %(upstream_latency_ms)s::float8, 0) END,
           %(streamed)s, charged > %(held)s, %(upstream_cost)s, %(tags)s::text[], %(endpoint)s, %(served_model)s,
           %(settlement_id)s, %(org_id)s, %(client_ip)s::inet, %(cache_hit)s
    FROM charge
    RETURNING id, created_at
), lookup AS (
    INSERT INTO generation_lookups (settlement_id, generation_id, request_id, user_id, api_key_id, usage_id,
        usage_created_at, model, endpoint, charged, markup, org_id)
    SELECT %(settlement_id)s, %(generation_id)s, %(request_id)s, %(user_id)s, %(api_key_id)s, r.id, r.created_at,
           coalesce(%(served_model)s, %(model)s), %(endpoint)s, %(cost)s, %(markup)s, %(org_id)s
    FROM record r WHERE %(generation_id)s::text IS NOT NULL
), daily AS (
    INSERT INTO usage_daily_totals AS t (day, user_id, model, endpoint, org_id, requests, errors, prompt_tokens,
        completion_tokens, cost, last_request_at, upstream_reported, upstream_cost, cost_upstream_reported)
    SELECT (now() AT TIME ZONE 'UTC')::date, %(user_id)s, coalesce(%(served_model)s, %(model)s), %(endpoint)s,
           coalesce(%(org_id)s, 0), 1,
           CASE WHEN %(status)s::text = 'success' THEN 0 ELSE 1 END, %(prompt_tokens)s::int, %(completion_tokens)s::int,
           charged, now(), (%(upstream_cost)s::numeric IS NOT NULL)::int, coalesce(%(upstream_cost)s, 0),
           CASE WHEN %(upstream_cost)s::numeric IS NULL THEN 0 ELSE charged END
    FROM charge
    ON CONFLICT (user_id, day, model, endpoint, org_id) DO UPDATE SET requests = t.requests + 1,
        errors = t.errors + EXCLUDED.errors, prompt_tokens = t.prompt_tokens + EXCLUDED.prompt_tokens,
        completion_tokens = t.completion_tokens + EXCLUDED.completion_tokens, cost = t.cost + EXCLUDED.cost,
        last_request_at = EXCLUDED.last_request_at,
        upstream_reported = t.upstream_reported + EXCLUDED.upstream_reported,
        upstream_cost = t.upstream_cost + EXCLUDED.upstream_cost,
        cost_upstream_reported = t.cost_upstream_reported + EXCLUDED.cost_upstream_reported
)
SELECT charged, balance, user_budget, org_budget, (SELECT key_budget FROM key_charge) AS key_budget,
       (SELECT member_budget FROM member_charge) AS member_budget
FROM charge"""

# The settlement's claim: nothing below happens unless this request's id is new here.
_SETTLED = "settled AS (INSERT INTO settlements (id) VALUES (%(settlement_id)s) ON CONFLICT DO NOTHING RETURNING id), "
_SETTLE_REQUEST = db.Prepared("settle_request", f"WITH {_SETTLED}{_CHARGE}{_RECORD}")
_RECORD_FREE_REQUEST = db.Prepared("record_free_request", f"WITH {_SETTLED}{_NO_CHARGE}{_RECORD}")


def settle_request(cur, params, charges):
    """Settle a finished request in one statement; return {charged, balance, user_budget, key_budget},
    or None when its settlement id was settled already (nothing changed).

    ``charges``: whether anything was held or costs anything; a free request only records its
    usage. ``params``: the fields of ``settlement.FinishedRequest`` by name; the statement derives
    the ledger reason, total tokens, overhead and error count from them.
    """
    (_SETTLE_REQUEST if charges else _RECORD_FREE_REQUEST).execute(cur, params)
    return cur.fetchone()
