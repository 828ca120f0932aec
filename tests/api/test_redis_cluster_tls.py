"""The gateway on a real 3-node Redis Cluster served over TLS only, as managed Redis Clusters are:
``REDIS_URL=rediss+cluster://`` naming one node, a certificate of the test's own CA checked by every
connection (REDIS_SSL_CERT_REQS=required, REDIS_SSL_CA_CERTS), the cluster bus and replication over
TLS too. Health, an exact request window and an IP block,
through the HTTP API (OpenRouter faked)."""

import shutil
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from redis.exceptions import RedisClusterException

from ops_gateway.limits import security
from tests.e2e.redis_servers import RedisCluster
from tests.helpers import ADMIN, assert_error, bearer, create_user
from tests.helpers.upstream import chat

pytestmark = [
    pytest.mark.needs_servers,
    pytest.mark.skipif(
        not shutil.which("redis-server") or not shutil.which("openssl"),
        reason="needs Debian's redis-server and openssl",
    ),
]


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    """Three TLS-only cluster nodes (``port 0``, ``tls-cluster yes``) for this module."""
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-tls-cluster"), tls=True)
    yield cluster
    cluster.stop()


@pytest.fixture
def tls_app(make_app, tls_cluster, upstream):
    """The gateway on the TLS cluster, every node emptied first (the cluster outlives a test)."""
    for port in tls_cluster.ports:
        tls_cluster.client(port).flushall()
    return make_app(
        REDIS_URL=tls_cluster.url,
        REDIS_SSL_CERT_REQS="required",
        REDIS_SSL_CA_CERTS=str(tls_cluster.tls.cert),
        AUTH_FAILURE_LIMIT="3 per minute",
    )


def test_health_says_redis_connected_on_the_tls_cluster(tls_app):
    client = tls_app.test_client()
    assert client.get("/health").get_json()["redis"] == "connected"
    assert client.get("/health/ready").status_code == 200


def test_without_the_ca_bundle_the_tls_cluster_is_untrusted(make_app, tls_cluster):
    # The cluster client reads the slot map when it is built, so the app does not start at all.
    with pytest.raises(RedisClusterException, match="CERTIFICATE_VERIFY_FAILED"):
        make_app(REDIS_URL=tls_cluster.url, REDIS_SSL_CERT_REQS="required")


def test_a_request_window_is_exact_under_concurrency_on_the_tls_cluster(tls_app):
    client = tls_app.test_client()
    user, key = create_user(client, credits="5.00", plan="team")
    limited = client.post(
        "/admin/limit", json={"user_id": user["id"], "rate_limits": {"requests_per_minute": 5}}, headers=ADMIN
    )
    assert limited.status_code == 200, limited.get_json()
    if time.time() % 60 > 55:  # fixed windows reset on the minute: keep the burst in one
        time.sleep(60 - time.time() % 60 + 0.2)
    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda _: chat(client, key), range(20)))
    assert Counter(r.status_code for r in responses) == Counter({200: 5, 429: 15})
    for rejected in (r for r in responses if r.status_code == 429):
        assert_error(rejected, 429, "rate_limited")


def test_auth_failures_block_the_ip_on_the_tls_cluster(tls_app, tls_cluster):
    client = tls_app.test_client()
    _, key = create_user(client, credits="5.00", plan="team")
    bad_key = bearer("gw_live_not_a_real_key_000000000000000000")

    assert [client.get("/user/balance", headers=bad_key).status_code for _ in range(3)] == [401] * 3
    assert_error(client.get("/user/balance", headers=bad_key), 429, "ip_blocked")
    assert_error(client.get("/user/balance", headers=bearer(key)), 429, "ip_blocked")  # a good key too
    # The block is a key on the cluster (read through a TLS connection that checks the certificate).
    nodes = redis.RedisCluster(
        host="127.0.0.1", port=tls_cluster.ports[0], ssl=True, ssl_ca_certs=str(tls_cluster.tls.cert)
    )
    assert nodes.ttl(security.BLOCK_KEY.format(ip="127.0.0.1")) > 0
    nodes.close()


def test_an_app_built_after_a_tls_cluster_app_does_not_inherit_its_limiter_tls_options(tls_app, make_app):
    # Flask-Limiter's Limiter is shared by every app of a process: the cluster's ssl=True once
    # stayed in its storage options and broke the next app's (single-node) window storage.
    client = make_app().test_client()
    bad_key = bearer("gw_live_not_a_real_key_000000000000000000")
    assert client.get("/user/balance", headers=bad_key).status_code == 401


def test_blocks_lost_by_a_cluster_flush_are_restored_by_the_job(tls_app, tls_cluster):
    client = tls_app.test_client()
    blocked = ["203.0.113.7", "203.0.113.8", "2001:db8::9"]  # keys spread over the cluster's slots
    for ip in blocked:
        body = {"ip": ip, "ttl_seconds": 600, "reason": "scraping"}
        assert client.post("/admin/blocked-ips", json=body, headers=ADMIN).status_code == 201
    for port in tls_cluster.ports:
        tls_cluster.client(port).flushall()
    run = client.post("/admin/jobs/restore_ip_blocks/run", headers=ADMIN).get_json()
    assert run["status"] == "success", run["error"]
    assert (run["details"]["blocks_in_force"], run["details"]["restored"]) == (3, 3)
    nodes = redis.RedisCluster(
        host="127.0.0.1", port=tls_cluster.ports[0], ssl=True, ssl_ca_certs=str(tls_cluster.tls.cert)
    )
    keys = [security.BLOCK_KEY.format(ip=ip) for ip in blocked]
    assert len({nodes.get_node_from_key(key).name for key in keys}) > 1  # one pipeline over several nodes
    assert all(590 < nodes.ttl(key) <= 600 for key in keys)
    nodes.close()
