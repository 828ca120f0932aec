"""The shared Redis connection (rate-limit counters, cache counters, blocks, leases).

One Redis or a Redis Cluster: REDIS_CLUSTER=true, or a ``redis+cluster://`` / ``rediss+cluster://``
URL (the ``limits`` library's spelling, hosts comma-separated), selects redis-py's cluster client.
On a cluster every multi-key command and Lua script must name keys of one hash slot: the keys
of a user carry the hash tag ``{u:<user id>}`` (``limits.windows``).
"""

from urllib.parse import parse_qs, urlencode, urlsplit

import redis
from flask import current_app
from redis.cluster import ClusterNode, RedisCluster

# Redis answers in well under a millisecond: a borrower that waited this long for a free
# connection is facing a Redis problem, and the fail-open/closed policy should decide.
POOL_WAIT_SECONDS = 1.0
SOCKET_TIMEOUTS = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def uses_cluster(url, cluster):
    """Whether REDIS_URL and REDIS_CLUSTER ask for the cluster client."""
    return bool(cluster) or urlsplit(url).scheme in CLUSTER_SCHEMES


def connect(url, max_connections=50, ssl_cert_reqs="required", cluster=False, ssl_ca_certs=None):
    """A bounded, waiting pool (per node on a cluster) with short timeouts, so a dead Redis fails
    fast instead of hanging.

    Bounded because thousands of concurrent requests in one gevent worker would otherwise each
    open a connection of their own.
    """
    options = {
        "max_connections": max_connections,
        "timeout": POOL_WAIT_SECONDS,
        "decode_responses": True,
        **SOCKET_TIMEOUTS,
        **tls_options(url, ssl_cert_reqs, ssl_ca_certs),
    }
    if uses_cluster(url, cluster):
        first, *others = _hosts(url)
        return RedisCluster(
            url=_single_node_url(url, first),
            startup_nodes=[ClusterNode(*_host_port(host)) for host in others],
            connection_pool_class=redis.BlockingConnectionPool,
            **options,
        )
    pool = redis.BlockingConnectionPool.from_url(url, health_check_interval=30, **options)
    return redis.Redis(connection_pool=pool)


def tls_options(url, ssl_cert_reqs, ssl_ca_certs=None):
    """REDIS_SSL_CERT_REQS and REDIS_SSL_CA_CERTS as redis-py's ``ssl_cert_reqs`` and
    ``ssl_ca_certs``, for ``rediss://`` URLs only (plain connections take no TLS options); a URL
    that spells either option itself keeps its own."""
    if _plain_scheme(url) != "rediss":
        return {}
    spelled = parse_qs(urlsplit(url).query)
    options = {"ssl_cert_reqs": ssl_cert_reqs, "ssl_ca_certs": ssl_ca_certs}
    return {name: value for name, value in options.items() if value is not None and name not in spelled}


def limits_storage_uri(url, ssl_cert_reqs, cluster=False, ssl_ca_certs=None):
    """The shared Redis as the ``limits`` library opens it: ``redis+unix://`` for a unix socket,
    ``redis+cluster://`` (every host) for a cluster, and the certificate check (and CA bundle) of
    a ``rediss://`` URL in its query (the library passes it to redis-py)."""
    parts = urlsplit(url)
    if uses_cluster(url, cluster):
        return f"redis+cluster://{parts.netloc}"  # TLS goes in limits_storage_options
    if parts.scheme == "unix":
        return "redis+unix://" + url[len("unix://") :]
    tls = urlencode(tls_options(url, ssl_cert_reqs, ssl_ca_certs))
    return f"{url}{'&' if parts.query else '?'}{tls}" if tls else url


def limits_storage_options(url, ssl_cert_reqs, cluster=False, ssl_ca_certs=None):
    """Flask-Limiter's storage options: short timeouts, and on a TLS cluster the TLS settings
    (the library's cluster storage reads no query string, so one spelled in the URL is read here)."""
    options = dict(SOCKET_TIMEOUTS)
    if uses_cluster(url, cluster) and _plain_scheme(url) == "rediss":
        spelled = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
        tls = {"ssl_cert_reqs": ssl_cert_reqs, "ssl_ca_certs": ssl_ca_certs}
        tls.update((name, spelled[name]) for name in tls if name in spelled)
        options.update(ssl=True, **{name: value for name, value in tls.items() if value is not None})
    return options


def _plain_scheme(url):
    """``redis``, ``rediss`` or ``unix``: the URL's scheme without ``+cluster``."""
    scheme = urlsplit(url).scheme
    return CLUSTER_SCHEMES.get(scheme, scheme)


def _hosts(url):
    """The ``host:port`` entries of a URL's comma-separated host list."""
    return urlsplit(url).netloc.rpartition("@")[2].split(",")


def _host_port(host):
    """(host, port) of one ``host[:port]`` entry."""
    name, _, port = host.rpartition(":") if ":" in host else (host, "", "6379")
    return name.strip("[]"), int(port)


def _single_node_url(url, host):
    """A cluster URL as redis-py's ``from_url`` reads it: a plain scheme and the one ``host``."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    return parts._replace(scheme=_plain_scheme(url), netloc=f"{userinfo}{at}{host}").geturl()


def user_tag(user_id):
    """The hash tag in every key of a user: on a cluster they share one slot, so one Lua script
    can touch them all."""
    return f"{{u:{user_id}}}"


def is_cluster(client):
    """Whether ``client`` talks to a Redis Cluster (keys of different slots need separate calls)."""
    return isinstance(client, RedisCluster)


def get_redis():
    """The app's Redis client."""
    return current_app.extensions["ops_gateway.redis"]


def is_up(client):
    """Whether Redis answers a PING right now."""
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
