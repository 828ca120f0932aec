"""Throughput of the cheap read endpoints: /health, /user/balance, /v1/models (and /health/live)."""

from bench.cpu import CpuMeter
from bench.load import run_wrk

CONNECTIONS = 32
# /health/live touches nothing: the floor of gunicorn + Flask + our hooks, for comparison.
ENDPOINTS = ("/health/live", "/health", "/user/balance", "/v1/models")


def run(env, duration):
    """wrk against each endpoint at 32 connections; return (results, markdown lines)."""
    _, key = env.create_user("bench-endpoints@example.com")
    meter = CpuMeter(env)
    results = []
    for path in ENDPOINTS:
        token = None if path.startswith("/health") else key
        result = run_wrk(f"{env.gateway.url}{path}", CONNECTIONS, duration, token=token, meter=meter)
        print(f"  {path:<14} {result.line()}", flush=True)
        results.append((path, result))
    lines = [
        f"| endpoint (concurrency {CONNECTIONS}) | req/s | p50 / p95 / p99 ms | errors | gateway CPU ms per request |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| `{path}` | {r.rps:.0f} | {r.p50:.2f} / {r.p95:.2f} / {r.p99:.2f} | {r.errors}"
        f" | {r.cpu_ms.get('gateway', 0):.2f} |"
        for path, r in results
    ]
    return results, lines
