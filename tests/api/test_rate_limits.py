"""Plans, /admin/limit overrides and enforcement on /v1 (real Redis, OpenRouter faked)."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from tests.helpers import ADMIN, assert_error, bearer, create_user
from tests.helpers.dashboard import sign_in
from tests.helpers.limits import WINDOW_HEADERS, set_limits
from tests.helpers.upstream import chat

pytestmark = pytest.mark.usefixtures("upstream")  # OpenRouter faked for every test


def test_plans_are_listed_with_documented_values(client):
    plans = {p["name"]: p for p in client.get("/admin/plans", headers=ADMIN).get_json()["plans"]}
    assert {"trial", "dev", "team"} <= set(plans)
    assert plans["trial"]["requests_per_minute"] == 10 and plans["team"]["max_concurrent_requests"] == 32


def test_request_window_rejects_with_envelope_and_headers(client, sql):
    user, key = create_user(client, credits="5.00", plan="team")
    assert set_limits(client, user_id=user["id"], rate_limits={"requests_per_minute": 2}).status_code == 200
    ok = [chat(client, key) for _ in range(2)]
    assert [r.status_code for r in ok] == [200, 200]
    assert ok[1].headers["X-RateLimit-Remaining-Requests"] == "0"
    for name in WINDOW_HEADERS:
        assert name in ok[0].headers
    rejected = chat(client, key)
    error = assert_error(rejected, 429, "rate_limited")
    assert error["details"] == {"limit": 2, "window": "requests_per_minute"}
    assert 1 <= int(rejected.headers["Retry-After"]) <= 60
    for name in WINDOW_HEADERS:
        assert name in rejected.headers
    chat(client, key)
    [event] = sql("SELECT type, count, details FROM security_events WHERE type = 'rate_limit_exceeded'")
    assert event["count"] == 2 and event["details"]["window"] == "requests_per_minute"
    assert sql("SELECT count(*) AS n FROM usage_records")[0]["n"] == 2


def test_rate_limit_event_records_the_client_ip_and_the_api_and_dashboard_show_it(client, sql):
    user, key = create_user(client, credits="5.00", plan="team")
    set_limits(client, user_id=user["id"], rate_limits={"requests_per_minute": 1})
    caller = {"REMOTE_ADDR": "198.51.100.23"}
    payload = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 50}
    for expected in (200, 429):
        response = client.post("/v1/chat/completions", json=payload, headers=bearer(key), environ_base=caller)
        assert response.status_code == expected
    [event] = sql("SELECT host(ip) AS ip FROM security_events WHERE type = 'rate_limit_exceeded'")
    assert event["ip"] == "198.51.100.23"
    listed = client.get("/admin/security-events", query_string={"type": "rate_limit_exceeded"}, headers=ADMIN)
    assert [e["ip"] for e in listed.get_json()["events"]] == ["198.51.100.23"]
    sign_in(client)
    page = client.get("/dashboard/audit?view=security&type=rate_limit_exceeded").get_data(as_text=True)
    assert '<td class="mono small">198.51.100.23</td>' in page


def test_limit_by_api_key_applies_on_next_request(client):
    _, key = create_user(client, credits="5.00", plan="team")
    response = set_limits(client, api_key=key, rate_limits={"requests_per_minute": 0})
    assert response.status_code == 200
    assert response.get_json()["rate_limits"]["requests_per_minute"] == 0
    assert_error(chat(client, key), 429, "rate_limited")


def test_token_window_stops_traffic_once_real_tokens_cross_it(client):
    user, key = create_user(client, credits="5.00", plan="team")
    set_limits(client, user_id=user["id"], rate_limits={"tokens_per_minute": 50})
    assert chat(client, key).status_code == 200  # 30 real tokens: 20 left
    assert chat(client, key).status_code == 200  # 60 used: over the window now
    error = assert_error(chat(client, key), 429, "rate_limited")
    assert error["details"] == {"limit": 50, "window": "tokens_per_minute"}


def test_get_and_delete_limits_show_sources(client):
    user, _ = create_user(client, plan="dev")
    set_limits(client, user_id=user["id"], rate_limits={"requests_per_hour": 5, "tokens_per_day": None})
    shown = client.get(f"/admin/limit/{user['id']}", headers=ADMIN).get_json()
    assert shown["rate_limits"]["requests_per_hour"] == 5 and shown["sources"]["requests_per_hour"] == "override"
    assert shown["sources"]["tokens_per_day"] == "plan" and shown["plan"] == "dev"
    cleared = client.delete(f"/admin/limit/{user['id']}", headers=ADMIN).get_json()
    assert set(cleared["sources"].values()) == {"plan"} and cleared["rate_limits"]["requests_per_hour"] == 2000


@pytest.mark.parametrize(
    "body,status,code",
    [
        ({"user_id": 999999, "rate_limits": {"requests_per_minute": 1}}, 404, "user_not_found"),
        ({"api_key": "gw_live_" + "x" * 40, "rate_limits": {"requests_per_minute": 1}}, 404, "api_key_not_found"),
        ({"user_id": 1, "rate_limits": {"requests_per_minute": -1}}, 422, "validation_error"),
        ({"user_id": 1, "rate_limits": {"requests_per_minute": "lots"}}, 422, "validation_error"),
        ({"user_id": 1, "rate_limits": {"bogus_window": 1}}, 422, "validation_error"),
        ({"rate_limits": {"requests_per_minute": 1}}, 422, "validation_error"),
    ],
)
def test_bad_limit_requests_are_enveloped(client, body, status, code):
    assert_error(client.post("/admin/limit", json=body, headers=ADMIN), status, code)


def test_concurrency_limit(client, sql):
    user, key = create_user(client, credits="5.00", plan="team")
    sql("UPDATE plans SET max_concurrent_requests = 0 WHERE name = 'team'")
    error = assert_error(chat(client, key), 429, "rate_limited")
    assert error["details"]["window"] == "max_concurrent_requests"


def test_redis_down_fails_open_by_default(make_app, client):
    _, key = create_user(client, credits="5.00", plan="team")
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    response = chat(app.test_client(), key)
    assert response.status_code == 200
    health = app.test_client().get("/health").get_json()
    assert health["status"] == "degraded" and health["redis"] == "disconnected"


def test_redis_down_fails_closed_when_configured(make_app, client, sql):
    _, key = create_user(client, credits="5.00", plan="team")
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0", RATE_LIMIT_FAIL_CLOSED=True)
    assert_error(chat(app.test_client(), key), 503, "rate_limiter_unavailable")
    assert sql("SELECT count(*) AS n FROM usage_records")[0]["n"] == 0


def test_redis_error_type_is_what_we_catch():
    assert issubclass(redis.ConnectionError, redis.RedisError)


def test_a_request_quota_is_exact_under_concurrency(client, upstream, sql):
    """Requests in flight count against a request quota, so concurrent ones cannot overshoot it."""
    sql("UPDATE plans SET daily_request_quota = 5 WHERE name = 'team'")
    user, key = create_user(client, credits="5.00", plan="team")
    with ThreadPoolExecutor(10) as pool:
        statuses = Counter(pool.map(lambda _: chat(client, key).status_code, range(20)))
    assert statuses == Counter({200: 5, 429: 15}), statuses
    assert sql("SELECT sum(requests) AS n FROM usage_daily_totals WHERE user_id = %s", (user["id"],)) == [{"n": 5}]
