"""The app factory: overrides reach the config, every surface is registered, errors share one envelope."""

import hashlib
import hmac

from ops_gateway.core.db import Database
from tests.helpers import assert_error


def test_overrides_reach_the_config(make_app, test_settings):
    app = make_app(DB_POOL_MAX=3, MODEL_CACHE_TTL_SECONDS=42, DEFAULT_PLAN="free", RUN_MIGRATIONS_ON_START=False)
    assert app.testing
    assert app.config["DB_POOL_MAX"] == 3
    assert app.config["MODEL_CACHE_TTL_SECONDS"] == 42
    assert app.config["DEFAULT_PLAN"] == "free"
    assert app.config["DATABASE_URL"] == test_settings["DATABASE_URL"]
    assert app.config["KEY_HASH_SECRET"] == test_settings["KEY_HASH_SECRET"]
    database = app.extensions["ops_gateway.db"]
    assert isinstance(database, Database) and database.maxconn == 3


def test_secret_key_defaults_to_one_derived_from_the_hash_secret(make_app, test_settings):
    secret = test_settings["KEY_HASH_SECRET"].encode()
    derived = hmac.new(secret, b"ops-gateway session key", hashlib.sha256).hexdigest()
    assert make_app().config["SECRET_KEY"] == derived != test_settings["KEY_HASH_SECRET"]
    assert make_app(SECRET_KEY="sessions-only").config["SECRET_KEY"] == "sessions-only"


def test_every_surface_is_registered(app):
    blueprints = set(app.blueprints)
    api_surfaces = {"health", "admin_users", "user", "user_audit", "admin_audit", "admin_models", "admin_limits"}
    api_surfaces |= {"admin_jobs", "user_monitor", "admin_monitor", "admin_security", "metrics", "v1"}
    assert api_surfaces <= blueprints
    assert {"dashboard", "dashboard_users", "dashboard_audit", "status_page"} <= blueprints
    assert "migrate" in app.cli.commands
    assert "jobs" in app.cli.commands


def test_openapi_lists_the_api_but_not_the_html_pages(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["info"]["title"] == "ops-gateway"
    assert spec["openapi"] == "3.0.3"
    for path in ("/health", "/admin/users", "/user/api-keys", "/v1/chat/completions", "/admin/jobs"):
        assert path in spec["paths"], path
    assert not any(path.startswith(("/dashboard", "/status")) for path in spec["paths"])
    assert client.get("/docs").status_code == 200


def test_an_unknown_route_gets_the_error_envelope(client):
    response = client.get("/no/such/route")
    error = assert_error(response, 404, "not_found")
    assert error["details"] == {}
    assert response.headers["X-Request-ID"]


def test_a_wrong_method_gets_the_envelope_and_allow(client):
    response = client.delete("/health/live")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]
