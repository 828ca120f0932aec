"""The production topology of docs/deploy.md in one run: two gateway instances and two clocks on
PgBouncer in transaction mode (``DB_PREPARED_STATEMENTS=false``) and a 3-node Redis Cluster
(``REDIS_CLUSTER=true``). Limits exact across the instances, each job once per tick, books exact,
and a FLUSHALL of every node mid-load leaves no stuck slot and no lost quota (issue 16)."""

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import redis
import requests

from tests.e2e.clocks import clock_env, running_clocks, scheduled_runs_by_tick
from tests.e2e.gateway_calls import MODEL, create_user, limit_per_minute_in_a_fresh_window
from tests.e2e.pgbouncer import POOLED_JOBS, TICK_SECONDS

BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.mark.slow  # clock ticks on a whole topology
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
    env = clock_env({**test_settings, "DATABASE_URL": bounced_url}, upstream, tmp_path / "backups", TICK_SECONDS)
    env.update(production, REDIS_URL=redis_cluster.url, BACKUP_VERIFICATION_INTERVAL_SECONDS="0")
    with running_clocks(env, tmp_path) as (clocks, logs):
        sql("UPDATE plans SET daily_request_quota = 40 WHERE name = 'enterprise'")  # a quota lives on the plan
        user_id, headers, _ = create_user(instances[0].url, "10.00", plan="enterprise")
        limit_per_minute_in_a_fresh_window(instances[0].url, user_id, 30)

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

    succeeded, _, _ = scheduled_runs_by_tick(sql)  # each job at most once per tick, each run a success
    assert {job.name for job in POOLED_JOBS} <= set(succeeded), succeeded
    [books] = sql(
        "SELECT u.credits, u.reserved_credits, (SELECT sum(cost) FROM usage_records WHERE user_id = u.id) AS usage"
        " FROM users u WHERE u.id = %s",
        (user_id,),
    )
    assert Decimal("10.00") - books["credits"] == books["usage"] > 0 and books["reserved_credits"] == 0
