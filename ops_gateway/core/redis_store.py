"""The shared Redis connection (rate-limit counters, cache counters, blocks, leases)."""

from urllib.parse import parse_qs, urlsplit

import redis
from flask import current_app

# Redis answers in well under a millisecond: a borrower that waited this long for a free
# connection is facing a Redis problem, and the fail-open/closed policy should decide.
POOL_WAIT_SECONDS = 1.0


def connect(url, max_connections=50, ssl_cert_reqs="required"):
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
        **tls_options(url, ssl_cert_reqs),
    )
    return redis.Redis(connection_pool=pool)


def tls_options(url, ssl_cert_reqs):
    """REDIS_SSL_CERT_REQS as redis-py's ``ssl_cert_reqs``, for ``rediss://`` URLs only (plain
    connections take no TLS options); a URL that spells ``ssl_cert_reqs`` itself keeps its own."""
    parts = urlsplit(url)
    if parts.scheme != "rediss" or "ssl_cert_reqs" in parse_qs(parts.query):
        return {}
    return {"ssl_cert_reqs": ssl_cert_reqs}


def get_redis():
    """The app's Redis client."""
    return current_app.extensions["ops_gateway.redis"]


def is_up(client):
    """Whether Redis answers a PING right now."""
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
