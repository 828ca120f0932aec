"""Security monitoring end to end: brute-force blocks, suspicious activity, /admin/security-events, JSON logs."""

import io
import json
import sys
from decimal import Decimal

from ops_gateway.observability import security_events
from tests.helpers import ADMIN, assert_error, bearer, create_user

ATTACKER = {"REMOTE_ADDR": "203.0.113.9"}
OFFICE = {"REMOTE_ADDR": "198.51.100.20"}
WRONG_KEY = bearer("gw_live_" + "w" * 43)


def test_brute_force_blocks_the_ip_with_one_event_while_others_still_work(make_app, sql):
    app = make_app(AUTH_FAILURE_LIMIT="5 per 5 minutes", AUTH_BLOCK_SECONDS=600)
    client = app.test_client()
    _, key = create_user(client)
    codes = [
        client.get("/user/monitor", headers=WRONG_KEY, environ_base=ATTACKER).get_json()["error"]["code"]
        for _ in range(9)
    ]
    assert codes == ["invalid_api_key"] * 5 + ["ip_blocked"] * 4  # the 5th failure blocks
    blocked = client.get("/user/monitor", headers=bearer(key), environ_base=ATTACKER)
    error = assert_error(blocked, 429, "ip_blocked")  # even the right key, from the blocked IP
    assert 0 < int(blocked.headers["Retry-After"]) <= 600 and error["details"]["retry_after"] > 0
    assert client.get("/user/monitor", headers=bearer(key), environ_base=OFFICE).status_code == 200
    events = sql("SELECT type, host(ip) AS ip, details FROM security_events WHERE type = 'ip_blocked'")
    assert events == [
        {
            "type": "ip_blocked",
            "ip": "203.0.113.9",
            "details": {"reason": "repeated_auth_failures", "limit": "5 per 5 minute", "block_seconds": 600},
        }
    ]


def test_a_blocked_ip_gets_429_on_v1_even_with_a_valid_key(make_app, requests_mock):
    from tests.helpers.upstream import mock_model_lists

    mock_model_lists(requests_mock)
    app = make_app(AUTH_FAILURE_LIMIT="2 per 5 minutes")
    client = app.test_client()
    _, key = create_user(client)
    for _ in range(2):
        assert_error(client.get("/v1/models", headers=WRONG_KEY, environ_base=ATTACKER), 401, "invalid_api_key")
    assert_error(client.get("/v1/models", headers=bearer(key), environ_base=ATTACKER), 429, "ip_blocked")
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    blocked = client.post("/v1/chat/completions", json=body, headers=bearer(key), environ_base=ATTACKER)
    assert_error(blocked, 429, "ip_blocked")
    assert client.get("/v1/models", headers=bearer(key), environ_base=OFFICE).status_code == 200


def test_admin_routes_and_dashboard_share_one_per_ip_limit(make_app):
    app = make_app(ADMIN_RATE_LIMIT="3 per minute")
    client = app.test_client()
    assert client.get("/admin/plans", headers=ADMIN, environ_base=ATTACKER).status_code == 200
    assert_error(client.get("/admin/plans", headers=WRONG_KEY, environ_base=ATTACKER), 401, "invalid_api_key")
    assert client.get("/dashboard/login", environ_base=ATTACKER).status_code == 200
    limited = client.get("/admin/plans", headers=ADMIN, environ_base=ATTACKER)
    error = assert_error(limited, 429, "rate_limited")
    assert error["details"] == {"limit": "3 per 1 minute", "window": "admin_ip"}
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert client.get("/dashboard/login", environ_base=ATTACKER).status_code == 429
    assert client.get("/admin/plans", headers=ADMIN, environ_base=OFFICE).status_code == 200  # per IP
    assert client.get("/health/live", environ_base=ATTACKER).status_code == 200  # only admin routes


def test_security_events_filter_by_type_user_ip_and_date_with_cursor_pages(client, sql):
    user, _ = create_user(client)
    sql(
        "INSERT INTO security_events (type, user_id, ip, created_at)"
        " SELECT CASE WHEN n %% 2 = 0 THEN 'ip_blocked' ELSE 'new_ip_for_key' END, %s, '192.0.2.7',"
        " now() - n * interval '1 minute' FROM generate_series(1, 25) AS n",
        (user["id"],),
    )
    sql("INSERT INTO security_events (type, ip) VALUES ('ip_blocked', '192.0.2.99')")
    pages, cursor = [], None
    while True:
        query = {"type": "ip_blocked", "ip": "192.0.2.7", "limit": 5, **({"cursor": cursor} if cursor else {})}
        body = client.get("/admin/security-events", query_string=query, headers=ADMIN).get_json()
        pages.append(body["events"])
        cursor = body["next_cursor"]
        if not cursor:
            break
    events = [event for page in pages for event in page]
    assert len(events) == 12 and {e["type"] for e in events} == {"ip_blocked"}
    times = [e["created_at"] for e in events]
    assert times == sorted(times, reverse=True) and len({e["id"] for e in events}) == 12
    by_user = client.get("/admin/security-events", query_string={"user_id": user["id"]}, headers=ADMIN).get_json()
    assert len(by_user["events"]) == 25
    recent = client.get(
        "/admin/security-events",
        query_string={
            "user_id": user["id"],
            "start_date": events[0]["created_at"],
            "end_date": events[0]["created_at"],
        },
        headers=ADMIN,
    ).get_json()
    assert [e["id"] for e in recent["events"]] == [events[0]["id"]]


def test_security_events_reject_bad_filters_with_envelopes(client):
    get = client.get
    assert_error(get("/admin/security-events?start_date=yesterday", headers=ADMIN), 400, "invalid_date")
    assert_error(get("/admin/security-events?cursor=nonsense", headers=ADMIN), 400, "invalid_cursor")
    assert_error(get("/admin/security-events?ip=not-an-ip", headers=ADMIN), 422, "validation_error")
    swapped = "/admin/security-events?start_date=2026-02-01T00:00:00Z&end_date=2026-01-01T00:00:00Z"
    assert_error(get(swapped, headers=ADMIN), 400, "invalid_date_range")


def add_usage(sql, user_id, requests, hours_ago=0, cost="0.001"):
    sql(
        "INSERT INTO usage_records (request_id, user_id, model, status, cost, created_at)"
        " SELECT 'r' || n, %s, 'm', 'success', %s, date_trunc('hour', now()) - %s * interval '1 hour'"
        " FROM generate_series(1, %s) AS n",
        (user_id, cost, hours_ago, requests),
    )


def test_suspicious_activity_is_one_event_per_user_per_hour(app, client, sql):
    burst, _ = create_user(client)
    steady, _ = create_user(client)
    quiet, _ = create_user(client)
    add_usage(sql, burst["id"], 150)  # no history: 150 > floor of 100
    add_usage(sql, steady["id"], 150)  # 150 <= 5 x its usual 40 an hour
    add_usage(sql, quiet["id"], 60)  # under the floor
    sql(
        "INSERT INTO usage_daily_totals (day, user_id, model, requests, cost)"
        " SELECT (now() AT TIME ZONE 'UTC')::date - d, %s, 'm', 40 * 24, 1 FROM generate_series(1, 7) AS d",
        (steady["id"],),
    )
    with app.app_context():
        assert security_events.detect_suspicious_activity() == [burst["id"]]
        add_usage(sql, burst["id"], 100)
        assert security_events.detect_suspicious_activity() == []
    [event] = sql("SELECT user_id, count, details FROM security_events WHERE type = 'suspicious_activity'")
    assert event["user_id"] == burst["id"] and event["count"] == 1
    assert event["details"]["requests_this_hour"] == 150 and event["details"]["baseline_requests_per_hour"] == "0.00"


def test_suspicious_activity_also_catches_spend(make_app, sql):
    app = make_app(SUSPICIOUS_MIN_COST_PER_HOUR=Decimal("1.00"))
    client = app.test_client()
    spender, _ = create_user(client)
    add_usage(sql, spender["id"], 3, cost="0.75")  # few requests, $2.25 this hour
    with app.app_context():
        assert security_events.detect_suspicious_activity() == [spender["id"]]


def test_security_event_is_one_json_log_line(make_app, monkeypatch):
    stdout = io.StringIO()  # logging is configured onto sys.stdout when the app is built
    monkeypatch.setattr(sys, "stdout", stdout)
    client = make_app(LOG_FORMAT="json", LOG_LEVEL="warning", AUTH_FAILURE_LIMIT="1 per 5 minutes").test_client()
    for _ in range(2):
        client.get("/user/monitor", headers=WRONG_KEY, environ_base=ATTACKER)
    lines = [json.loads(line) for line in stdout.getvalue().splitlines()]
    [event] = [line for line in lines if line["message"] == "security event"]
    assert event["logger"] == "ops_gateway.security" and event["level"] == "WARNING"
    assert event["event"] == "ip_blocked" and event["ip"] == "203.0.113.9"
    assert event["request_id"] and event["pid"] and event["ts"]
    assert "w" * 43 not in json.dumps(lines)  # the presented key is never logged
