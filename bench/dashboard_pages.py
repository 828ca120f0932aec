"""Dashboard page timings with a million usage rows in the last 24 hours.

``.venv/bin/python -m bench.dashboard_pages [--usage-rows N] [--audit-rows N] [--users N] [--runs N]``

Seeds a scratch database (embedded Postgres and Redis in a temporary folder) with usage records
spread over the last 24 hours, users and audit rows, signs in through the form with Flask's test
client, and times every page server-side: the overview cold (no 5-minute buckets stored yet, as
after a deploy without the clock), after the scheduler's fill, and warm; then each other page.
Prints one line per page: median, p95 and max over ``--runs`` requests.
"""

import argparse
import re
import statistics
import time

import psycopg2

from bench.scratch import ADMIN_KEY, scratch_app, scratch_database

PAGES = (
    "/dashboard/users",
    "/dashboard/users?q=bench-7",
    "/dashboard/users/42",
    "/dashboard/audit",
    "/dashboard/audit?action=credits_adjusted",
    "/dashboard/audit?view=security",
    "/dashboard/models",
    "/dashboard/jobs",
    "/status",
)

_USERS = """
INSERT INTO users (email, plan, credits) SELECT 'bench-' || i || '@example.com', 'team', 100
FROM generate_series(1, %(users)s) AS i
"""

# Spread evenly over the last 24 hours (newest a few seconds ago), ~2% errors.
_USAGE = """
INSERT INTO usage_records (request_id, user_id, model, prompt_tokens, completion_tokens, total_tokens, cost, status,
    latency_ms, created_at)
SELECT 'bench-' || i, 1 + i %% %(users)s, 'model-' || i %% 5, 100 + i %% 300, 20 + i %% 200, 120 + i %% 300 + i %% 200,
       0.0001 * (1 + i %% 7), CASE WHEN i %% 50 = 0 THEN 'error' ELSE 'success' END, 200 + (i::bigint * 7919) %% 1500,
       now() - make_interval(secs => 86400.0 * (%(rows)s - i) / %(rows)s + 1)
FROM generate_series(1, %(rows)s) AS i
"""

_AUDIT = """
INSERT INTO api_key_audit_logs (user_id, action, actor, ip, details, created_at)
SELECT 1 + i %% %(users)s,
       (ARRAY['create', 'update', 'credits_adjusted', 'auth_failure', 'limits_updated'])[1 + i %% 5],
       'admin:bootstrap', '10.0.0.0'::inet + (i %% 250), '{"seed": true}',
       now() - make_interval(secs => 30 * 86400.0 * (%(rows)s - i) / %(rows)s)
FROM generate_series(1, %(rows)s) AS i
"""


def seed(url, usage_rows, audit_rows, users):
    """Fill the scratch database with generate_series inserts, then ANALYZE."""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SET synchronous_commit = off")
        for label, statement, params in (
            ("users", _USERS, {"users": users}),
            ("usage_records", _USAGE, {"rows": usage_rows, "users": users}),
            ("api_key_audit_logs", _AUDIT, {"rows": audit_rows, "users": users}),
        ):
            started = time.perf_counter()
            cur.execute(statement, params)
            print(f"  seeded {cur.rowcount:>9,} {label} in {time.perf_counter() - started:.1f} s")
        cur.execute(
            "INSERT INTO security_events (type, ip, details) SELECT 'ip_blocked', '10.1.0.0'::inet + i, '{}'"
            " FROM generate_series(1, 1000) AS i"
        )
        cur.execute("VACUUM ANALYZE")
    conn.close()


def timed(client, path):
    """Milliseconds for one GET (which must succeed)."""
    started = time.perf_counter()
    response = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (path, response.status_code)
    return elapsed


def summary(label, samples):
    """One report line: median, p95, max."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"  {label:<42} median {statistics.median(ordered):7.1f} ms   p95 {p95:7.1f} ms   max {ordered[-1]:7.1f} ms")


def sign_in(client):
    """Sign in through the form like a browser."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/dashboard/login").get_data(as_text=True))
    response = client.post("/dashboard/login", data={"api_key": ADMIN_KEY, "csrf_token": token.group(1)})
    assert response.status_code == 302, response.status_code


def measure(app, runs):
    """Time the overview in its three states, then every other page."""
    from ops_gateway.core import db
    from ops_gateway.dashboard import series as dashboard_series

    client = app.test_client()
    sign_in(client)
    summary("overview, first request after start", [timed(client, "/dashboard/")])
    with app.app_context(), db.transaction() as cur:
        cur.execute("DELETE FROM usage_5m")
    summary("overview, cold data (no buckets stored)", [timed(client, "/dashboard/")])
    with app.app_context(), db.transaction() as cur:
        started = time.perf_counter()
        filled = dashboard_series.fill(cur)
        fill_ms = (time.perf_counter() - started) * 1000
    print(f"  usage_rollup job's fill of the 5-minute buckets: {filled['filled']} buckets in {fill_ms:.0f} ms")
    summary("overview, warm", [timed(client, "/dashboard/") for _ in range(runs)])
    for path in PAGES:
        summary(path, [timed(client, path) for _ in range(runs)])


def main(argv=None):
    """Seed a scratch database, time the pages, remove everything."""
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_pages", description=__doc__)
    parser.add_argument("--usage-rows", type=int, default=1_000_000)
    parser.add_argument("--audit-rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    with scratch_database("gw-bench-dashboard-") as (database_url, folder):
        print(f"seeding {args.usage_rows:,} usage rows over 24 h, {args.audit_rows:,} audit rows, {args.users:,} users")
        seed(database_url, args.usage_rows, args.audit_rows, args.users)
        app = scratch_app(database_url, folder)
        print(f"page timings (server side, {args.runs} requests each):")
        measure(app, args.runs)
        app.extensions["ops_gateway.db"].reset()


if __name__ == "__main__":
    main()
