"""The observability read models' SQL: health probes, job status and security events.

Usage figures have their own module, ``usage_queries``.

Plain functions taking the cursor first and returning rows as dicts.
"""

from ops_gateway.core.sql_where import Where

# Health


def health_probe(cur):
    """The user count and the model catalogue's fetch times, or None before the catalogue row exists."""
    cur.execute(
        "SELECT (SELECT value FROM table_counts WHERE name = 'users') AS user_count,"
        " fetched_at, last_attempt_at, last_error_at FROM model_catalog WHERE id = 1"
    )
    return cur.fetchone()


def table_count(cur, name):
    """A row count kept by triggers in table_counts."""
    cur.execute("SELECT value FROM table_counts WHERE name = %s", (name,))
    return cur.fetchone()["value"]


def database_size(cur):
    """Bytes the current database takes on disk."""
    cur.execute("SELECT pg_database_size(current_database()) AS size_bytes")
    return cur.fetchone()["size_bytes"]


_LAST_JOB_RUNS = """
WITH RECURSIVE jobs AS (
    (SELECT job FROM job_runs ORDER BY job LIMIT 1)
    UNION ALL
    SELECT (SELECT r.job FROM job_runs r WHERE r.job > jobs.job ORDER BY r.job LIMIT 1) FROM jobs
    WHERE jobs.job IS NOT NULL
)
SELECT last.* FROM jobs CROSS JOIN LATERAL (
    SELECT job, status, started_at, finished_at, duration_ms, error FROM job_runs r
    WHERE r.job = jobs.job ORDER BY started_at DESC LIMIT 1) last
"""


def last_job_runs(cur):
    """{job: its last run's status and times}."""
    cur.execute(_LAST_JOB_RUNS)
    return {row.pop("job"): row for row in cur.fetchall()}


# Security events

# Written so the planner merges the two (created_at, id) indexes in order instead of sorting the
# whole range before the first row: exactly matching column types, the range outside the union.
_AUDIT_REPORT = """
SELECT * FROM (
    SELECT 'audit'::text AS source, id, created_at, action AS type, actor, user_id, api_key_id, host(ip) AS ip,
           user_agent, request_id, 1 AS count, details
    FROM api_key_audit_logs
    UNION ALL
    SELECT 'security'::text, id, created_at, type, NULL::text, user_id, api_key_id, host(ip), NULL::text, NULL::text,
           count, details
    FROM security_events
) events
WHERE created_at >= %(start)s AND created_at <= %(end)s
ORDER BY created_at, id
"""

# Users far above their own hourly average of the previous 7 days (usage_daily_totals), not yet
# flagged this hour. Only users past the floors are looked up, so the current hour is the only
# stretch of usage_records read.
_SUSPICIOUS = """
WITH this_hour AS (
    SELECT user_id, count(*) AS requests, sum(cost) AS cost,
           'suspicious:' || user_id || ':' || to_char(date_trunc('hour', now()), 'YYYYMMDDHH24') AS dedupe_key
    FROM usage_records WHERE created_at >= date_trunc('hour', now())
    GROUP BY user_id
    HAVING count(*) > %(min_requests)s OR sum(cost) > %(min_cost)s
), baseline AS (
    SELECT t.user_id, sum(t.requests)::numeric / %(hours)s AS requests, sum(t.cost) / %(hours)s AS cost
    FROM usage_daily_totals t JOIN this_hour h ON h.user_id = t.user_id
    WHERE t.day >= (now() AT TIME ZONE 'UTC')::date - 7 AND t.day < (now() AT TIME ZONE 'UTC')::date
    GROUP BY t.user_id
)
SELECT h.user_id, h.requests, h.cost, h.dedupe_key,
       round(coalesce(b.requests, 0), 2) AS baseline_requests, round(coalesce(b.cost, 0), 6) AS baseline_cost
FROM this_hour h LEFT JOIN baseline b ON b.user_id = h.user_id
WHERE NOT EXISTS (SELECT 1 FROM security_events e WHERE e.dedupe_key = h.dedupe_key)
  AND (h.requests > greatest(%(factor)s * coalesce(b.requests, 0), %(min_requests)s)
       OR h.cost > greatest(%(factor)s * coalesce(b.cost, 0), %(min_cost)s))
"""


def start_audit_report(cur, start, end):
    """Every audit row and security event in [start, end], oldest first, on ``cur`` (a server-side cursor)."""
    cur.execute(_AUDIT_REPORT, {"start": start, "end": end})


def security_events_page(cur, event_type=None, user_id=None, ip=None, start=None, end=None, limit=100, cursor=None):
    """A newest-first page of security events; each filter maps onto an index."""
    where = Where().equal("type", event_type).equal("user_id", user_id).equal("ip", ip, cast="::inet")
    where.between("created_at", start, end).older_than_cursor(cursor)
    cur.execute(
        "SELECT id, type, user_id, api_key_id, host(ip) AS ip, details, count, created_at, last_seen_at"
        f" FROM security_events WHERE {where.sql} ORDER BY created_at DESC, id DESC LIMIT %s",
        where.params + [limit],
    )
    return cur.fetchall()


def auth_failures_since(cur, minutes):
    """Failed authentications audited in the last ``minutes``."""
    cur.execute(
        "SELECT count(*) AS n FROM api_key_audit_logs"
        " WHERE action = 'auth_failure' AND created_at >= now() - make_interval(mins => %s)",
        (minutes,),
    )
    return cur.fetchone()["n"]


def rate_limit_rejections_since(cur, minutes):
    """429s for rate limits in the last ``minutes`` (events fold a key's repeats per minute into ``count``)."""
    cur.execute(
        "SELECT coalesce(sum(count), 0)::bigint AS n FROM security_events"
        " WHERE type = 'rate_limit_exceeded' AND created_at >= now() - make_interval(mins => %s)",
        (minutes,),
    )
    return cur.fetchone()["n"]


def suspicious_users(cur, factor, min_requests, min_cost, baseline_hours):
    """Users whose usage this hour is past the floors and ``factor`` times their baseline, not flagged yet."""
    params = {"factor": factor, "min_requests": min_requests, "min_cost": min_cost, "hours": baseline_hours}
    cur.execute(_SUSPICIOUS, params)
    return cur.fetchall()
