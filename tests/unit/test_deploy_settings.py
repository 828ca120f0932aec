"""The deployment settings: strict parsing, and REDIS_SSL_CERT_REQS / REDIS_SSL_CA_CERTS reaching every Redis client."""

import pytest
import redis

from ops_gateway.core import redis_store
from ops_gateway.core.config import ConfigError, load_settings


@pytest.mark.parametrize("raw", ["-1", "one", "1.5", "true"])
def test_trusted_proxy_count_junk_stops_start_up(raw):
    with pytest.raises(ConfigError, match="TRUSTED_PROXY_COUNT"):
        load_settings({"TRUSTED_PROXY_COUNT": raw})


def test_deployment_settings_default_to_the_socket_address_verified_tls_and_no_embedded_servers():
    settings = load_settings({})
    assert (settings.TRUSTED_PROXY_COUNT, settings.REDIS_SSL_CERT_REQS, settings.EMBEDDED_SERVICES) == (
        0,
        "required",
        False,
    )


@pytest.mark.parametrize("name,raw", [("REDIS_SSL_CERT_REQS", "off"), ("EMBEDDED_SERVICES", "maybe")])
def test_junk_deployment_settings_stop_start_up(name, raw):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: raw})


def test_a_rediss_client_gets_the_certificate_check():
    client = redis_store.connect("rediss://:secret@redis.example.com:6380/0", 2, "none")
    assert client.connection_pool.connection_kwargs["ssl_cert_reqs"] == "none"


def test_a_certificate_check_spelled_in_the_url_wins():
    client = redis_store.connect("rediss://redis.example.com:6380/0?ssl_cert_reqs=optional", 2, "none")
    assert client.connection_pool.connection_kwargs["ssl_cert_reqs"] == "optional"
    uri = redis_store.limits_storage_uri("rediss://redis.example.com:6380/0?ssl_cert_reqs=optional", "none")
    assert uri.count("ssl_") == 1


def test_plain_redis_urls_get_no_tls_options():
    assert redis_store.tls_options("redis://localhost:6379/0", "none") == {}
    assert redis_store.limits_storage_uri("unix:///tmp/redis.sock", "none") == "redis+unix:///tmp/redis.sock"


def test_the_rate_limit_storage_gets_the_certificate_check_in_its_url():
    assert redis_store.limits_storage_uri("rediss://h:6380/0", "none") == "rediss://h:6380/0?ssl_cert_reqs=none"
    assert (
        redis_store.limits_storage_uri("rediss://h:6380/0?db=1", "optional")
        == "rediss://h:6380/0?db=1&ssl_cert_reqs=optional"
    )


def test_a_cluster_url_or_setting_gives_the_limits_library_its_cluster_storage():
    assert redis_store.uses_cluster("redis+cluster://h1:7000,h2:7001", False)
    assert redis_store.uses_cluster("redis://h1:7000", True) and not redis_store.uses_cluster("redis://h1:7000", False)
    assert redis_store.limits_storage_uri("redis://:pw@h1:7000/0", "none", True) == "redis+cluster://:pw@h1:7000"
    tls = redis_store.limits_storage_options("rediss+cluster://h1:7000,h2:7001", "none")
    assert tls["ssl"] is True and tls["ssl_cert_reqs"] == "none"
    assert "ssl" not in redis_store.limits_storage_options("redis://h1:7000", "none", True)


def test_a_missing_ca_bundle_stops_start_up_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError, match=r"^REDIS_SSL_CA_CERTS=.*is invalid: no such file$"):
        load_settings({"REDIS_SSL_CA_CERTS": str(tmp_path / "missing-ca.pem")})
    with pytest.raises(ConfigError, match="REDIS_SSL_CA_CERTS"):
        load_settings({"REDIS_SSL_CA_CERTS": str(tmp_path)})  # a directory is no bundle either


def test_a_readable_ca_bundle_is_kept_and_unset_means_the_system_authorities(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert load_settings({"REDIS_SSL_CA_CERTS": str(bundle)}).REDIS_SSL_CA_CERTS == str(bundle)
    assert load_settings({}).REDIS_SSL_CA_CERTS is None


def test_the_ca_bundle_reaches_every_rediss_client_and_no_plain_one():
    ca = "/etc/ssl/private CA/ca.pem"
    single = redis_store.connect("rediss://redis.example.com:6380/0", 2, "required", ssl_ca_certs=ca)
    assert single.connection_pool.connection_kwargs["ssl_ca_certs"] == ca
    uri = redis_store.limits_storage_uri("rediss://h:6380/0", "required", ssl_ca_certs=ca)
    assert redis.connection.parse_url(uri)["ssl_ca_certs"] == ca
    tls = redis_store.limits_storage_options("rediss+cluster://h1:7000,h2:7001", "required", ssl_ca_certs=ca)
    assert (tls["ssl"], tls["ssl_cert_reqs"], tls["ssl_ca_certs"]) == (True, "required", ca)
    assert redis_store.tls_options("redis://localhost:6379/0", "required", ca) == {}
    assert "ssl_ca_certs" not in redis_store.limits_storage_options(
        "redis+cluster://h1:7000", "required", ssl_ca_certs=ca
    )
    assert "ssl_ca_certs" not in redis_store.tls_options("rediss://h:6380/0", "required")


def test_a_ca_bundle_spelled_in_the_url_wins():
    url = "rediss://h:6380/0?ssl_ca_certs=%2Furl%2Fca.pem"
    assert redis_store.tls_options(url, "required", "/env/ca.pem") == {"ssl_cert_reqs": "required"}
    cluster = redis_store.limits_storage_options(url.replace("rediss:", "rediss+cluster:"), "required", False, "/e")
    assert cluster["ssl_ca_certs"] == "/url/ca.pem"
