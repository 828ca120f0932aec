"""System state for /admin/monitor and the alert rules: resources, pool, slow queries, jobs, alerts.

Web processes publish a small resource sample to Redis at most every SAMPLE_SECONDS (after a
request), so the scheduler, which runs in its own process or dyno, can judge CPU, memory and
pool saturation across the deployment. Slow queries and database pool exhaustions are counted
in per-minute Redis buckets, so the last hour's count covers every process.
"""

import json
import os
import socket
import time
from datetime import UTC, datetime, timedelta

import psutil
import redis

from ops_gateway.core import db, redis_store
from ops_gateway.observability import queries
from ops_gateway.telemetry import alert_queries, metrics

SAMPLES_KEY = "gw:monitor:samples"
SAMPLE_SECONDS = 10
SAMPLE_MAX_AGE_SECONDS = 90  # older samples belong to processes that stopped serving
EVENT_KEY = "gw:monitor:{event}:{minute}"
EVENT_KEY_SECONDS = 7200
SLOW_QUERY = "slow-queries"
POOL_EXHAUSTED = "pool-exhausted"

_published = {"pid": None, "at": 0.0}


def process_resources():
    """This host's CPU and memory use, this process's resident memory, the load average."""
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),  # since the previous call in this process
        "memory_percent": psutil.virtual_memory().percent,
        "rss_bytes": psutil.Process(os.getpid()).memory_info().rss,
        "load_avg": [round(load, 2) for load in os.getloadavg()],
    }


def publish_sample(response):
    """after_request: share this process's resources and pool use (throttled to one write per SAMPLE_SECONDS)."""
    now = time.monotonic()
    if _published["pid"] == os.getpid() and now - _published["at"] < SAMPLE_SECONDS:
        return response
    _published.update(pid=os.getpid(), at=now)
    sample = {**process_resources(), **db.get_database().stats(), "at": time.time()}
    try:
        redis_store.get_redis().hset(SAMPLES_KEY, f"{socket.gethostname()}:{os.getpid()}", json.dumps(sample))
    except redis.RedisError:
        pass  # the next request tries again
    return response


def deployment_samples():
    """The fresh samples of every serving process (stale ones are dropped)."""
    client = redis_store.get_redis()
    samples, stale = [], []
    for process, raw in client.hgetall(SAMPLES_KEY).items():
        sample = json.loads(raw)
        if time.time() - sample["at"] > SAMPLE_MAX_AGE_SECONDS:
            stale.append(process)
        else:
            samples.append({**sample, "process": process})
    if stale:
        client.hdel(SAMPLES_KEY, *stale)
    return samples


def count_event(client, event):
    """Count one ``event`` in this minute's deployment-wide bucket."""
    key = EVENT_KEY.format(event=event, minute=datetime.now(UTC).strftime("%Y%m%d%H%M"))
    try:
        pipe = client.pipeline()
        pipe.incr(key)
        pipe.expire(key, EVENT_KEY_SECONDS)
        pipe.execute()
    except redis.RedisError:
        pass  # counting must never fail the request that is being counted


def events_last_hour(event):
    """How many ``event``s the last 60 minutes saw, across every process (None when Redis is down)."""
    now = datetime.now(UTC)
    minutes = ((now - timedelta(minutes=m)).strftime("%Y%m%d%H%M") for m in range(60))
    keys = [EVENT_KEY.format(event=event, minute=minute) for minute in minutes]
    try:
        return sum(int(count or 0) for count in redis_store.get_redis().mget(keys))
    except redis.RedisError:
        return None


def count_slow_query(client, elapsed_ms):
    """TimedCursor.on_slow_query hook."""
    metrics.DB_SLOW_QUERIES.inc()
    count_event(client, SLOW_QUERY)


def count_pool_exhausted(client):
    """Database.on_exhausted hook: a request gave up waiting for a pooled connection."""
    metrics.DB_POOL_EXHAUSTED.inc()
    count_event(client, POOL_EXHAUSTED)


def database_status(cur):
    """This process's pool, the database size, the deployment's slow queries and pool exhaustions (last hour)."""
    return {
        **db.get_database().stats(),
        "size_bytes": queries.database_size(cur),
        "slow_queries_1h": events_last_hour(SLOW_QUERY),
        "pool_exhausted_1h": events_last_hour(POOL_EXHAUSTED),
    }


def scheduler_status(cur):
    """{job: its last run's status and times} from job_runs."""
    return queries.last_job_runs(cur)


def active_alerts(cur):
    """Alerts firing now, newest first."""
    return alert_queries.firing_alerts(cur)


def recent_alerts(cur, status=None, limit=50):
    """The newest incidents, optionally of one status."""
    return alert_queries.recent_alerts(cur, status, limit)


def init_app(app):
    """Count slow queries deployment-wide and publish resource samples after requests."""
    client = app.extensions["ops_gateway.redis"]
    db.TimedCursor.on_slow_query = lambda elapsed_ms: count_slow_query(client, elapsed_ms)
    app.extensions["ops_gateway.db"].on_exhausted = lambda: count_pool_exhausted(client)
    app.after_request(publish_sample)
    psutil.cpu_percent(interval=None)  # start the CPU measurement window
