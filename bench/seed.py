"""Bulk data for the scale checks, generated inside Postgres (INSERT ... SELECT generate_series).

5M usage_records over the last 60 days, ~1000 users and five models; usage_daily_totals and
usage_rollups derived from them with one GROUP BY each (what the request path and the
scheduler's usage_rollup job would have written); 1M api_key_audit_logs rows.
"""

import time

import psycopg2

USERS = 1000
DAYS = 60
MODELS = (
    ("openai/gpt-4o-mini", "0.00000015", "0.0000006"),
    ("anthropic/claude-3.5-sonnet", "0.000003", "0.000015"),
    ("meta-llama/llama-3.1-8b-instruct", "0.00000002", "0.00000005"),
    ("google/gemini-flash-1.5", "0.000000075", "0.0000003"),
    ("mistralai/mistral-7b-instruct", "0.00000003", "0.000000055"),
)
ACTIONS = ("create", "update", "rotate", "delete", "auth_failure", "credits_adjusted", "limits_updated")

_USAGE = """
INSERT INTO usage_records (request_id, user_id, api_key_id, model, prompt_tokens, completion_tokens, total_tokens,
    cost, status, upstream_status, error_code, latency_ms, upstream_latency_ms, overhead_ms, streamed, created_at)
SELECT 'seed-' || i, u.user_id, u.api_key_id, m.model, t.p, t.c, t.p + t.c,
       CASE WHEN t.failed THEN 0 ELSE round(t.p * m.prompt + t.c * m.completion, 10) END,
       CASE WHEN t.failed THEN 'error' ELSE 'success' END, CASE WHEN t.failed THEN 502 ELSE 200 END,
       CASE WHEN t.failed THEN 'unavailable' END, 300 + i %% 900, 298 + i %% 900, 2, i %% 4 = 0,
       now() - make_interval(secs => (%(rows)s - i) * %(seconds)s::float8 / %(rows)s)
FROM generate_series(1::bigint, %(rows)s) AS i
CROSS JOIN LATERAL (SELECT 20 + (i * 37) %% 400 AS p, 5 + (i * 53) %% 300 AS c, i %% 50 = 0 AS failed) t
JOIN seed_users u ON u.idx = (i * 7919) %% %(users)s
JOIN seed_models m ON m.idx = (i / 3) %% %(models)s
"""

_DAILY_TOTALS = """
INSERT INTO usage_daily_totals AS d (day, user_id, model, requests, errors, prompt_tokens, completion_tokens, cost,
    last_request_at)
SELECT (created_at AT TIME ZONE 'UTC')::date, user_id, model, count(*), count(*) FILTER (WHERE status <> 'success'),
       sum(prompt_tokens), sum(completion_tokens), sum(cost), max(created_at)
FROM usage_records WHERE request_id LIKE 'seed-%' GROUP BY 1, 2, 3
ON CONFLICT (user_id, day, model, endpoint) DO UPDATE SET requests = d.requests + EXCLUDED.requests,
    errors = d.errors + EXCLUDED.errors, prompt_tokens = d.prompt_tokens + EXCLUDED.prompt_tokens,
    completion_tokens = d.completion_tokens + EXCLUDED.completion_tokens, cost = d.cost + EXCLUDED.cost,
    last_request_at = greatest(d.last_request_at, EXCLUDED.last_request_at)
"""

# The same aggregate as ops_gateway.rollups, over every row (the job recomputes windows this way).
_ROLLUPS = """
INSERT INTO usage_rollups (granularity, bucket_start, user_id, model, requests, errors, prompt_tokens,
    completion_tokens, cost, latency_ms_sum)
SELECT %(granularity)s, date_trunc(%(granularity)s, created_at, 'UTC'), user_id, model, count(*),
       count(*) FILTER (WHERE status <> 'success'), sum(prompt_tokens), sum(completion_tokens), sum(cost),
       sum(latency_ms)
FROM usage_records GROUP BY 2, 3, 4
"""

_AUDIT = """
INSERT INTO api_key_audit_logs (user_id, api_key_id, action, actor, ip, user_agent, request_id, details, created_at)
SELECT u.user_id, u.api_key_id, (%(actions)s::text[])[1 + i %% %(action_count)s], 'user:' || u.user_id,
       '10.0.0.0'::inet + (i %% 250), 'bench-seed', 'seed-audit-' || i, '{"seed": true}'::jsonb,
       now() - make_interval(secs => (%(rows)s - i) * %(seconds)s::float8 / %(rows)s)
FROM generate_series(1::bigint, %(rows)s) AS i
JOIN seed_users u ON u.idx = (i * 7919) %% %(users)s
"""


def _step(cur, label, statement, params=None):
    """Run one seeding statement and print its row count and duration."""
    started = time.perf_counter()
    cur.execute(statement, params)
    print(f"    {label}: {cur.rowcount if cur.rowcount >= 0 else '-'} rows in {time.perf_counter() - started:.1f}s")


def seed(database_url, usage_rows=5_000_000, audit_rows=1_000_000):
    """Fill the database; existing users (the bench callers) are among the ~1000 users."""
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    seconds = DAYS * 86400
    try:
        with conn.cursor() as cur:
            cur.execute("SET synchronous_commit = off")
            cur.execute(
                "SELECT ensure_usage_partition(m::date) FROM generate_series(date_trunc('month', now()"
                " - make_interval(days => %s)), date_trunc('month', now()), interval '1 month') AS m",
                (DAYS + 1,),
            )
            _step(
                cur,
                "users",
                "INSERT INTO users (email, plan, credits) SELECT 'seed-' || i || '@example.com', 'team', 100"
                " FROM generate_series(1, %s - (SELECT count(*) FROM users)) AS i",
                (USERS,),
            )
            _step(
                cur,
                "api_keys",
                "INSERT INTO api_keys (user_id, name, key_hash, prefix, last4) SELECT id, 'seed',"
                " md5('seed-key-' || id), 'gw_live_sd', 'seed' FROM users WHERE email LIKE 'seed-%'",
            )
            cur.execute(
                "CREATE TEMP TABLE seed_users AS SELECT row_number() OVER (ORDER BY u.id) - 1 AS idx, u.id AS user_id,"
                " (SELECT min(k.id) FROM api_keys k WHERE k.user_id = u.id) AS api_key_id FROM users u"
            )
            cur.execute("CREATE TEMP TABLE seed_models (idx int, model text, prompt numeric, completion numeric)")
            cur.executemany("INSERT INTO seed_models VALUES (%s, %s, %s, %s)", [(i, *m) for i, m in enumerate(MODELS)])
            cur.execute("SELECT count(*) FROM seed_users")
            users = cur.fetchone()[0]
            params = {"rows": usage_rows, "seconds": seconds, "users": users, "models": len(MODELS)}
            _step(cur, "usage_records", _USAGE, params)
            _step(cur, "usage_daily_totals", _DAILY_TOTALS)
            cur.execute("DELETE FROM usage_rollups")
            for granularity in ("hour", "day"):
                _step(cur, f"usage_rollups ({granularity})", _ROLLUPS, {"granularity": granularity})
            audit = {
                "rows": audit_rows,
                "seconds": seconds,
                "users": users,
                "actions": list(ACTIONS),
                "action_count": len(ACTIONS),
            }
            _step(cur, "api_key_audit_logs", _AUDIT, audit)
            for table in ("usage_records", "usage_daily_totals", "usage_rollups", "api_key_audit_logs", "users"):
                _step(cur, f"vacuum analyze {table}", f"VACUUM ANALYZE {table}")
    finally:
        conn.close()
