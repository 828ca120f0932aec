"""Small helpers for API tests: auth headers, users and keys, error envelopes, concurrency.

Users and keys are made through the admin and user endpoints (never straight into the
database), so a test that uses these helpers also exercises the real account code paths.

The modules beside this one hold one subject's helpers each: ``upstream`` (OpenRouter faked
with requests-mock), ``dashboard``, ``metrics``, ``billing``, ``limits``, ``jobs`` and
``fake_openrouter`` (the fake's own tests). A helper two test modules need lives here or in a
``conftest.py``, never in a ``test_*.py`` module.
"""

import itertools
import re
import threading
from contextlib import contextmanager

import psycopg2
from hypothesis import HealthCheck, settings
from werkzeug.serving import make_server

from tests.conftest import ADMIN_API_KEY

_emails = itertools.count(1)
_CONVERTER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>")


def bearer(key):
    """``Authorization: Bearer <key>`` headers."""
    return {"Authorization": f"Bearer {key}"}


ADMIN = bearer(ADMIN_API_KEY)  # the bootstrap admin key's headers


def create_user(client, **fields):
    """Create a user via ``POST /admin/users`` (bootstrap key); return (user dict, full first key).

    ``email`` defaults to a fresh unique address; any other body field (credits, plan, role,
    username) passes through unchanged.
    """
    body = {"email": f"user{next(_emails)}@example.com", **fields}
    response = client.post("/admin/users", json=body, headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    payload = response.get_json()
    return payload["user"], payload["api_key"]


def create_key(client, key, **fields):
    """Create another key via ``POST /user/api-keys`` with ``key``; return (key dict, full new key)."""
    response = client.post("/user/api-keys", json={"name": "extra", **fields}, headers=bearer(key))
    assert response.status_code == 201, response.get_json()
    payload = response.get_json()
    return payload["key"], payload["api_key"]


def assert_error(response, status, code):
    """Assert ``response`` is the error envelope with this status and code; return its ``error``."""
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body) == {"error"}, body
    assert body["error"]["status"] == status
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]


def example_path(rule):
    """A concrete URL for a werkzeug ``rule``: ``1`` for int/float converters, ``x`` for any other."""
    return _CONVERTER.sub(lambda m: "1" if m.group(1) in ("int", "float") else "x", rule.rule)


@contextmanager
def holding_lock(database_url, table, mode):
    """Hold ``LOCK TABLE <table> IN <mode> MODE`` in another connection's open transaction for the block."""
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(f"LOCK TABLE {table} IN {mode} MODE")
        yield
    finally:
        conn.close()


@contextmanager
def live_server(app):
    """Serve ``app`` from a threaded werkzeug server on a free port; yield its base URL.

    For real concurrency: give the app ``DB_POOL_MAX`` at least the number of parallel requests.
    """
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def run_together(func, arguments):
    """Call ``func(argument)`` for each argument in its own thread, all released at once; return the results."""
    start = threading.Barrier(len(arguments))
    results = [None] * len(arguments)

    def run(index, argument):
        start.wait()
        results[index] = func(argument)

    threads = [threading.Thread(target=run, args=item) for item in enumerate(arguments)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def repeatable_examples(count):
    """Hypothesis settings for bounded fuzzing inside one test: ``count`` examples, a fixed seed,
    no example database and no deadline, so every run tries the same inputs."""
    return settings(
        max_examples=count, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
    )
