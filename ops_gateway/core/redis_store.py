"""The shared Redis connection (rate-limit counters, cache counters, blocks, leases)."""

import redis
from flask import current_app

# Redis answers in well under a millisecond: a borrower that waited this long for a free
# connection is facing a Redis problem, and the fail-open/closed policy should decide.
POOL_WAIT_SECONDS = 1.0


def connect(url, max_connections=50):
    """A bounded, waiting pool with short timeouts, so a dead Redis fails fast instead of hanging.

    Bounded because thousands of concurrent requests in one gevent worker would otherwise each
    open a connection of their own.
    """
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_WAIT_SECONDS,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        health_check_interval=30,
        decode_responses=True,
    )
    return redis.Redis(connection_pool=pool)


def get_redis():
    """The app's Redis client."""
    return current_app.extensions["ops_gateway.redis"]


def is_up(client):
    """Whether Redis answers a PING right now."""
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
