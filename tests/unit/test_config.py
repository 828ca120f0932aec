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
