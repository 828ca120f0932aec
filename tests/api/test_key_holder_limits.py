"""Issue 15 #11: /user is rate limited per key, keys are capped and paged, HEAD is no sign-in,
and an open /metrics is announced at start-up (the derived session key: test_app_factory)."""

import logging

from tests.helpers import assert_error, bearer, create_key, create_user, run_together


def test_user_routes_are_rate_limited_per_key_with_window_and_retry_after(make_app):
    client = make_app(USER_RATE_LIMIT="3 per minute").test_client()
    _, key = create_user(client)
    _, other_key = create_key(client, key, name="other")  # 1st request of key
    assert client.get("/user/balance", headers=bearer(key)).status_code == 200
    assert client.get("/user/api-keys", headers=bearer(key)).status_code == 200
    limited = client.post("/user/api-keys", json={"name": "one-too-many"}, headers=bearer(key))
    error = assert_error(limited, 429, "rate_limited")
    assert error["details"] == {"limit": "3 per 1 minute", "window": "user_key"}
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert_error(client.get("/user/monitor", headers=bearer(key)), 429, "rate_limited")  # every /user surface
    assert client.get("/user/balance", headers=bearer(other_key)).status_code == 200  # per key


def test_refused_keys_do_not_spend_a_real_keys_user_budget(make_app):
    client = make_app(USER_RATE_LIMIT="2 per minute").test_client()
    _, key = create_user(client)
    for _ in range(3):
        assert_error(client.get("/user/balance", headers=bearer("gw_live_" + "x" * 43)), 401, "invalid_api_key")
    assert [client.get("/user/balance", headers=bearer(key)).status_code for _ in range(3)] == [200, 200, 429]


def test_key_creation_beyond_the_cap_is_a_409_and_revoking_frees_a_place(make_app, sql):
    client = make_app(MAX_KEYS_PER_USER=3).test_client()
    user, key = create_user(client)
    second, _ = create_key(client, key, name="second")
    create_key(client, key, name="third")
    refused = client.post("/user/api-keys", json={"name": "fourth"}, headers=bearer(key))
    error = assert_error(refused, 409, "key_limit_reached")
    assert error["details"] == {"max_keys": 3}
    assert sql("SELECT count(*) AS n FROM api_keys WHERE user_id = %s", (user["id"],)) == [{"n": 3}]
    rotated = client.post(f"/user/api-keys/{second['id']}/rotate", json={"grace_seconds": 60}, headers=bearer(key))
    assert rotated.status_code == 201  # a rotation replaces a key: the count stays
    assert client.delete(f"/user/api-keys/{second['id']}", headers=bearer(key)).status_code == 200
    assert client.delete(f"/user/api-keys/{rotated.get_json()['key']['id']}", headers=bearer(key)).status_code == 200
    create_key(client, key, name="fourth")


def test_concurrent_creations_never_pass_the_cap(make_app, sql):
    app = make_app(MAX_KEYS_PER_USER=4)
    client = app.test_client()
    user, key = create_user(client)

    def create(number):
        return app.test_client().post("/user/api-keys", json={"name": f"k{number}"}, headers=bearer(key)).status_code

    statuses = run_together(create, range(8))
    assert sorted(statuses) == [201] * 3 + [409] * 5
    assert sql("SELECT count(*) AS n FROM api_keys WHERE user_id = %s AND status = 'active'", (user["id"],)) == [
        {"n": 4}
    ]


def test_key_list_pages_with_limit_and_cursor_and_keeps_its_shape(client):
    _, key = create_user(client)
    for number in range(4):
        create_key(client, key, name=f"k{number}")
    everything = client.get("/user/api-keys", headers=bearer(key)).get_json()
    assert everything["next_cursor"] is None and len(everything["keys"]) == 5
    names, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/user/api-keys", query_string=query, headers=bearer(key)).get_json()
        names += [row["name"] for row in page["keys"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert names == [row["name"] for row in everything["keys"]] == ["k3", "k2", "k1", "k0", "default"]
    bad = client.get("/user/api-keys?cursor=nonsense", headers=bearer(key))
    assert_error(bad, 400, "invalid_cursor")
    assert client.get("/user/api-keys?limit=0", headers=bearer(key)).status_code == 422


def test_head_of_the_sign_in_page_is_not_a_failed_sign_in(make_app, sql):
    client = make_app(AUTH_FAILURE_LIMIT="2 per minute").test_client()
    for _ in range(5):
        assert client.head("/dashboard/login").status_code == 200
    assert sql("SELECT action FROM api_key_audit_logs WHERE action = 'auth_failure'") == []
    assert sql("SELECT type FROM security_events") == []
    assert client.get("/dashboard/login").status_code == 200  # not blocked


def test_open_metrics_outside_the_embedded_database_is_announced_at_start_up(make_app, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="ops_gateway.security")
    make_app()  # the embedded Postgres of the instance folder: development, no warning
    assert not [r for r in caplog.records if "METRICS_TOKEN" in r.getMessage()]
    make_app(METRICS_TOKEN="scrape-secret", INSTANCE_PATH=str(tmp_path))
    assert not [r for r in caplog.records if "METRICS_TOKEN" in r.getMessage()]
    make_app(INSTANCE_PATH=str(tmp_path))  # a database of its own: production
    (record,) = [r for r in caplog.records if "METRICS_TOKEN" in r.getMessage()]
    assert record.name == "ops_gateway.security" and record.levelno == logging.WARNING
    assert "/metrics is open" in record.getMessage()
