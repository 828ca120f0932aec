"""Strict environment parsing."""

import pytest

from ops_gateway.core.config import VARIABLES, ConfigError, load_settings


def test_defaults_when_environment_is_empty():
    settings = load_settings({})
    assert settings.OPENROUTER_BASE_URL == "https://openrouter.ai/api/v1"
    assert settings.MODEL_CACHE_TTL_SECONDS == 300
    assert settings.LOG_FORMAT == "text"


@pytest.mark.parametrize(
    "name,value",
    [("PORT", "eighty"), ("LOG_FORMAT", "xml"), ("RATE_LIMIT_FAIL_CLOSED", "maybe"), ("MODEL_CACHE_TTL_SECONDS", "-5")],
)
def test_bad_value_stops_start_up_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


def test_managed_database_requires_hash_secret():
    with pytest.raises(ConfigError, match="KEY_HASH_SECRET"):
        load_settings({"DATABASE_URL": "postgresql://db/x"})


def test_every_variable_is_documented_in_readme():
    readme = open("README.md").read()
    missing = [var.name for var in VARIABLES if f"`{var.name}`" not in readme]
    assert missing == []


OIDC = {"OIDC_ISSUER": "https://id.example.com/", "OIDC_CLIENT_ID": "gw", "OIDC_CLIENT_SECRET": "s3cret"}


def test_oidc_sign_in_without_an_allowlist_stops_start_up():
    with pytest.raises(ConfigError, match="OIDC_ALLOWED_EMAILS or OIDC_ALLOWED_DOMAINS"):
        load_settings(OIDC)


def test_oidc_sign_in_without_client_credentials_stops_start_up():
    with pytest.raises(ConfigError, match="OIDC_CLIENT_SECRET"):
        load_settings({**OIDC, "OIDC_CLIENT_SECRET": "", "OIDC_ALLOWED_DOMAINS": "example.com"})


def test_oidc_allowlists_are_trimmed_lowercased_lists():
    lists = {"OIDC_ALLOWED_EMAILS": " Ops@Example.com, ,b@x.io", "OIDC_ALLOWED_DOMAINS": "@Corp.io"}
    settings = load_settings({**OIDC, **lists})
    assert settings.OIDC_ISSUER == "https://id.example.com"
    assert settings.OIDC_ALLOWED_EMAILS == ("ops@example.com", "b@x.io")
    assert settings.OIDC_ALLOWED_DOMAINS == ("corp.io",)
    assert load_settings({}).OIDC_ISSUER is None
