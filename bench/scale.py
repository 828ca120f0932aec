"""Data-scale checks: monitors over 5M usage rows and audit-log queries over 1M audit rows."""

import time

import requests

from bench import seed
from bench.environment import ADMIN
from bench.load import time_sequential

REQUESTS = 50
# (label, path, caller, target p95 ms); caller "admin" is the bootstrap key, "user" a seeded user's key.
CHECKS = (
    ("admin monitor", "/admin/monitor", "admin", 200),
    ("user monitor", "/user/monitor", "user", 50),
    ("user audit logs", "/user/api-keys/audit-logs", "user", 50),
    ("admin audit logs", "/admin/audit-logs", "admin", 50),
    ("admin audit logs, one user", "/admin/audit-logs?user_id={user_id}", "admin", 50),
    ("admin audit logs, one action", "/admin/audit-logs?action=rotate", "admin", 50),
)


def _documented_paths(base_url):
    """The paths this build serves, from its OpenAPI document (the monitors may not exist yet)."""
    return set(requests.get(f"{base_url}/openapi.json", timeout=30).json()["paths"])


def run(env, usage_rows, audit_rows):
    """Seed, then time each check's p50/p95 over sequential requests; return (results, markdown lines)."""
    user_id, key = env.create_user("bench-scale@example.com", plan="team", unlimited=False)
    print(f"  seeding {usage_rows} usage_records and {audit_rows} api_key_audit_logs ...", flush=True)
    started = time.perf_counter()
    seed.seed(env.database_url, usage_rows, audit_rows)
    seeded_in = time.perf_counter() - started
    print(f"  seeded in {seeded_in:.0f}s", flush=True)
    paths = _documented_paths(env.gateway.url)
    callers = {"admin": ADMIN, "user": {"Authorization": f"Bearer {key}"}}
    results = []
    for label, path, caller, target in CHECKS:
        if path.split("?")[0] not in paths:
            print(f"  {label:<30} SKIPPED: {path} does not exist in this build", flush=True)
            results.append((label, path, target, None))
            continue
        timing = time_sequential(f"{env.gateway.url}{path.format(user_id=user_id)}", REQUESTS, callers[caller])
        verdict = "met" if timing["p95"] < target else "MISSED"
        print(
            f"  {label:<30} p50 {timing['p50']:7.1f} ms  p95 {timing['p95']:7.1f} ms"
            f"  (target < {target} ms: {verdict})",
            flush=True,
        )
        results.append((label, path, target, timing))
    lines = [
        f"Seeded {usage_rows:,} usage_records (60 days, ~1000 users, 5 models), usage_daily_totals and"
        f" usage_rollups (hour and day) derived from them, and {audit_rows:,} api_key_audit_logs rows"
        f" in {seeded_in:.0f}s. {REQUESTS} sequential requests per check, after 3 warm-up requests;"
        " the user is one of the ~1000.",
        "",
        "| check | request | p50 ms | p95 ms | target | |",
        "|---|---|---|---|---|---|",
    ]
    for label, path, target, timing in results:
        if timing is None:
            lines.append(f"| {label} | `{path}` | - | - | < {target} ms | skipped: endpoint not built yet |")
        else:
            verdict = "met" if timing["p95"] < target else "**missed**"
            lines.append(
                f"| {label} | `{path}` | {timing['p50']:.1f} | {timing['p95']:.1f} | < {target} ms | {verdict} |"
            )
    return results, lines
