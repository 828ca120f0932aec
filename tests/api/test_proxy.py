"""/v1/models, /v1/chat/completions and the model cache through the test client (OpenRouter faked)."""

import json
from decimal import Decimal

import pytest
import requests

from blueprints.fields import format_money
from tests.helpers import ADMIN, assert_error, bearer, create_key, create_user
from tests.helpers.upstream import UPSTREAM, chat, chunk, sse


@pytest.fixture
def user(client, upstream):
    user, key = create_user(client, credits="1.00", plan="team")
    return user, key


def test_models_listed_in_openai_format(client, user):
    response = client.get("/v1/models", headers=bearer(user[1]))
    assert response.status_code == 200
    body = response.get_json()
    assert body["object"] == "list"
    assert {m["id"] for m in body["data"]} == {"openai/gpt-4o-mini", "test/free-model"}
    assert body["data"][0]["object"] == "model"
    assert body["data"][0]["pricing"] == {"prompt": "0.00000015", "completion": "0.0000006"}


def test_completion_charges_exact_cost_and_records_usage(client, user, sql):
    response = chat(client, user[1])
    assert response.status_code == 200, response.get_json()
    cost = Decimal(10) * Decimal("0.00000015") + Decimal(20) * Decimal("0.0000006")
    assert Decimal(response.headers["X-Gateway-Cost"]) == cost
    assert Decimal(response.headers["X-Gateway-Credits-Remaining"]) == Decimal("1.00") - cost
    assert float(response.headers["X-Gateway-Overhead-Ms"]) >= 0
    assert response.headers["X-Request-ID"]
    row = sql("SELECT * FROM usage_records")[0]
    assert (row["prompt_tokens"], row["completion_tokens"], row["cost"], row["status"]) == (10, 20, cost, "success")
    assert row["request_id"] == response.headers["X-Request-ID"]
    assert row["streamed"] is False and row["upstream_status"] == 200
    user_row = sql("SELECT credits, reserved_credits FROM users WHERE id = %s", (user[0]["id"],))[0]
    assert user_row["credits"] == Decimal("1.00") - cost and user_row["reserved_credits"] == 0
    ledger = sql("SELECT amount, kind, balance_after FROM credit_transactions WHERE kind = 'usage'")
    assert ledger == [{"amount": -cost, "kind": "usage", "balance_after": Decimal("1.00") - cost}]
    totals = sql("SELECT requests, prompt_tokens, completion_tokens, cost FROM usage_daily_totals")
    assert totals == [{"requests": 1, "prompt_tokens": 10, "completion_tokens": 20, "cost": cost}]


def test_upstream_receives_gateway_credentials_not_client_key(client, user, upstream):
    chat(client, user[1])
    sent = upstream.request_history[-1]
    assert sent.headers["Authorization"] == "Bearer or-test-key"
    assert user[1] not in json.dumps(dict(sent.headers))
    assert sent.json()["stream"] is False


def test_unknown_model_is_404_before_any_upstream_call(client, user, upstream):
    assert_error(chat(client, user[1], model="nope/none"), 404, "model_not_found")
    assert [r.method for r in upstream.request_history] == ["GET", "GET"]  # the catalogue's two lists only


@pytest.mark.parametrize(
    "body",
    [{"messages": []}, {"messages": "hi"}, {"model": ""}, {"max_tokens": 0}, {"messages": [{"role": "robot"}]}],
)
def test_invalid_body_is_422_envelope(client, user, body):
    assert_error(chat(client, user[1], **body), 422, "validation_error")


def test_insufficient_credits_is_402_without_upstream_call(client, upstream, sql):
    _, key = create_user(client, credits="0.000001", plan="team")
    client.get("/v1/models", headers=bearer(key))
    before = upstream.call_count
    assert_error(chat(client, key, max_tokens=1000), 402, "insufficient_credits")
    assert upstream.call_count == before
    assert sql("SELECT count(*) AS n FROM usage_records")[0]["n"] == 0


def test_requests_refused_after_the_hold_give_it_back(client, upstream, sql):
    """The hold rides on the key lookup; a scope or rate-limit refusal after it must release it."""
    user, key = create_user(client, credits="1.00", plan="team")
    _, read_only = create_key(client, key, scopes=["models:read"])
    assert_error(chat(client, read_only), 403, "insufficient_scope")
    limits = {"user_id": user["id"], "rate_limits": {"requests_per_minute": 1}}
    assert client.post("/admin/limit", json=limits, headers=ADMIN).status_code == 200
    assert chat(client, key).status_code == 200
    assert_error(chat(client, key), 429, "rate_limited")
    [row] = sql("SELECT credits, reserved_credits FROM users WHERE id = %s", (user["id"],))
    charged = sql("SELECT sum(cost) AS cost FROM usage_records")[0]["cost"]
    assert row == {"credits": Decimal("1.00") - charged, "reserved_credits": 0}
    assert sum(r.method == "POST" for r in upstream.request_history) == 1


@pytest.mark.parametrize(
    "status,body,expected_status,expected_code",
    [
        (400, {"error": {"message": "context too long"}}, 400, "upstream_bad_request"),
        (429, {"error": {"message": "slow down"}}, 429, "upstream_rate_limited"),
        (500, {"error": {"message": "boom"}}, 502, "upstream_unavailable"),
        (503, {"error": {"message": "down"}}, 502, "upstream_unavailable"),
    ],
)
def test_upstream_errors_map_to_envelopes_and_cost_nothing(
    client, user, upstream, sql, status, body, expected_status, expected_code
):
    upstream.post(f"{UPSTREAM}/chat/completions", status_code=status, json=body)
    response = chat(client, user[1])
    error = assert_error(response, expected_status, expected_code)
    if status == 400:
        assert "context too long" in error["message"]
    assert sql("SELECT credits, reserved_credits FROM users WHERE id = %s", (user[0]["id"],))[0] == {
        "credits": Decimal("1.00"),
        "reserved_credits": 0,
    }
    row = sql("SELECT status, cost, upstream_status FROM usage_records")[0]
    assert row == {"status": "error", "cost": 0, "upstream_status": status}


def test_upstream_timeout_is_504(client, user, upstream, sql):
    upstream.post(f"{UPSTREAM}/chat/completions", exc=requests.exceptions.ReadTimeout)
    assert_error(chat(client, user[1]), 504, "upstream_timeout")
    assert sql("SELECT credits FROM users WHERE id = %s", (user[0]["id"],))[0]["credits"] == Decimal("1.00")


def test_stream_relays_chunks_and_charges_reported_usage(client, user, upstream, sql):
    body = sse(
        chunk("Hel"),
        chunk("lo"),
        chunk(usage={"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}),
        "[DONE]",
    )
    upstream.post(f"{UPSTREAM}/chat/completions", text=body, headers={"Content-Type": "text/event-stream"})
    response = chat(client, user[1], stream=True)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    text = response.get_data(as_text=True)
    assert text.count("data: ") == 4 and text.rstrip().endswith("data: [DONE]")
    sent = upstream.request_history[-1].json()
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    cost = Decimal(7) * Decimal("0.00000015") + Decimal(2) * Decimal("0.0000006")
    assert f": gateway-cost={format_money(cost)}" in text
    row = sql("SELECT prompt_tokens, completion_tokens, cost, streamed, status FROM usage_records")[0]
    assert row == {"prompt_tokens": 7, "completion_tokens": 2, "cost": cost, "streamed": True, "status": "success"}
    assert sql("SELECT credits FROM users WHERE id = %s", (user[0]["id"],))[0]["credits"] == Decimal("1.00") - cost


def test_stream_abandoned_by_client_is_charged_once(client, user, upstream, sql):
    body = sse(
        chunk("a"),
        chunk("b"),
        chunk("c"),
        chunk(usage={"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}),
        "[DONE]",
    )
    upstream.post(f"{UPSTREAM}/chat/completions", text=body, headers={"Content-Type": "text/event-stream"})
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
            "max_tokens": 50,
        },
        headers=bearer(user[1]),
        buffered=False,
    )
    first = next(response.response)
    assert b"data: " in first
    response.close()  # the client goes away after one chunk
    rows = sql("SELECT status, prompt_tokens, completion_tokens, cost FROM usage_records")
    assert len(rows) == 1
    assert rows[0]["status"] == "incomplete" and rows[0]["cost"] > 0
    charges = sql("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'usage'")[0]["n"]
    assert charges == 1
    assert sql("SELECT reserved_credits FROM users WHERE id = %s", (user[0]["id"],))[0]["reserved_credits"] == 0


def test_refresh_models_and_cache_status(client, upstream):
    response = client.post("/admin/refresh-models", headers=ADMIN)
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "success" and body["total_models"] == 2 and body["duration_ms"] >= 0
    info = client.get("/admin/cache-status", headers=ADMIN).get_json()["cache_info"]
    assert info["has_data"] and info["is_valid"] and not info["is_stale"]
    assert info["total_cached_models"] == 2 and info["refresh_count"] == 1 and info["ttl_seconds"] == 300


def test_failed_refresh_keeps_the_list_and_marks_it_stale(client, user, upstream):
    client.post("/admin/refresh-models", headers=ADMIN)
    upstream.get(f"{UPSTREAM}/models", status_code=503)
    failed = client.post("/admin/refresh-models", headers=ADMIN)
    assert_error(failed, 502, "upstream_unavailable")
    info = client.get("/admin/cache-status", headers=ADMIN).get_json()["cache_info"]
    assert info["is_stale"] and info["last_error"] and info["refresh_failures"] == 1
    assert info["total_cached_models"] == 2
    models = client.get("/v1/models", headers=bearer(user[1]))
    assert models.status_code == 200 and len(models.get_json()["data"]) == 2
    assert client.get("/health").get_json()["openrouter"] == "error"


def test_cache_counts_hits_and_misses(client, user):
    client.get("/v1/models", headers=bearer(user[1]))  # empty cache: a miss that fills it
    client.get("/v1/models", headers=bearer(user[1]))
    client.get("/v1/models", headers=bearer(user[1]))
    info = client.get("/admin/cache-status", headers=ADMIN).get_json()["cache_info"]
    assert (info["misses"], info["hits"]) == (1, 2)
    assert info["hit_rate"] == pytest.approx(2 / 3, abs=1e-3)


def test_a_catalogue_never_fetched_is_502_and_only_after_the_key(client, user, upstream):
    upstream.get(f"{UPSTREAM}/models", status_code=503)
    assert_error(chat(client, "gw_live_" + "n" * 43), 401, "invalid_api_key")
    assert_error(chat(client, user[1]), 502, "upstream_unavailable")
    assert_error(client.get("/v1/models", headers=bearer(user[1])), 502, "upstream_unavailable")
    assert not any(r.method == "POST" for r in upstream.request_history)


def hundred_tools():
    """100 function definitions of about 2 KB each: about 200 KB that upstream bills as prompt."""
    description = "Looks things up. " * 120
    return [
        {"type": "function", "function": {"name": f"tool_{i}", "description": description, "parameters": {}}}
        for i in range(100)
    ]


def test_a_hold_counts_tools_so_a_hundred_tool_definitions_on_one_cent_are_402_up_front(client, upstream, sql):
    _, key = create_user(client, credits="0.01", plan="team")
    client.get("/v1/models", headers=bearer(key))
    before = upstream.call_count
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "tools": hundred_tools()}
    response = client.post("/v1/chat/completions", json=body, headers=bearer(key))
    error = assert_error(response, 402, "insufficient_credits")
    # the prompt bound is the body's bytes capped at the 128,000-token context: more than $0.01
    assert Decimal(error["details"]["required"]) > Decimal("0.01")
    assert upstream.call_count == before
    assert sql("SELECT count(*) AS n FROM usage_records")[0]["n"] == 0
    balance = client.get("/user/balance", headers=bearer(key)).get_json()
    assert Decimal(balance["credits"]) == Decimal("0.01")
