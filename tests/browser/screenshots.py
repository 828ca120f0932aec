"""``make screenshots``: 1280×800 PNGs of every dashboard page, on scratch servers with demo data.

Starts an embedded Postgres and Redis in a temporary folder, the fake OpenRouter and gunicorn,
creates users and traffic through the API, adds a day of usage history, a few security events
and an alert, runs some jobs, then signs in with headless Chromium and saves each page.

    python -m tests.browser.screenshots [OUTPUT_DIR]   (default docs/screenshots)
"""

import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import psycopg2
import requests

from ops_gateway.core import embedded, migrations
from ops_gateway.core.db import Database
from tests.browser.chromium import Browser
from tests.e2e.servers import ROOT, start_fake_openrouter, start_gateway

USERS = [
    ("alice@acme.io", "team", "250.00", "admin"),
    ("bob@acme.io", "team", "120.00", "user"),
    ("carol@globex.com", "enterprise", "4800.00", "user"),
    ("dan@initech.dev", "dev", "35.50", "user"),
    ("erin@umbrella.org", "dev", "12.00", "user"),
    ("frank@hooli.com", "trial", "5.00", "user"),
    ("grace@piedpiper.io", "team", "640.00", "user"),
    ("heidi@stark.co", "trial", "0.75", "user"),
]
JOBS_TO_RUN = ("refresh_model_cache", "cache_cleanup", "release_stale_holds", "db_maintenance", "usage_rollup")
PAGES = [
    ("overview", "/dashboard/"),
    ("users", "/dashboard/users"),
    ("user", "/dashboard/users/{carol}"),
    ("orgs", "/dashboard/orgs"),
    ("org", "/dashboard/orgs/{acme}"),
    ("requests", "/dashboard/requests"),
    ("request", "/dashboard/requests/report-0"),
    ("audit", "/dashboard/audit"),
    ("security", "/dashboard/audit?view=security"),
    ("models", "/dashboard/models"),
    ("jobs", "/dashboard/jobs"),
    ("status", "/status"),
]

# A day of traffic: a daily curve, 1% errors, and a half-hour incident seven hours ago (errors and
# slow responses). random() is reseeded so every run draws the same picture.
_HISTORY = """
INSERT INTO usage_records (request_id, user_id, model, prompt_tokens, completion_tokens, total_tokens, cost,
    status, upstream_status, error_code, latency_ms, upstream_latency_ms, created_at)
SELECT 'demo-' || b.n || '-' || r.i, t.user_id, m.model, t.p, t.c, t.p + t.c,
       CASE WHEN t.failed THEN 0 ELSE round(t.p * m.prompt + t.c * m.completion, 10) END,
       CASE WHEN t.failed THEN 'error' ELSE 'success' END, CASE WHEN t.failed THEN 502 ELSE 200 END,
       CASE WHEN t.failed THEN 'unavailable' END, t.latency, t.latency - 4,
       b.at + r.i * interval '5 minutes' / shape.total
FROM (SELECT n, now() - interval '24 hours' + n * interval '5 minutes' AS at FROM generate_series(0, 287) AS n) b
CROSS JOIN LATERAL (
    SELECT abs(extract(epoch FROM now() - b.at) - 7 * 3600) < 1800 AS incident,
           greatest(15, (120 + 85 * sin(2 * pi() * (extract(hour FROM b.at) + extract(minute FROM b.at) / 60 - 8) / 24)
                         + random() * 25 + b.n * 0)::int) AS total) shape
CROSS JOIN LATERAL generate_series(1, shape.total) AS r(i)
CROSS JOIN LATERAL (
    SELECT (%(users)s::bigint[])[1 + floor(random() * %(user_count)s + r.i * 0)::int] AS user_id,
           floor(random() * 4 + r.i * 0)::int AS model_index,
           (150 + random() * 1600)::int AS p, (40 + random() * 500)::int AS c,
           random() < CASE WHEN shape.incident THEN 0.2 ELSE 0.01 END AS failed,
           CASE WHEN shape.incident THEN 2400 ELSE 380 END + 500 * random() + 2500 * power(random(), 8) AS latency) t
JOIN (VALUES (0, 'openai/gpt-4o-mini', 0.00000015, 0.0000006),
             (1, 'anthropic/claude-3.5-sonnet', 0.000003, 0.000015),
             (2, 'meta-llama/llama-3.1-8b-instruct', 0.00000002, 0.00000005),
             (3, 'google/gemini-flash-1.5', 0.000000075, 0.0000003)) AS m(idx, model, prompt, completion)
  ON m.idx = t.model_index
"""

_SECURITY_EVENTS = """
INSERT INTO security_events (type, user_id, ip, details, count, created_at, last_seen_at) VALUES
 ('ip_blocked', NULL, '198.51.100.23', '{"reason": "repeated_auth_failures", "block_seconds": 900}', 1,
  now() - interval '3 hours', now() - interval '3 hours'),
 ('rate_limit_exceeded', %(frank)s, '203.0.113.40', '{"window": "requests_per_minute", "limit": 10}', 37,
  now() - interval '95 minutes', now() - interval '80 minutes'),
 ('new_ip_for_key', %(carol)s, '192.0.2.77', '{"key": "gw_live_c4r…9xQe"}', 1,
  now() - interval '50 minutes', now() - interval '50 minutes'),
 ('suspicious_activity', %(grace)s, NULL, '{"requests_this_hour": 940, "baseline_requests_per_hour": "61.2"}', 1,
  now() - interval '20 minutes', now() - interval '20 minutes')
"""

_ALERT = """
INSERT INTO alerts (rule, status, severity, message, value, threshold, fired_at)
VALUES ('error_rate', 'firing', 'warning', 'error rate 6.1% over the last 5 minutes', 6.1, 5,
        now() - interval '12 minutes')
"""


def _api(gateway, method, path, key, **kwargs):
    """One call to the running gateway's API with a bearer key; the JSON body."""
    kwargs.setdefault("timeout", 30)
    response = requests.request(method, f"{gateway.url}{path}", headers={"Authorization": f"Bearer {key}"}, **kwargs)
    response.raise_for_status()
    return response.json()


def seed(gateway, database_url, admin_key):
    """Users, traffic, history, events, an alert and job runs; the {name: user id} of the users."""
    ids, keys = {}, {}
    for email, plan, credits, role in USERS:
        body = {"email": email, "plan": plan, "credits": credits, "role": role}
        created = _api(gateway, "POST", "/admin/users", admin_key, json=body)
        ids[email.split("@")[0]], keys[email] = created["user"]["id"], created["api_key"]
    _api(
        gateway, "POST", f"/admin/users/{ids['carol']}/credits", admin_key, json={"amount": "500", "reason": "PO-1187"}
    )
    _api(
        gateway, "POST", f"/admin/users/{ids['heidi']}/credits", admin_key, json={"amount": "-0.25", "reason": "refund"}
    )
    limits = {"user_id": ids["carol"], "rate_limits": {"requests_per_minute": 2000, "tokens_per_minute": 8000000}}
    _api(gateway, "POST", "/admin/limit", admin_key, json=limits)
    org = _api(gateway, "POST", "/admin/orgs", admin_key, json={"name": "Acme", "plan": "team", "credits": "1000"})
    ids["acme"] = org["id"]
    for name, role, budget in (("alice", "owner", None), ("bob", "member", "50")):
        member = {"user_id": ids[name], "role": role, **({"budget": budget} if budget else {})}
        _api(gateway, "POST", f"/admin/orgs/{org['id']}/members", admin_key, json=member)
    org_key = _api(gateway, "POST", "/user/api-keys", keys["bob@acme.io"], json={"name": "acme", "org_id": org["id"]})
    for index in range(12):
        body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": f"summarise report {index}"}]}
        key = org_key["api_key"] if index % 3 == 0 else keys["bob@acme.io"]
        headers = {"Authorization": f"Bearer {key}", "X-Request-ID": f"report-{index}"}
        requests.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=30).raise_for_status()
    for _ in range(3):
        requests.get(f"{gateway.url}/user/balance", headers={"Authorization": "Bearer gw_live_guess"}, timeout=10)
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT setseed(0.42)")
        cur.execute(_HISTORY, {"users": list(ids.values()), "user_count": len(ids)})
        cur.execute(_SECURITY_EVENTS, ids)
    for job in JOBS_TO_RUN:
        _api(gateway, "POST", f"/admin/jobs/{job}/run", admin_key, timeout=120)
    with conn.cursor() as cur:
        cur.execute(_ALERT)
    conn.close()
    return ids


def capture(gateway, admin_key, ids, output):
    """Sign in and save one PNG per page."""
    browser = Browser()
    try:
        browser.open(f"{gateway.url}/dashboard/login")
        browser.driver.save_screenshot(str(output / "login.png"))
        browser.sign_in(gateway.url, admin_key)
        for name, path in PAGES:
            browser.open(gateway.url + path.format(**ids))
            browser.find("body")
            browser.driver.save_screenshot(str(output / f"{name}.png"))
            print(f"  {output / name}.png")
    finally:
        browser.quit()


def main(output="docs/screenshots"):
    """Start everything in a scratch folder, seed, capture, and clean up."""
    output = (ROOT / output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="gw-screenshots-"))
    servers = []
    try:
        database_url = embedded.ensure_postgres(scratch)
        migrations.migrate(Database(database_url))
        admin_key = "gw_admin_" + secrets.token_urlsafe(24)
        upstream = start_fake_openrouter(scratch)
        servers.append(upstream)
        settings = {
            "DATABASE_URL": database_url,
            "REDIS_URL": embedded.ensure_redis(scratch),
            "KEY_HASH_SECRET": secrets.token_urlsafe(24),
            "ADMIN_API_KEY": admin_key,
            "OPENROUTER_BASE_URL": upstream.base_url,
            "INSTANCE_PATH": str(scratch),
        }
        gateway = start_gateway(scratch, settings, workers=2, threads=4)
        servers.append(gateway)
        ids = seed(gateway, database_url, admin_key)
        capture(gateway, admin_key, ids, output)
    finally:
        for server in reversed(servers):
            server.stop()
        embedded.stop_redis(scratch)
        embedded.stop_postgres(scratch)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
