"""Spend-report timings: /admin/reports/usage and /user/usage over 90 days of 5M usage rows.

``.venv/bin/python -m bench.reports [--usage-rows N] [--days N] [--users N] [--runs N]``

Seeds a scratch database (embedded Postgres and Redis in a temporary folder) with users, two
keys each and usage records spread over ``--days`` days (each user on three of eight models;
a team tag on most requests, a feature tag on a third, a tenth untagged), times the usage_rollup
job's rewrite of every day (what sql/0017's backfill does at deploy), then times each report
server-side with Flask's test client. Prints one line per report: median, p95 and max over
``--runs`` requests. A report's cost follows the number of rollup rows in its range
(days x active (user, key, model) combinations, x tags for a tag report), not the usage rows.
"""

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg2

from bench.scratch import ADMIN_KEY, scratch_app, scratch_database

USER_KEY_NAME = "bench-user-key"

_USERS = """
INSERT INTO users (email, plan, credits) SELECT 'bench-' || i || '@example.com', 'team', 100
FROM generate_series(1, %(users)s) AS i
"""

# Two keys per user: ids 2u-1 and 2u (the bench database is fresh).
_KEYS = """
INSERT INTO api_keys (user_id, name, key_hash, prefix, last4)
SELECT u, 'key-' || k, 'hash-' || u || '-' || k, 'gw_live_abc', lpad((u * 2 + k)::text, 4, '0')
FROM generate_series(1, %(users)s) AS u, generate_series(0, 1) AS k ORDER BY u, k
"""

_USAGE = """
INSERT INTO usage_records (request_id, user_id, api_key_id, model, prompt_tokens, completion_tokens, total_tokens,
    cost, status, latency_ms, created_at, tags)
SELECT 'bench-' || i, u, 2 * u - 1 + (i / %(users)s) %% 2, 'model-' || (u + (i / (2 * %(users)s)) %% 3) %% 8,
       100 + i %% 300, 20 + i %% 200, 120 + i %% 300 + i %% 200, 0.0001 * (1 + i %% 7),
       CASE WHEN i %% 50 = 0 THEN 'upstream_error' ELSE 'success' END, 200 + (i::bigint * 7919) %% 1500,
       now() - make_interval(secs => 86400.0 * %(days)s * (%(rows)s - i) / %(rows)s + 1),
       CASE WHEN i %% 10 = 0 THEN '{}'::text[]
            WHEN i %% 3 = 0 THEN ARRAY['team-' || u %% 20, 'feature-' || i %% 5]
            ELSE ARRAY['team-' || u %% 20] END
FROM generate_series(1, %(rows)s) AS i, LATERAL (SELECT 1 + i %% %(users)s AS u) AS pick
"""


def seed(url, usage_rows, days, users):
    """Fill the scratch database (a partition per month of the range), then ANALYZE."""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SET synchronous_commit = off")
        cur.execute(
            "SELECT ensure_usage_partition(m::date) FROM generate_series(date_trunc('month', now() - %s * interval"
            " '1 day'), now(), interval '1 month') AS m",
            (days,),
        )
        for label, statement in (("users", _USERS), ("api_keys", _KEYS), ("usage_records", _USAGE)):
            started = time.perf_counter()
            cur.execute(statement, {"rows": usage_rows, "users": users, "days": days})
            print(f"  seeded {cur.rowcount:>9,} {label} in {time.perf_counter() - started:.1f} s")
        cur.execute("VACUUM ANALYZE")
    conn.close()


def roll_up_everything(app, days):
    """The report rollups of every seeded day, as the usage_rollup job writes them; print the time and rows."""
    from ops_gateway.core import db
    from ops_gateway.maintenance import queries

    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    with app.app_context(), db.transaction() as cur:
        db.set_local(cur, "statement_timeout", "30min")
        started = time.perf_counter()
        rows, _ = queries.rewrite_report_days(cur, end - timedelta(days=days + 1), end)
        elapsed = time.perf_counter() - started
        cur.execute(
            "SELECT (SELECT count(*) FROM usage_key_daily) AS keys, (SELECT count(*) FROM usage_tag_daily) AS tags"
        )
        counts = cur.fetchone()
    print(
        f"  rollup of {days + 1} days: {rows:,} rows in {elapsed:.1f} s"
        f" ({counts['keys']:,} per key, {counts['tags']:,} per tag)"
    )
    with app.app_context(), db.transaction() as cur:
        cur.execute("ANALYZE usage_key_daily")
        cur.execute("ANALYZE usage_tag_daily")


def timed(client, path, headers):
    """Milliseconds for one GET (which must succeed)."""
    started = time.perf_counter()
    response = client.get(path, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:300])
    return elapsed


def summary(label, samples):
    """One report line: median, p95, max."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"  {label:<58} median {statistics.median(ordered):7.1f} ms   p95 {p95:7.1f} ms   max {ordered[-1]:7.1f} ms")


def user_key(app):
    """A real key for user 1 (made through the service, so /user/usage authenticates it)."""
    from ops_gateway.accounts import api_keys
    from ops_gateway.core import db

    with app.test_request_context(), db.transaction() as cur:
        _, full_key = api_keys.create_key(cur, 1, USER_KEY_NAME, "admin:bench")
    return full_key


def measure(app, runs):
    """Time the 90-day reports in several groupings, as JSON and CSV, then /user/usage."""
    client = app.test_client()
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    today = datetime.now(UTC).date()
    span = f"start_date={today - timedelta(days=89)}&end_date={today}"
    for query in ("group_by=day", "group_by=model", "group_by=user", "group_by=tag", "group_by=model,day",
                  "group_by=user,day&format=csv", "group_by=key"):  # fmt: skip
        path = f"/admin/reports/usage?{query}&{span}"
        summary(f"admin 90 days, {query}", [timed(client, path, admin) for _ in range(runs)])
    caller = {"Authorization": f"Bearer {user_key(app)}"}
    for query in ("group_by=day", "group_by=key,model,day", "group_by=tag"):
        path = f"/user/usage?{query}&{span}"
        summary(f"/user/usage 90 days, {query}", [timed(client, path, caller) for _ in range(runs)])


def main(argv=None):
    """Seed a scratch database, roll it up, time the reports, remove everything."""
    parser = argparse.ArgumentParser(prog="python -m bench.reports", description=__doc__)
    parser.add_argument("--usage-rows", type=int, default=5_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    with scratch_database("gw-bench-reports-") as (database_url, folder):
        print(f"seeding {args.usage_rows:,} usage rows over {args.days} days, {args.users:,} users with 2 keys each")
        seed(database_url, args.usage_rows, args.days, args.users)
        app = scratch_app(
            database_url, folder, ADMIN_RATE_LIMIT="100000 per minute", USER_RATE_LIMIT="100000 per minute"
        )
        roll_up_everything(app, args.days)
        print(f"report timings (server side, {args.runs} requests each):")
        measure(app, args.runs)
        app.extensions["ops_gateway.db"].reset()


if __name__ == "__main__":
    main()
