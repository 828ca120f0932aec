"""Baseline: the bare Flask proxy (``bench/bare_proxy.py``) under the same load as the gateway.

It shows what this machine gives a minimal proxy on the same stack (gunicorn with the gateway's
worker class, Flask, psycopg2, redis-py, requests), so the gateway's figures can be read against it.
"""

import os
import sys
from contextlib import contextmanager

import psycopg2

from bench.cpu import CpuMeter
from bench.environment import KEY_HASH_SECRET
from bench.load import run_wrk
from bench.overhead import BODY
from tests.e2e.servers import Server, free_port, wait_for


@contextmanager
def bare_proxy(env, worker_class=None):
    """The bare proxy running beside the gateway, on the same stores and upstream (with the gateway's
    worker class unless ``worker_class`` says otherwise): yields (server, key)."""
    worker_class = worker_class or env.worker_class
    _, key = env.create_user(f"bench-baseline-{free_port()}@example.com")
    with psycopg2.connect(env.database_url) as conn, conn.cursor() as cur:  # the table it writes to
        cur.execute(
            "CREATE TABLE IF NOT EXISTS bare_proxy_requests"
            " (id bigserial PRIMARY KEY, user_id bigint NOT NULL, status int, created_at timestamptz DEFAULT now())"
        )
    conn.close()
    port = free_port()
    gunicorn = ["-m", "gunicorn", "-k", worker_class, "-w", str(env.web_concurrency)]  # as the gateway
    gunicorn += ["--threads", str(env.web_threads), "--worker-connections", str(env.worker_connections)]
    args = [sys.executable, *gunicorn, "-b", f"127.0.0.1:{port}", "bench.bare_proxy:app"]
    settings = {"DATABASE_URL": env.database_url, "REDIS_URL": env.redis_url, "KEY_HASH_SECRET": KEY_HASH_SECRET}
    settings["WEB_WORKER_CLASS"] = worker_class
    settings["OPENROUTER_BASE_URL"] = env.upstream.base_url
    server = Server(args, port, {**os.environ, **settings}, env.instance / f"bare-proxy-{port}.log")
    try:
        wait_for(f"{server.url}/", timeout=30, process=server.process)
        yield server, key
    finally:
        server.stop()


def run(env, duration, concurrency):
    """Load the bare proxy at each concurrency, as the overhead suite loads the gateway; return (rows, markdown)."""
    rows = []
    with bare_proxy(env) as (server, key):
        meter = CpuMeter(env, gateway_pid=server.process.pid)
        for connections in concurrency:
            result = run_wrk(f"{server.url}/v1/chat/completions", connections, duration, "POST", BODY, key, meter=meter)
            print(f"  bare proxy {result.line()}", flush=True)
            rows.append(result)
    return rows, _markdown(rows)


def _markdown(rows):
    lines = ["| concurrency | req/s | p50 / p95 / p99 ms | errors |", "|---|---|---|---|"]
    lines += [f"| {r.connections} | {r.rps:.0f} | {r.p50:.2f} / {r.p95:.2f} / {r.p99:.2f} | {r.errors} |" for r in rows]
    return lines
