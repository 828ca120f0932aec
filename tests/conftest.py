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
from collections import deque
from concurrent.futures import ThreadPoolExecutor
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


class DatabasePool:
    """Per-test databases cloned from the migrated template ahead of need.

    A ``CREATE DATABASE ... TEMPLATE`` of the gateway's schema (about 450 relations) takes ~0.3 s
    here, nearly all of it waiting rather than working: four at once finish in the time of one.
    So a few clones are always in flight in background threads and a test takes the oldest, ready
    or nearly; a used database is dropped in the background too. What is left at the end goes
    with the session's Postgres.
    """

    def __init__(self, admin_url, ahead=3):
        self._admin_url = admin_url
        self._workers = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="clone-db")
        self._pending = deque(self._workers.submit(self._clone) for _ in range(ahead))

    def _clone(self):
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin_execute(self._admin_url, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
        return name

    def take(self):
        """The name of a fresh database; its successor's clone is started."""
        ready = self._pending.popleft()
        self._pending.append(self._workers.submit(self._clone))
        return ready.result()

    def give_back(self, name):
        """Drop a used database without waiting for it."""
        self._workers.submit(admin_execute, self._admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self):
        """Let the clones and drops in flight finish (the server stops after them)."""
        self._workers.shutdown(wait=True, cancel_futures=True)


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
    databases = DatabasePool(pg_url)
    yield {"pg_url": pg_url, "redis_url": redis_url, "instance": str(instance), "databases": databases}
    databases.close()
    embedded.stop_redis(instance)
    embedded.stop_postgres(instance)
    shutil.rmtree(instance, ignore_errors=True)


@pytest.fixture
def database_url(services):
    """A fresh, migrated database for one test (cloned ahead: ``DatabasePool``)."""
    name = services["databases"].take()
    yield url_for_database(services["pg_url"], name)
    services["databases"].give_back(name)


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
