"""A real redis-server restarted empty, or flushed, while completions are in flight: no concurrency
slot is left stuck or negative, and the daily quota keeps counting what Postgres recorded."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from tests.e2e.gateway_calls import complete, create_user
from tests.e2e.redis_servers import RestartableRedis


@pytest.fixture
def restartable_redis(tmp_path):
    """One redis-server without persistence for this test."""
    server = RestartableRedis(tmp_path / "redis")
    yield server
    server.stop()


def slow_upstream(upstream, latency_ms):
    """Make every upstream answer take ``latency_ms``."""
    requests.post(f"{upstream.url}/_control", json={"latency_ms": latency_ms}, timeout=5).raise_for_status()


def concurrently(server, headers, count):
    """``count`` completions at once; their statuses, sorted."""
    with ThreadPoolExecutor(count) as pool:
        return sorted(pool.map(lambda _: complete(server.url, headers)[0], range(count)))


@pytest.mark.parametrize("loss", ["flushall", "restart"])
def test_losing_redis_mid_load_leaves_no_stuck_or_negative_slot_and_no_lost_quota(
    gateway, upstream, restartable_redis, sql, loss
):
    sql("UPDATE plans SET daily_request_quota = 8 WHERE name = 'trial'")  # trial: 2 concurrent requests
    server = gateway(workers=2, REDIS_URL=restartable_redis.url)
    user_id, headers, _ = create_user(server.url, "10.00", plan="trial")
    assert concurrently(server, headers, 2) == [200, 200]  # two of today's 8
    slow_upstream(upstream, 1500)
    with ThreadPoolExecutor(2) as pool:
        in_flight = [pool.submit(complete, server.url, headers) for _ in range(2)]
        inflight = redis.Redis.from_url(restartable_redis.url)
        while inflight.zcard(f"gw:{{u:{user_id}}}:inflight") < 2:
            time.sleep(0.02)  # until both hold their concurrency slot
        if loss == "flushall":
            restartable_redis.flushall()
        else:
            restartable_redis.restart()
        finished = sorted(future.result()[0] for future in in_flight)
    assert finished == [200, 200]  # four of 8 used
    # Exactly 2 at once again: none stuck (old: 429 for everyone), none negative (old: 4 ran).
    assert concurrently(server, headers, 3) == [200, 200, 429]
    slow_upstream(upstream, 0)
    # Six used: two more, then the daily quota refuses, as Postgres counts.
    assert [complete(server.url, headers)[0] for _ in range(3)] == [200, 200, 429]
    assert sql("SELECT sum(requests) AS n FROM usage_daily_totals WHERE user_id = %s", (user_id,))[0]["n"] == 8
