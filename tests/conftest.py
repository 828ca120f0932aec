"""Shared fixtures: one embedded Postgres and Redis per test session, a fresh database per test.

Each test's database is cloned from a migrated template (fast, and tests never see each
other's rows); Redis is flushed per test. Nothing of our own is mocked. Under pytest-xdist each
worker is a session of its own, with its own servers in its own temp dir.

Every test is marked by its folder (``unit``, ``api``, ``e2e``, ``browser``); the markers are
registered in pyproject.toml.
"""

import shutil
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.extras
import pytest
import redis

from blueprints.app import create_app
from ops_gateway.core import embedded, migrations
from ops_gateway.core.db import Database

KEY_HASH_SECRET = "test-key-hash-secret"
ADMIN_API_KEY = "gw_admin_test_bootstrap_key_0123456789abcdef"
TEMPLATE_DB = "gw_template"
TESTS = Path(__file__).resolve().parent
FOLDER_MARKERS = ("unit", "api", "e2e", "browser")


@pytest.hookimpl(tryfirst=True)  # before -m selects on the markers
def pytest_collection_modifyitems(items):
    """Mark each test with its folder's marker: ``tests/api/...`` is ``api``, and so on."""
    for item in items:
        if item.path.is_relative_to(TESTS) and (folder := item.path.relative_to(TESTS).parts[0]) in FOLDER_MARKERS:
            item.add_marker(folder)


def url_for_database(url, name):
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def admin_execute(url, *statements):
    """Run statements in autocommit (CREATE/DROP DATABASE cannot run in a transaction)."""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


@pytest.fixture(scope="session")
def services():
    """Embedded Postgres + Redis for the whole session, with a migrated template database.

    They live in a private temp dir (not pytest's rotating basetemp, which a concurrent pytest
    run may prune while our servers use it) and are removed at the end.
    """
    instance = Path(tempfile.mkdtemp(prefix="ops-gateway-test-"))
    pg_url = embedded.ensure_postgres(instance)
    redis_url = embedded.ensure_redis(instance)
    admin_execute(pg_url, f"DROP DATABASE IF EXISTS {TEMPLATE_DB}", f"CREATE DATABASE {TEMPLATE_DB}")
    migrations.migrate(Database(url_for_database(pg_url, TEMPLATE_DB)))
    yield {"pg_url": pg_url, "redis_url": redis_url, "instance": str(instance)}
    embedded.stop_redis(instance)
    embedded.stop_postgres(instance)
    shutil.rmtree(instance, ignore_errors=True)


@pytest.fixture
def database_url(services):
    """A fresh, migrated database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin_execute(services["pg_url"], f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    yield url_for_database(services["pg_url"], name)
    admin_execute(services["pg_url"], f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def redis_client(services):
    """A flushed Redis for one test."""
    client = redis.Redis.from_url(services["redis_url"], decode_responses=True)
    client.flushdb()
    return client


@pytest.fixture
def test_settings(services, database_url, redis_client):
    """The overrides every test app starts from."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": services["redis_url"],
        "KEY_HASH_SECRET": KEY_HASH_SECRET,
        "ADMIN_API_KEY": ADMIN_API_KEY,
        "OPENROUTER_BASE_URL": "http://openrouter.test/api/v1",
        "OPENROUTER_API_KEY": "or-test-key",
        "INSTANCE_PATH": services["instance"],
        "LOG_LEVEL": "warning",
        "TESTING": True,
    }


@pytest.fixture
def make_app(test_settings):
    """Build an app with extra overrides (e.g. fail-closed rate limiting)."""
    apps = []

    def build(**extra):
        app = create_app({**test_settings, **extra})
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["ops_gateway.db"].reset()


@pytest.fixture
def app(make_app):
    """The default test app."""
    return make_app()


@pytest.fixture
def client(app):
    """Flask test client."""
    return app.test_client()


@pytest.fixture
def sql(database_url):
    """Run SQL directly against the test's database and get rows back as dicts."""
    conn = psycopg2.connect(database_url, cursor_factory=psycopg2.extras.RealDictCursor)
    conn.autocommit = True

    def run(statement, params=None):
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None

    yield run
    conn.close()
