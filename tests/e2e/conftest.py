"""End-to-end fixtures: the fake OpenRouter, gunicorn, PgBouncer and a Redis Cluster started as
real processes."""

from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e.pgbouncer import PgBouncer
from tests.e2e.redis_servers import RedisCluster
from tests.e2e.servers import start_fake_openrouter, start_gateway


@pytest.fixture(scope="session")
def fake_openrouter(tmp_path_factory):
    """One fake OpenRouter for the session (switches reset per test by ``upstream``)."""
    server = start_fake_openrouter(tmp_path_factory.mktemp("fake-openrouter"))
    yield server
    server.stop()


@pytest.fixture
def upstream(fake_openrouter):
    """The fake OpenRouter with its fault switches reset."""
    requests.post(f"{fake_openrouter.url}/_control/reset", timeout=5).raise_for_status()
    yield fake_openrouter
    requests.post(f"{fake_openrouter.url}/_control/reset", timeout=5)


@pytest.fixture
def gateway(tmp_path, test_settings, upstream):
    """A factory for gunicorn gateways on this test's database; all are stopped afterwards."""
    servers = []

    def start(workers=4, **extra_env):
        settings = {**test_settings, "OPENROUTER_BASE_URL": upstream.base_url}
        server = start_gateway(tmp_path, settings, workers=workers, extra_env=extra_env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def pgbouncer(services):
    """PgBouncer, pool_mode=transaction, in front of the session's Postgres."""
    bouncer = PgBouncer(services["pg_url"], pool_size=8)
    yield bouncer
    bouncer.stop()


@pytest.fixture
def bounced_url(pgbouncer, database_url):
    """This test's database through PgBouncer."""
    return pgbouncer.url(urlsplit(database_url).path.lstrip("/"))


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory):
    """Three cluster-enabled redis-server nodes, every slot assigned, for this module."""
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()
