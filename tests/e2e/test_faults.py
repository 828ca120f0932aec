"""Fault tests: Postgres, Redis and OpenRouter failing under load, and a worker killed mid-request.

Each test owns its servers (a private embedded Postgres or Redis where it stops one), so the
session's shared servers are never disturbed. Every loop is bounded in count and time.
"""

import os
import shutil
import signal
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import psutil
import pytest
import requests

from ops_gateway.core import embedded, migrations
from ops_gateway.core.db import Database
from tests.e2e.gateway_calls import ADMIN, complete, create_user

BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


def assert_books_balance(sql_run, user_id, opening):
    """Ledger, usage records and balance agree: every charge once, nothing half-written."""
    usage = sql_run("SELECT request_id, cost FROM usage_records WHERE user_id = %s AND cost > 0", (user_id,))
    ledger = sql_run(
        "SELECT request_id, amount FROM credit_transactions WHERE user_id = %s AND kind = 'usage'", (user_id,)
    )
    assert sorted((r["request_id"], r["cost"]) for r in usage) == sorted(
        (r["request_id"], -r["amount"]) for r in ledger
    )
    assert len({r["request_id"] for r in ledger}) == len(ledger)  # nobody charged twice
    [user] = sql_run("SELECT credits FROM users WHERE id = %s", (user_id,))
    assert opening - user["credits"] == sum((r["cost"] for r in usage), Decimal(0))


@pytest.fixture
def private_postgres(services):
    """A Postgres of this test's own, which it may stop and start."""
    instance = Path(tempfile.mkdtemp(prefix="ops-gateway-fault-pg-"))
    url = embedded.ensure_postgres(instance)
    migrations.migrate(Database(url))
    yield instance, url
    embedded.stop_postgres(instance)
    shutil.rmtree(instance, ignore_errors=True)


def sql_on(url):
    import psycopg2
    import psycopg2.extras

    def run(statement, params=None):
        conn = psycopg2.connect(url, cursor_factory=psycopg2.extras.RealDictCursor)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    return run


def load(url, headers, stop, results):
    """Send completions until ``stop`` is set, recording (status, seconds, request id)."""
    session = requests.Session()
    while not stop.is_set():
        started = time.monotonic()
        try:
            response = session.post(f"{url}/v1/chat/completions", json=BODY, headers=headers, timeout=15)
            results.append((response.status_code, time.monotonic() - started, response.headers.get("X-Request-ID")))
        except requests.RequestException:
            results.append((None, time.monotonic() - started, None))


@pytest.mark.slow  # a private Postgres stopped and restarted under load
def test_postgres_outage_under_load_is_503_then_recovers(tmp_path, test_settings, upstream, private_postgres):
    from tests.e2e.servers import start_gateway

    instance, url = private_postgres
    settings = {**test_settings, "DATABASE_URL": url, "OPENROUTER_BASE_URL": upstream.base_url}
    server = start_gateway(tmp_path, settings, workers=2)
    try:
        # Enterprise: four unthrottled clients can pass the team plan's 600 requests a minute.
        user_id, headers, _ = create_user(server.url, "10.00", plan="enterprise")
        stop, results = threading.Event(), []
        threads = [threading.Thread(target=load, args=(server.url, headers, stop, results)) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        embedded.stop_postgres(instance)
        outage_started = len(results)
        time.sleep(3)
        during = results[outage_started:]
        health = requests.get(f"{server.url}/health", timeout=5)
        embedded.ensure_postgres(instance)
        time.sleep(2)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        recovered = results[-5:]
    finally:
        server.stop()
    assert health.status_code == 503 and health.json()["status"] == "unhealthy"
    statuses_during = {status for status, _, _ in during[len(during) // 3 :]}
    assert statuses_during == {503}, statuses_during
    assert max(seconds for _, seconds, _ in during) < 5  # errors come fast, no hangs
    assert {status for status, _, _ in recovered} == {200}
    assert None not in {status for status, _, _ in results}
    run = sql_on(url)
    ok_ids = {rid for status, _, rid in results if status == 200}
    recorded = {r["request_id"] for r in run("SELECT request_id FROM usage_records WHERE status = 'success'")}
    assert ok_ids <= recorded  # every answered completion was charged and recorded
    assert_books_balance(run, user_id, Decimal("10.00"))


def redis_at(directory):
    return f"unix://{Path(directory) / 'redis' / 'redis.sock'}"


@pytest.mark.parametrize("fail_closed", [False, True])
def test_redis_outage_follows_the_documented_policy_and_recovers(tmp_path, test_settings, upstream, fail_closed):
    from tests.e2e.servers import start_gateway

    instance = Path(tempfile.mkdtemp(prefix="ops-gateway-fault-redis-"))
    redis_url = embedded.ensure_redis(instance)
    settings = {**test_settings, "REDIS_URL": redis_url, "OPENROUTER_BASE_URL": upstream.base_url}
    server = start_gateway(
        tmp_path, settings, workers=2, extra_env={"RATE_LIMIT_FAIL_CLOSED": "true" if fail_closed else "false"}
    )
    try:
        user_id, headers, _ = create_user(server.url, "10.00")
        assert complete(server.url, headers)[0] == 200
        embedded.stop_redis(instance)
        during = [complete(server.url, headers) for _ in range(6)]
        health = requests.get(f"{server.url}/health", timeout=5).json()
        embedded.ensure_redis(instance)
        after = [complete(server.url, headers)[0] for _ in range(6)]
    finally:
        server.stop()
        embedded.stop_redis(instance)
        shutil.rmtree(instance, ignore_errors=True)
    if fail_closed:
        assert {s for s, body in during} == {503}
        assert {body["error"]["code"] for s, body in during} == {"rate_limiter_unavailable"}
    else:
        assert {s for s, _ in during} == {200}
    assert health["redis"] == "disconnected" and health["status"] == "degraded"
    assert set(after) == {200}


def test_slow_upstream_times_out_with_504_and_no_charge(gateway, upstream, sql):
    server = gateway(workers=2, OPENROUTER_TIMEOUT_SECONDS="1")
    user_id, headers, _ = create_user(server.url, "1.00")
    assert requests.post(f"{server.url}/admin/refresh-models", headers=ADMIN, timeout=10).status_code == 200
    requests.post(f"{upstream.url}/_control", json={"latency_ms": 2500}, timeout=5).raise_for_status()
    started = time.monotonic()
    status, body = complete(server.url, headers)
    assert status == 504 and body["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - started < 2.5
    requests.post(f"{upstream.url}/_control", json={"latency_ms": 0, "outage": True}, timeout=5)
    status, body = complete(server.url, headers)
    assert status == 502
    models = requests.get(f"{server.url}/v1/models", headers=headers, timeout=10)
    assert models.status_code == 200 and models.json()["data"]
    assert sql("SELECT credits, reserved_credits FROM users WHERE id = %s", (user_id,))[0] == {
        "credits": Decimal("1.00"),
        "reserved_credits": 0,
    }
    assert sql("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'usage'")[0]["n"] == 0


def test_worker_killed_mid_request_leaves_no_half_written_rows(gateway, upstream, sql, app):
    server = gateway(workers=2)
    user_id, headers, _ = create_user(server.url, "10.00")
    assert requests.post(f"{server.url}/admin/refresh-models", headers=ADMIN, timeout=10).status_code == 200
    requests.post(f"{upstream.url}/_control", json={"latency_ms": 1500}, timeout=5).raise_for_status()
    master = psutil.Process(server.process.pid)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(complete, server.url, headers) for _ in range(8)]
        time.sleep(0.7)  # requests are now waiting on the slow upstream
        victim = master.children()[0]
        os.kill(victim.pid, signal.SIGKILL)
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result()[0])
            except requests.RequestException:
                outcomes.append(None)
    assert None in outcomes  # the killed worker's clients lost their connection
    requests.post(f"{upstream.url}/_control/reset", timeout=5)
    assert complete(server.url, headers)[0] == 200  # gunicorn replaced the worker; service goes on
    assert_books_balance(sql, user_id, Decimal("10.00"))
    # The killed worker's holds are released by the scheduler's stale-hold step once they expire.
    from ops_gateway.billing import credits
    from ops_gateway.core import db

    assert sql("SELECT reserved_credits FROM users WHERE id = %s", (user_id,))[0]["reserved_credits"] > 0
    with app.app_context(), db.transaction() as cur:
        assert credits.release_expired_holds(cur, app.config) == {"holds": 0, "users": 0}
    sql("UPDATE credit_holds SET expires_at = now() - interval '1 second' WHERE user_id = %s", (user_id,))
    with app.app_context(), db.transaction() as cur:
        assert credits.release_expired_holds(cur, app.config)["users"] == 1
    assert sql("SELECT reserved_credits FROM users WHERE id = %s", (user_id,))[0]["reserved_credits"] == 0
