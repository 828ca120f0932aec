"""The production topology of docs/deploy.md in one run: two gateway instances and two clocks on
PgBouncer in transaction mode (``DB_PREPARED_STATEMENTS=false``) and a 3-node Redis Cluster
(``REDIS_CLUSTER=true``). Limits exact across the instances, each job once per tick, books exact,
and a FLUSHALL of every node mid-load leaves no stuck slot and no lost quota (issue 16)."""

import subprocess
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import redis
import requests

from tests.e2e.servers import ROOT
from tests.e2e.test_pgbouncer import POOLED_JOBS, TICK_SECONDS
from tests.e2e.test_proxy_e2e import ADMIN, MODEL, create_user
from tests.e2e.test_rate_limits_e2e import wait_for_fresh_minute_window
from tests.e2e.test_scheduler_processes import clock_env, wait_until_started

BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def start_clocks(env, tmp_path):
    logs = [tmp_path / f"clock-{n}.log" for n in (1, 2)]
    clocks = []
    for log in logs:
        with open(log, "wb") as out:
            clocks.append(
                subprocess.Popen([sys.executable, "-m", "scheduler"], cwd=ROOT, env=env, stdout=out, stderr=out)
            )
    wait_until_started(clocks, logs)
    return clocks, logs


def test_two_instances_and_two_clocks_on_pgbouncer_and_a_redis_cluster(
    gateway, redis_cluster, bounced_url, tmp_path, test_settings, upstream, sql
):
    production = {"DATABASE_URL": bounced_url, "DB_PREPARED_STATEMENTS": "false", "REDIS_CLUSTER": "true"}
    instances = [
        gateway(workers=2, REDIS_URL=f"redis://127.0.0.1:{port}/0", **production) for port in redis_cluster.ports[:2]
    ]
    for server in instances:
        health = requests.get(f"{server.url}/health", timeout=10).json()
        assert (health["database"], health["redis"]) == ("connected", "connected"), health
    env = clock_env({**test_settings, "DATABASE_URL": bounced_url}, upstream, tmp_path / "backups")
    env.update(production, REDIS_URL=redis_cluster.url)
    env.update({job.interval_setting: str(TICK_SECONDS) for job in POOLED_JOBS})
    env["BACKUP_VERIFICATION_INTERVAL_SECONDS"] = "0"
    clocks, logs = start_clocks(env, tmp_path)
    try:
        sql("UPDATE plans SET daily_request_quota = 40 WHERE name = 'enterprise'")  # a quota lives on the plan
        user_id, headers, _ = create_user(instances[0].url, "10.00", plan="enterprise")
        requests.post(
            f"{instances[0].url}/admin/limit",
            json={"user_id": user_id, "rate_limits": {"requests_per_minute": 30}},
            headers=ADMIN,
            timeout=10,
        ).raise_for_status()
        wait_for_fresh_minute_window()

        def send(i):
            url = f"{instances[i % 2].url}/v1/chat/completions"
            return requests.post(url, json=BODY, headers=headers, timeout=60).status_code

        with ThreadPoolExecutor(60) as pool:
            statuses = Counter(pool.map(send, range(100)))
        assert statuses == Counter({200: 30, 429: 70}), statuses

        # Every node loses its data: slots are per request (nothing stuck), quotas come back from Postgres.
        for port in redis_cluster.ports:
            redis.Redis(port=port).flushall()
        with ThreadPoolExecutor(20) as pool:
            statuses = Counter(pool.map(send, range(20)))
        assert statuses == Counter({200: 10, 429: 10}), statuses  # the daily quota of 40 held across the flush
        [row] = sql("SELECT requests FROM usage_daily_totals WHERE user_id = %s", (user_id,))
        assert row["requests"] == 40

        time.sleep(2 * TICK_SECONDS + 1)
        assert [clock.poll() for clock in clocks] == [None, None], [log.read_text() for log in logs]
    finally:
        for clock in clocks:
            clock.terminate()
        for clock in clocks:
            clock.wait(timeout=20)

    runs = sql("SELECT job, status, details->>'tick' AS tick FROM job_runs WHERE details->>'trigger' = 'schedule'")
    by_tick = defaultdict(list)
    for run in runs:
        by_tick[(run["job"], run["tick"])].append(run["status"])
    assert by_tick and all(len([s for s in ran if s != "skipped"]) <= 1 for ran in by_tick.values()), by_tick
    [books] = sql(
        "SELECT u.credits, u.reserved_credits, (SELECT sum(cost) FROM usage_records WHERE user_id = u.id) AS usage"
        " FROM users u WHERE u.id = %s",
        (user_id,),
    )
    assert Decimal("10.00") - books["credits"] == books["usage"] > 0 and books["reserved_credits"] == 0
