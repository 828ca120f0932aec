"""The SQL of reconciling provisional charges with upstream's bill (``reconciliation``): the due
generation lookups, moving one request's difference, and postponing or dropping a lookup.
Plain functions taking the cursor first."""

from ops_gateway.billing import budget_queries


def due_lookups(cur, limit):
    """Up to ``limit`` lookups whose next attempt is due, oldest first."""
    cur.execute(
        "SELECT settlement_id::text, generation_id, attempts FROM generation_lookups"
        " WHERE next_attempt_at <= now() ORDER BY next_attempt_at LIMIT %s",
        (limit,),
    )
    return cur.fetchall()


# Delete the lookup (the claim: a lookup is applied once, whoever runs it) and move the
# difference between upstream's cost times the markup and the provisional charge: the balance
# (the user's, or an org key's org's),
# each budget's spend, one 'usage_reconciled' ledger row, the usage record (cost, upstream cost,
# upstream's token counts) and the day's totals it was counted in.
_APPLY = f"""
WITH done AS (
    DELETE FROM generation_lookups WHERE settlement_id = %(settlement_id)s::uuid
    RETURNING user_id, api_key_id, org_id, usage_id, usage_created_at, model, endpoint, request_id, charged,
              least(round(%(upstream_cost)s::numeric * markup, 10), 9999999999) AS owed
), moved AS (
    SELECT d.*, d.owed - d.charged AS delta FROM done d
), user_charge AS (
    UPDATE users u SET credits = u.credits - m.delta, updated_at = now(),
           {budget_queries.charge_columns("u", "m.delta")}
    FROM moved m WHERE u.id = m.user_id AND m.org_id IS NULL
    RETURNING u.credits AS balance
), org_charge AS (
    UPDATE organizations o SET credits = o.credits - m.delta, updated_at = now(),
           {budget_queries.charge_columns("o", "m.delta")}
    FROM moved m WHERE o.id = m.org_id
    RETURNING o.credits AS balance
), charge AS (
    SELECT balance FROM user_charge UNION ALL SELECT balance FROM org_charge
), member_charge AS (
    UPDATE org_members mb SET {budget_queries.charge_columns("mb", "m.delta")}
    FROM moved m WHERE mb.org_id = m.org_id AND mb.user_id = m.user_id AND mb.budget IS NOT NULL
      AND EXISTS (SELECT FROM charge)  -- after the balance's row, the order holds lock them in
), key_charge AS (
    UPDATE api_keys k SET {budget_queries.charge_columns("k", "m.delta")}
    FROM moved m WHERE k.id = m.api_key_id AND k.budget IS NOT NULL AND EXISTS (SELECT FROM charge)
), ledger AS (
    INSERT INTO credit_transactions (user_id, org_id, amount, balance_after, kind, reason, actor, request_id,
        settlement_id)
    SELECT m.user_id, m.org_id, -m.delta, c.balance, 'usage_reconciled',
           'usage: ' || m.model || ', as upstream billed it', 'system:reconciliation', m.request_id,
           %(settlement_id)s::uuid
    FROM moved m, charge c WHERE m.delta <> 0
), old AS (
    SELECT r.id, r.prompt_tokens, r.completion_tokens FROM usage_records r, moved m
    WHERE r.id = m.usage_id AND r.created_at = m.usage_created_at
), usage AS (
    UPDATE usage_records r SET cost = m.owed, upstream_cost = %(upstream_cost)s,
           prompt_tokens = coalesce(%(prompt)s, r.prompt_tokens),
           completion_tokens = coalesce(%(completion)s, r.completion_tokens),
           total_tokens = coalesce(%(prompt)s, r.prompt_tokens) + coalesce(%(completion)s, r.completion_tokens)
    FROM moved m WHERE r.id = m.usage_id AND r.created_at = m.usage_created_at
), daily AS (
    UPDATE usage_daily_totals t SET cost = t.cost + m.delta,
           prompt_tokens = t.prompt_tokens + coalesce(%(prompt)s - o.prompt_tokens, 0),
           completion_tokens = t.completion_tokens + coalesce(%(completion)s - o.completion_tokens, 0),
           upstream_reported = t.upstream_reported + 1, upstream_cost = t.upstream_cost + %(upstream_cost)s,
           cost_upstream_reported = t.cost_upstream_reported + m.owed
    FROM moved m, old o
    WHERE t.user_id = m.user_id AND t.day = (m.usage_created_at AT TIME ZONE 'UTC')::date
      AND t.model = m.model AND t.endpoint = m.endpoint AND t.org_id = coalesce(m.org_id, 0)
)
SELECT user_id, charged, owed, delta FROM moved"""


def apply_upstream_bill(cur, settlement_id, upstream_cost, prompt_tokens, completion_tokens):
    """Charge one request what upstream billed (times its markup) instead of its provisional
    charge; return {user_id, charged, owed, delta}, or None when it was reconciled already."""
    params = {
        "settlement_id": settlement_id,
        "upstream_cost": upstream_cost,
        "prompt": prompt_tokens,
        "completion": completion_tokens,
    }
    cur.execute(_APPLY, params)
    return cur.fetchone()


def postpone(cur, settlement_id, delay_seconds):
    """Count a failed attempt and schedule the next one ``delay_seconds`` from now."""
    cur.execute(
        "UPDATE generation_lookups SET attempts = attempts + 1,"
        " next_attempt_at = now() + make_interval(secs => %s) WHERE settlement_id = %s::uuid",
        (delay_seconds, settlement_id),
    )


def drop(cur, settlement_id):
    """Stop looking a generation up: its provisional charge stands."""
    cur.execute("DELETE FROM generation_lookups WHERE settlement_id = %s::uuid", (settlement_id,))


def pending(cur):
    """How many lookups wait, and the oldest one's age in seconds (None: none)."""
    cur.execute(
        "SELECT count(*) AS pending, extract(epoch FROM now() - min(created_at))::float AS oldest_seconds"
        " FROM generation_lookups"
    )
    return cur.fetchone()
