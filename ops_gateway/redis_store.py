"""The shared Redis connection (rate-limit counters, cache counters, blocks, leases)."""

import redis
from flask import current_app


def connect(url):
    """A pooled client with short timeouts, so a dead Redis fails fast instead of hanging."""
    return redis.Redis.from_url(
        url, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=30, decode_responses=True
    )


def get_redis():
    """The app's Redis client."""
    return current_app.extensions["ops_gateway.redis"]


def is_up(client):
    """Whether Redis answers a PING right now."""
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
