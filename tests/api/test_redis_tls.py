"""REDIS_SSL_CERT_REQS and REDIS_SSL_CA_CERTS against a real TLS Redis with a self-signed
certificate (as Heroku Redis serves; a managed Redis signed by a private CA is the same to a client
given that CA's PEM file).

Debian's ``redis-server`` (built with TLS, unlike the embedded one) listens on a TLS port with a
certificate ``openssl`` makes for the test.
"""

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from ops_gateway.core import redis_store
from tests.certificates import self_signed_certificate
from tests.e2e.servers import free_port
from tests.helpers import assert_error

REDIS_SERVER = Path("/usr/bin/redis-server")  # Debian's package; the embedded one has no TLS

pytestmark = [
    pytest.mark.needs_servers,
    pytest.mark.skipif(
        not REDIS_SERVER.exists() or not shutil.which("openssl"), reason="needs Debian's redis-server and openssl"
    ),
]


@pytest.fixture
def tls_redis_url(tmp_path):
    """A TLS-only redis-server with a fresh self-signed certificate; its ``rediss://`` URL."""
    cert, key = self_signed_certificate(tmp_path)
    port = free_port()
    args = [str(REDIS_SERVER), "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert)]
    args += ["--tls-key-file", str(key), "--tls-auth-clients", "no", "--save", "", "--dir", str(tmp_path)]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"rediss://127.0.0.1:{port}/0"
    try:
        probe = redis.Redis.from_url(url, ssl_cert_reqs="none", socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                assert server.poll() is None and time.monotonic() < deadline, "TLS redis-server did not start"
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def tls_redis_ca(tls_redis_url, tmp_path):
    """The PEM file that signs ``tls_redis_url``'s certificate (self-signed: the certificate itself)."""
    return str(tmp_path / "cert.pem")


def test_a_self_signed_redis_is_refused_by_default(tls_redis_url):
    assert not redis_store.is_up(redis_store.connect(tls_redis_url, 2))


def test_with_cert_reqs_none_the_gateway_counts_windows_on_a_self_signed_redis(make_app, tls_redis_url):
    app = make_app(REDIS_URL=tls_redis_url, REDIS_SSL_CERT_REQS="none", AUTH_FAILURE_LIMIT="2 per minute")
    assert redis_store.is_up(app.extensions["ops_gateway.redis"])
    client = app.test_client()
    bad_key = {"Authorization": "Bearer gw_live_not_a_real_key_000000000000000000"}

    statuses = [client.get("/user/balance", headers=bad_key).status_code for _ in range(2)]
    assert statuses == [401, 401]
    # The block needs both clients: the failure window (limits storage) and the block key (shared client).
    assert_error(client.get("/user/balance", headers=bad_key), 429, "ip_blocked")


def test_with_the_ca_bundle_the_gateway_verifies_the_certificate_and_counts_windows(
    make_app, tls_redis_url, tls_redis_ca
):
    app = make_app(
        REDIS_URL=tls_redis_url,
        REDIS_SSL_CERT_REQS="required",
        REDIS_SSL_CA_CERTS=tls_redis_ca,
        AUTH_FAILURE_LIMIT="2 per minute",
    )
    assert app.extensions["ops_gateway.redis"].connection_pool.connection_kwargs["ssl_ca_certs"] == tls_redis_ca
    client = app.test_client()
    assert client.get("/health").get_json()["redis"] == "connected"
    bad_key = {"Authorization": "Bearer gw_live_not_a_real_key_000000000000000000"}

    statuses = [client.get("/user/balance", headers=bad_key).status_code for _ in range(2)]
    assert statuses == [401, 401]
    # Both clients verified the certificate: the failure window (limits storage) and the block key.
    assert_error(client.get("/user/balance", headers=bad_key), 429, "ip_blocked")


def test_with_cert_reqs_required_and_no_ca_bundle_the_self_signed_redis_is_untrusted(make_app, tls_redis_url):
    app = make_app(REDIS_URL=tls_redis_url, REDIS_SSL_CERT_REQS="required", AUTH_FAILURE_LIMIT="2 per minute")
    client = app.test_client()
    assert client.get("/health").get_json()["redis"] == "disconnected"
    bad_key = {"Authorization": "Bearer gw_live_not_a_real_key_000000000000000000"}
    # Fail-open: no window is counted, so no block follows the failures.
    assert [client.get("/user/balance", headers=bad_key).status_code for _ in range(3)] == [401, 401, 401]
