"""Capacity limits through the test client: body size, pool waits and exhaustion, the upstream cap."""

import threading
from decimal import Decimal

from tests.helpers import ADMIN, assert_error, create_user
from tests.helpers.metrics import scrape, value
from tests.helpers.upstream import chat


def release_later(seconds, release):
    """Call ``release`` from another thread after ``seconds``."""
    timer = threading.Timer(seconds, release)
    timer.start()
    return timer


def test_oversized_body_is_413_before_authentication_or_parsing(make_app, sql):
    client = make_app(MAX_REQUEST_BYTES=1000).test_client()
    response = client.post(
        "/v1/chat/completions", data=b"{" + b"x" * 2000, headers={"Authorization": "Bearer gw_live_nonsense"}
    )
    error = assert_error(response, 413, "payload_too_large")
    assert error["details"] == {"max_bytes": 1000}
    assert response.headers["Connection"] == "close"
    assert sql("SELECT count(*) AS n FROM api_key_audit_logs WHERE action = 'auth_failure'")[0]["n"] == 0


def test_body_within_the_limit_is_served(make_app, upstream):
    client = make_app(MAX_REQUEST_BYTES=4000).test_client()
    _, key = create_user(client, credits="1.00", plan="team")
    assert chat(client, key, messages=[{"role": "user", "content": "y" * 3000}]).status_code == 200


def test_request_waits_for_a_pooled_connection(make_app):
    app = make_app(DB_POOL_MAX=1, DB_POOL_TIMEOUT_SECONDS=5.0)
    database = app.extensions["ops_gateway.db"]
    held = database.getconn()
    timer = release_later(0.3, lambda: database.putconn(held))
    response = app.test_client().get("/admin/users", headers=ADMIN)
    timer.join()
    assert response.status_code == 200


def test_pool_exhaustion_is_503_database_busy_and_counted(make_app):
    app = make_app(DB_POOL_MAX=1, DB_POOL_TIMEOUT_SECONDS=0.2)
    client = app.test_client()
    database = app.extensions["ops_gateway.db"]
    held = database.getconn()
    try:
        error = assert_error(client.get("/admin/users", headers=ADMIN), 503, "database_busy")
    finally:
        database.putconn(held)
    assert error["message"]
    monitor = client.get("/admin/monitor", headers=ADMIN).get_json()
    assert monitor["data"]["database"]["pool_exhausted_1h"] == 1
    assert value(scrape(client), "gateway_db_pool_exhausted_total") >= 1


def test_completion_over_the_upstream_cap_is_503_and_gives_its_hold_back(make_app, upstream, sql):
    app = make_app(UPSTREAM_MAX_CONCURRENCY=1, WEB_CONCURRENCY=1, UPSTREAM_QUEUE_SECONDS=0.1)
    client = app.test_client()
    user, key = create_user(client, credits="1.00", plan="team")
    with app.app_context():
        taken = app.extensions["ops_gateway.upstream_slots"].acquire()
    try:
        assert_error(chat(client, key), 503, "upstream_busy")
    finally:
        taken.release()
    assert [r for r in upstream.request_history if r.method == "POST"] == []  # never reached upstream
    [row] = sql("SELECT credits, reserved_credits FROM users WHERE id = %s", (user["id"],))
    assert row["reserved_credits"] == 0 and row["credits"] == Decimal("1.00")
    assert sql("SELECT count(*) AS n FROM usage_records")[0]["n"] == 0
    assert value(scrape(client), "gateway_upstream_capacity_rejections_total") >= 1
    assert chat(client, key).status_code == 200  # the slot is free again


def test_completion_queues_for_an_upstream_slot(make_app, upstream):
    app = make_app(UPSTREAM_MAX_CONCURRENCY=1, WEB_CONCURRENCY=1, UPSTREAM_QUEUE_SECONDS=5.0)
    client = app.test_client()
    _, key = create_user(client, credits="1.00", plan="team")
    with app.app_context():
        taken = app.extensions["ops_gateway.upstream_slots"].acquire()
    timer = release_later(0.3, taken.release)
    response = chat(client, key)
    timer.join()
    assert response.status_code == 200
