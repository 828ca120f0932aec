"""The usage figures' SQL: usage_daily_totals per user, model, endpoint and UTC day, and short windows of
usage_records.

Plain functions taking the cursor first and returning rows as dicts; read by ``usage_metrics``.
"""

from ops_gateway.upstream.failures import CLIENT_CAUSED as _CLIENT_CAUSED_KINDS

# The error codes of failures the client caused, as an SQL list (fixed strings, never input).
CLIENT_CAUSED = ", ".join(f"'{kind}'" for kind in _CLIENT_CAUSED_KINDS)

# Per (billed) model and endpoint: all-time, this month and today, over the days {where} selects
# (one of USAGE_SCOPES).
_USAGE_BY_MODEL_AND_ENDPOINT = """
SELECT model, endpoint, sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,
       sum(prompt_tokens)::bigint AS prompt_tokens, sum(completion_tokens)::bigint AS completion_tokens,
       sum(cost) AS cost,
       coalesce(sum(requests) FILTER (WHERE day = %(today)s), 0)::bigint AS requests_today,
       coalesce(sum(prompt_tokens + completion_tokens) FILTER (WHERE day = %(today)s), 0)::bigint AS tokens_today,
       coalesce(sum(cost) FILTER (WHERE day = %(today)s), 0) AS cost_today,
       coalesce(sum(requests) FILTER (WHERE day >= %(month)s), 0)::bigint AS requests_month,
       coalesce(sum(prompt_tokens + completion_tokens) FILTER (WHERE day >= %(month)s), 0)::bigint AS tokens_month,
       coalesce(sum(cost) FILTER (WHERE day >= %(month)s), 0) AS cost_month,
       max(last_request_at) AS last_request_at
FROM usage_daily_totals WHERE {where} GROUP BY model, endpoint
"""

_TOP_USERS_ON = """
SELECT top.user_id, top.requests, top.tokens_used, top.cost, k.prefix, k.last4
FROM (SELECT user_id, sum(requests)::bigint AS requests,
             sum(prompt_tokens + completion_tokens)::bigint AS tokens_used,
             sum(cost) AS cost
      FROM usage_daily_totals WHERE day = %s GROUP BY user_id
      ORDER BY requests DESC, cost DESC LIMIT %s) top
LEFT JOIN LATERAL (SELECT prefix, last4 FROM api_keys WHERE user_id = top.user_id
                   ORDER BY status = 'active' DESC, last_used_at DESC NULLS LAST LIMIT 1) k ON true
ORDER BY top.requests DESC, top.cost DESC
"""

_RECENT_WINDOWS = f"""
SELECT count(*) FILTER (WHERE created_at >= now() - interval '1 minute') AS requests_1m,
       count(*) FILTER (WHERE created_at >= now() - interval '5 minutes') AS requests_5m,
       count(*) FILTER (WHERE created_at >= now() - interval '5 minutes' AND status = 'error') AS errors_5m,
       count(*) FILTER (WHERE created_at >= now() - interval '5 minutes' AND status = 'error'
                        AND coalesce(error_code, '') NOT IN ({CLIENT_CAUSED})) AS failures_5m,
       count(*) AS requests_1h, count(*) FILTER (WHERE status = 'error') AS errors_1h,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms)
           FILTER (WHERE created_at >= now() - interval '5 minutes') AS latency,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY upstream_latency_ms)
           FILTER (WHERE created_at >= now() - interval '5 minutes') AS upstream_latency
FROM usage_records WHERE created_at >= now() - interval '1 hour'
"""


def utc_today(cur):
    """Today's date by the database's UTC clock (the one settlement uses)."""
    cur.execute("SELECT (now() AT TIME ZONE 'UTC')::date AS today")
    return cur.fetchone()["today"]


# The days each per-(model, endpoint) total covers (``days`` gives today and the first of the month).
USAGE_SCOPES = {
    "user": "user_id = %(user_id)s",
    "today": "day = %(today)s",
    "before_today": "day < %(today)s",
    "since": "day >= %(since)s AND day < %(today)s",
}


def usage_by_model_and_endpoint(cur, days, scope, **params):
    """Per-(model, endpoint) totals over the days of a USAGE_SCOPES ``scope`` (with its parameters:
    user_id, since)."""
    cur.execute(_USAGE_BY_MODEL_AND_ENDPOINT.format(where=USAGE_SCOPES[scope]), {**days, **params})
    return cur.fetchall()


def active_users_on(cur, day):
    """How many users made a request on this UTC day."""
    cur.execute("SELECT count(DISTINCT user_id) AS active FROM usage_daily_totals WHERE day = %s", (day,))
    return cur.fetchone()["active"]


def top_users_on(cur, day, limit):
    """The heaviest users of a UTC day by requests, with the prefix and last4 of their most recently used key."""
    cur.execute(_TOP_USERS_ON, (day, limit))
    return cur.fetchall()


def top_orgs_on(cur, day, limit):
    """The heaviest orgs of a UTC day by requests (their org keys' use), with their balance."""
    cur.execute(
        "SELECT t.org_id, o.name, o.credits, sum(t.requests)::bigint AS requests,"
        " sum(t.prompt_tokens + t.completion_tokens)::bigint AS tokens_used, sum(t.cost) AS cost"
        " FROM usage_daily_totals t JOIN organizations o ON o.id = t.org_id"
        " WHERE t.day = %s AND t.org_id <> 0 GROUP BY t.org_id, o.name, o.credits"
        " ORDER BY requests DESC, t.org_id LIMIT %s",
        (day, limit),
    )
    return cur.fetchall()


def cache_hits_last_hour(cur):
    """Requests settled in the last hour and how many of them the response cache answered."""
    cur.execute(
        "SELECT count(*) AS requests_1h, count(*) FILTER (WHERE cache_hit) AS hits_1h"
        " FROM usage_records WHERE created_at >= now() - interval '1 hour'"
    )
    return cur.fetchone()


def org_count(cur):
    """How many organizations there are (a small table: counted as it is)."""
    cur.execute("SELECT count(*) AS n FROM organizations")
    return cur.fetchone()["n"]


def recent_completions(cur, limit):
    """The newest completions of the last hour."""
    cur.execute(
        "SELECT request_id, user_id, endpoint, model, served_model, status, total_tokens, cost,"
        " round(latency_ms::numeric, 1) AS latency_ms, created_at"
        " FROM usage_records WHERE created_at >= now() - interval '1 hour' ORDER BY created_at DESC LIMIT %s",
        (limit,),
    )
    return cur.fetchall()


def recent_windows(cur):
    """Completion counts, errors and latency percentile arrays over the last 1/5/60 minutes.

    ``failures_5m`` leaves out the errors the client's own request caused (upstream's 400/422,
    recorded as ``bad_request``, and its moderation's 403, ``flagged``): only the gateway's and
    upstream's failures.
    """
    cur.execute(_RECENT_WINDOWS)
    return cur.fetchone()


# Upstream's reported cost against ours for the same requests, today and this month.
_RECONCILIATION = """
SELECT coalesce(sum(upstream_reported) FILTER (WHERE day = %(today)s), 0)::bigint AS requests_today,
       coalesce(sum(cost_upstream_reported) FILTER (WHERE day = %(today)s), 0) AS cost_today,
       coalesce(sum(upstream_cost) FILTER (WHERE day = %(today)s), 0) AS upstream_cost_today,
       coalesce(sum(upstream_reported), 0)::bigint AS requests_month,
       coalesce(sum(cost_upstream_reported), 0) AS cost_month,
       coalesce(sum(upstream_cost), 0) AS upstream_cost_month
FROM usage_daily_totals WHERE day >= %(month)s
"""


def reconciliation(cur, days):
    """Requests upstream reported a cost for, our cost and upstream's for them: today and this month."""
    cur.execute(_RECONCILIATION, days)
    return cur.fetchone()
