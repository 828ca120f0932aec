"""Bad input is a cheap 4xx (issue 22): a wrong key or a blocked IP is refused before a large body
is read, numbers a double cannot hold are 400 before any endpoint sees them, the other inputs
that were 500s are 4xx, client mistakes never fire the error-rate alert, and an IP block holds
however its address is spelled."""

import base64
import io
import json
import time

import pytest

from blueprints.body_screen import SCREENED_BODY_BYTES
from blueprints.proxy_schemas import MAX_FALLBACK_MODELS
from ops_gateway.observability.alert_rules import evaluate_alert_rules
from tests.helpers import ADMIN, assert_error, bearer, create_user
from tests.helpers.dashboard import sign_in
from tests.helpers.jobs import QUIET

WRONG_KEY = "gw_live_" + "w" * 43
MODEL = "openai/gpt-4o-mini"
# 4 MB of messages without content: parsing and validating it cost seconds of CPU.
BIG_CHAT = json.dumps({"model": MODEL, "messages": [{"role": "user"}] * 220_000}).encode()


class CountingBody(io.BytesIO):
    """A request body that counts the bytes the app reads from it."""

    def __init__(self, data):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size=-1):
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer):
        count = super().readinto(buffer)
        self.bytes_read += count
        return count

    def readline(self, size=-1):
        data = super().readline(size)
        self.bytes_read += len(data)
        return data


def post_counted(client, path, data, headers=None, **options):
    """POST ``data`` as JSON from a stream that counts what is read; (response, bytes read, CPU seconds)."""
    body = CountingBody(data)
    started = time.process_time()
    response = client.post(
        path,
        input_stream=body,
        content_length=len(data),
        content_type="application/json",
        headers=headers or {},
        **options,
    )
    return response, body.bytes_read, time.process_time() - started


def auth_failures(sql):
    return sql(
        "SELECT details->>'reason' AS reason, host(ip) AS ip FROM api_key_audit_logs"
        " WHERE action = 'auth_failure' ORDER BY id"
    )


# 1. A wrong key or a blocked IP is refused before the body is read.


@pytest.mark.parametrize(
    ("path", "headers", "status", "code", "reason"),
    [
        ("/v1/chat/completions", bearer(WRONG_KEY), 401, "invalid_api_key", "unknown_key"),
        ("/v1/chat/completions", bearer("gw_bogus"), 401, "invalid_api_key", "malformed_key"),
        ("/v1/embeddings", {}, 401, "unauthorized", "missing"),
        ("/v1/responses", bearer(WRONG_KEY), 401, "invalid_api_key", "unknown_key"),
        ("/user/api-keys", bearer(WRONG_KEY), 401, "invalid_api_key", "unknown_key"),
        ("/admin/users", bearer(WRONG_KEY), 401, "invalid_api_key", "unknown_key"),
    ],
)
def test_a_wrong_key_with_a_4_mb_body_is_refused_without_reading_the_body(
    client, sql, path, headers, status, code, reason
):
    response, read, cpu = post_counted(client, path, BIG_CHAT, headers)
    assert_error(response, status, code)
    assert read == 0
    assert response.headers["Connection"] == "close"  # the unread body is never parsed as a next request
    assert cpu < 0.5  # reading and validating it took 2-3 s
    assert auth_failures(sql) == [{"reason": reason, "ip": "127.0.0.1"}]  # audited as before


def test_a_blocked_ip_with_a_4_mb_body_and_a_valid_key_gets_its_429_unread(client, sql, upstream):
    _, key = create_user(client, credits="1.00")
    assert client.post(
        "/admin/blocked-ips", json={"ip": "198.51.100.4", "ttl_seconds": 600, "reason": "x"}, headers=ADMIN
    )
    attacker = {"environ_base": {"REMOTE_ADDR": "198.51.100.4"}}
    for path in ("/v1/chat/completions", "/user/api-keys", "/dashboard/login"):
        response, read, _ = post_counted(client, path, BIG_CHAT, bearer(key), **attacker)
        assert response.status_code == 429, path
        assert read == 0, path
    assert auth_failures(sql) == []


def test_failures_with_large_bodies_count_toward_the_ip_block(make_app, sql):
    client = make_app(AUTH_FAILURE_LIMIT="3 per 5 minutes").test_client()
    statuses = [
        post_counted(client, "/v1/chat/completions", BIG_CHAT, bearer(WRONG_KEY))[0].status_code for _ in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
    assert sql("SELECT host(address) AS ip FROM ip_blocks") == [{"ip": "127.0.0.1"}]


def test_a_large_body_to_a_route_that_does_not_take_it_is_404_or_405_unread(client):
    for path, status in (("/health/live", 405), ("/v1/nowhere", 404)):
        response, read, _ = post_counted(client, path, BIG_CHAT)
        assert response.status_code == status
        assert read == 0


def test_a_valid_key_with_a_large_body_is_served_and_a_small_body_needs_no_screen(client, upstream, sql):
    _, key = create_user(client, credits="1.00", plan="team")
    content = "y" * (SCREENED_BODY_BYTES + 10)
    large = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 5}).encode()
    response, read, _ = post_counted(client, "/v1/chat/completions", large, bearer(key))
    assert response.status_code == 200, response.get_json()
    assert read == len(large)
    assert "Connection" not in response.headers
    small = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}).encode()
    assert post_counted(client, "/v1/chat/completions", small, bearer(key))[0].status_code == 200
    assert auth_failures(sql) == []
    assert sql("SELECT count(*) AS n FROM usage_records")[0]["n"] == 2


# 2. Numbers a double cannot hold are 400 non_finite_number.


@pytest.mark.parametrize(
    "field",
    [
        '"temperature": 1e400',
        '"temperature": -1e400',
        '"metadata": {"deep": [{"x": 1E+400}]}',
        '"top_k": 1' + "0" * 400,
        '"seed": -9' + "9" * 310 + ".5",
    ],
)
def test_a_number_beyond_a_double_is_400_and_never_reaches_upstream(client, upstream, sql, field):
    _, key = create_user(client, credits="1.00", plan="team")
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
    body = body[:-1] + ", " + field + "}"
    response = client.post(
        "/v1/chat/completions", data=body, headers={**bearer(key), "Content-Type": "application/json"}
    )
    error = assert_error(response, 400, "non_finite_number")
    assert len(error["details"]["value"]) <= 40
    assert sum(r.method == "POST" for r in upstream.request_history) == 0
    assert sql("SELECT count(*) AS n FROM usage_records")[0]["n"] == 0


def test_large_finite_numbers_and_1e400_in_a_string_are_fine(client, upstream):
    _, key = create_user(client, credits="1.00", plan="team")
    body = {"model": MODEL, "messages": [{"role": "user", "content": "1e400 NaN"}], "max_tokens": 5, "seed": 1.7e308}
    assert client.post("/v1/chat/completions", json=body, headers=bearer(key)).status_code == 200


def test_a_number_beyond_a_double_is_400_on_every_json_route(client):
    _, key = create_user(client, credits="1.00")
    assert_error(
        client.post(
            "/user/api-keys",
            data='{"name": "k", "x": 1e400}',
            headers={**bearer(key), "Content-Type": "application/json"},
        ),
        400,
        "non_finite_number",
    )
    assert_error(
        client.post(
            "/admin/users",
            data='{"email": "a@example.com", "credits": -1e999}',
            headers={**ADMIN, "Content-Type": "application/json"},
        ),
        400,
        "non_finite_number",
    )


# 4. Inputs that were 500s.


def encoded_cursor(raw):
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize("row_id", ["1e400", "-1", "1.5", "true", str(2**63)])
def test_a_cursor_with_an_impossible_id_is_400_on_every_paged_route(client, row_id):
    user, key = create_user(client, credits="1.00")
    cursor = encoded_cursor(f'["2026-01-01T00:00:00+00:00", {row_id}]')
    spec = client.get("/openapi.json").get_json()
    paged = [
        path
        for path, operations in spec["paths"].items()
        if any(p["name"] == "cursor" for p in operations.get("get", {}).get("parameters", []))
    ]
    assert len(paged) >= 5, paged
    for path in paged:
        url = path.replace("{user_id}", str(user["id"]))
        headers = ADMIN if path.startswith("/admin") else bearer(key)
        error = assert_error(client.get(url, query_string={"cursor": cursor}, headers=headers), 400, "invalid_cursor")
        assert error["details"] == {"parameter": "cursor"}, path
    sign_in(client)
    page = client.get("/dashboard/audit", query_string={"cursor": cursor})
    assert page.status_code == 200 and b"that page link is not valid any more" in page.data


@pytest.mark.parametrize(
    "argument", ["end_date=0001-01-01", "end_date=9999-12-31", "start_date=0001-01-01&end_date=0001-01-05"]
)
def test_a_report_date_outside_the_supported_range_is_400(client, argument):
    _, key = create_user(client, credits="1.00")
    assert_error(client.get(f"/user/usage?{argument}", headers=bearer(key)), 400, "invalid_date")
    assert_error(client.get(f"/admin/reports/usage?{argument}", headers=ADMIN), 400, "invalid_date")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings", "/v1/responses"])
@pytest.mark.parametrize("models", [[["x"]], [{"a": 1}], [1], [MODEL] * (MAX_FALLBACK_MODELS + 1)])
def test_models_must_be_at_most_ten_model_ids_on_every_metered_route(client, upstream, sql, path, models):
    _, key = create_user(client, credits="1.00", plan="enterprise")
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "input": "hi", "models": models}
    error = assert_error(client.post(path, json=body, headers=bearer(key)), 422, "validation_error")
    assert "models" in error["details"]["fields"]["json"]
    assert sum(r.method == "POST" for r in upstream.request_history) == 0


# 5. What a client sends wrong never fires the error-rate alert.


def test_eighty_requests_with_1e400_never_reach_upstream_nor_fire_the_error_rate_alert(make_app, upstream, sql):
    app = make_app(ALERT_ERROR_RATE_PERCENT=5.0, **QUIET)
    client = app.test_client()
    _, key = create_user(client, credits="5.00", plan="enterprise")
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "metadata": {"n": [1]}})
    body = body.replace("[1]", "[1e400]")
    headers = {**bearer(key), "Content-Type": "application/json"}
    for _ in range(80):
        assert_error(client.post("/v1/chat/completions", data=body, headers=headers), 400, "non_finite_number")
    assert [r.url for r in upstream.request_history if r.method == "POST"] == []
    assert sql("SELECT count(*) AS n FROM usage_records")[0]["n"] == 0
    with app.app_context():
        assert evaluate_alert_rules()["error_rate"] == "ok"
    assert sql("SELECT count(*) AS n FROM alerts WHERE rule = 'error_rate'")[0]["n"] == 0


# 6. An IP block holds however the address is spelled.


@pytest.mark.parametrize(
    ("blocked", "spellings"),
    [
        ("2001:db8::1", ["2001:DB8::1", "2001:db8:0:0::1", "2001:0db8:0000::0001", "2001:db8::1"]),
        ("2001:DB8:0:0::1", ["2001:db8::1"]),
        ("192.0.2.7", ["::ffff:192.0.2.7", "::FFFF:C000:207"]),
        ("::ffff:192.0.2.8", ["192.0.2.8"]),
    ],
)
def test_an_admin_block_refuses_every_spelling_of_the_address_behind_a_trusted_proxy(
    make_app, sql, redis_client, blocked, spellings
):
    client = make_app(TRUSTED_PROXY_COUNT=1).test_client()
    _, key = create_user(client)
    response = client.post("/admin/blocked-ips", json={"ip": blocked, "ttl_seconds": 600, "reason": "x"}, headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    canonical = response.get_json()["address"]
    assert sql("SELECT host(address) AS ip FROM ip_blocks") == [{"ip": canonical}]
    assert redis_client.exists(f"gw:ipblock:{canonical}") == 1
    for spelling in spellings:
        forwarded = {**bearer(key), "X-Forwarded-For": spelling}
        assert_error(client.get("/user/balance", headers=forwarded), 429, "ip_blocked")
        assert_error(client.get("/v1/models", headers=forwarded), 429, "ip_blocked")
    assert client.get("/user/balance", headers={**bearer(key), "X-Forwarded-For": "2001:db8::2"}).status_code == 200


def test_failures_from_several_spellings_of_one_address_add_up_to_one_block(make_app, sql, redis_client):
    client = make_app(TRUSTED_PROXY_COUNT=1, AUTH_FAILURE_LIMIT="3 per 5 minutes").test_client()
    _, key = create_user(client)
    for spelling in ("2001:DB8::9", "2001:db8:0::9", "2001:0db8::0009"):
        client.get("/user/balance", headers={**bearer(WRONG_KEY), "X-Forwarded-For": spelling})
    assert_error(
        client.get("/user/balance", headers={**bearer(key), "X-Forwarded-For": "2001:db8::9"}), 429, "ip_blocked"
    )
    assert sql("SELECT host(address) AS ip FROM ip_blocks") == [{"ip": "2001:db8::9"}]
    assert {row["ip"] for row in auth_failures(sql)} == {"2001:db8::9"}
    assert redis_client.exists("gw:ipblock:2001:db8::9") == 1
    assert client.delete("/admin/blocked-ips/2001:DB8:0:0::9", headers=ADMIN).status_code == 204
    assert client.get("/user/balance", headers={**bearer(key), "X-Forwarded-For": "2001:db8::9"}).status_code == 200
