"""/v1/messages (the Anthropic Messages API, as Claude Code and the anthropic SDK call it) and
/v1/models/{id}, through the test client with OpenRouter faked."""

import json
from decimal import Decimal

import pytest

from tests.helpers import ADMIN, bearer, create_key, create_user
from tests.helpers.billing import books, cut_after
from tests.helpers.jobs import run_reconciliation
from tests.helpers.upstream import SSE, UPSTREAM

MODEL = "openai/gpt-4o-mini"
BODY = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]}
USAGE = {
    "input_tokens": 10,
    "output_tokens": 5,
    "cache_creation_input_tokens": 3,
    "cache_read_input_tokens": 7,
    "cost": 0.000042,
}
MESSAGE = {
    "id": "gen-msg-1",
    "type": "message",
    "role": "assistant",
    "model": MODEL,
    "content": [{"type": "text", "text": "hi"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": USAGE,
}


def event(name, **data):
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"


def stream_events(deltas=3, finished=True):
    start = {**MESSAGE, "content": [], "stop_reason": None, "usage": {"input_tokens": 10, "output_tokens": 1}}
    text = event("message_start", message=start) + event("content_block_start", index=0, content_block={"type": "text"})
    text += event("ping")
    text += "".join(
        event("content_block_delta", index=0, delta={"type": "text_delta", "text": f"w{i}"}) for i in range(deltas)
    )
    if finished:
        text += event("content_block_stop", index=0)
        text += event(
            "message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": deltas, "cost": 0.00002}
        )
        text += event("message_stop")
    return text


def anthropic_key(key):
    return {"x-api-key": key, "anthropic-version": "2023-06-01"}


@pytest.fixture
def upstream(upstream):
    upstream.post(f"{UPSTREAM}/messages", json=MESSAGE)
    return upstream


def assert_anthropic_error(response, status, error_type, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["type"] == "error" and body["error"]["type"] == error_type, body
    assert isinstance(body["error"]["message"], str) and body["request_id"]
    if code:
        assert body["error"]["code"] == code


def test_a_message_is_answered_with_an_x_api_key_billed_from_upstreams_cost_with_cache_tokens(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    headers = {**anthropic_key(key), "anthropic-beta": "prompt-caching-2024-07-31"}
    response = client.post("/v1/messages", json=BODY, headers=headers)
    assert response.status_code == 200 and response.get_json()["content"] == [{"type": "text", "text": "hi"}]
    assert response.headers["X-Gateway-Cost"] == "0.000042"
    sent = upstream.request_history[-1]
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert sent.json()["usage"] == {"include": True} and sent.json()["max_tokens"] == 64
    [row] = sql("SELECT endpoint, prompt_tokens, completion_tokens, cost FROM usage_records")
    assert row == {"endpoint": "messages", "prompt_tokens": 20, "completion_tokens": 5, "cost": Decimal("0.000042")}
    assert books(sql, user["id"])["credits"] == Decimal("1.00") - Decimal("0.000042")


def test_claude_codes_bearer_token_works_too(client, upstream):
    _, key = create_user(client, credits="1.00", plan="team")
    assert client.post("/v1/messages", json=BODY, headers=bearer(key)).status_code == 200


def test_a_streamed_message_is_relayed_event_by_event_and_settled_from_message_delta(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    upstream.post(f"{UPSTREAM}/messages", text=stream_events(), headers=SSE)
    response = client.post("/v1/messages", json={**BODY, "stream": True}, headers=anthropic_key(key))
    text = response.get_data(as_text=True)
    names = [line[len("event: ") :] for line in text.splitlines() if line.startswith("event: ")]
    assert names == ["message_start", "content_block_start", "ping"] + ["content_block_delta"] * 3 + [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    [row] = books(sql, user["id"])["usage"]
    assert row == {
        "status": "success",
        "cost": Decimal("0.00002"),
        "upstream_cost": Decimal("0.00002"),
        "prompt_tokens": 10,
        "completion_tokens": 3,
    }


def test_a_cut_message_stream_is_charged_its_bound_and_reconciled(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    upstream.post(f"{UPSTREAM}/messages", text=stream_events(deltas=10, finished=False), headers=SSE)
    response = client.post("/v1/messages", json={**BODY, "stream": True}, headers=anthropic_key(key), buffered=False)
    cut_after(response, 5)
    [row] = books(sql, user["id"])["usage"]
    assert row["status"] == "incomplete" and row["prompt_tokens"] == 10 and row["upstream_cost"] is None
    upstream.get(f"{UPSTREAM}/generation?id=gen-msg-1", json={"data": {"total_cost": 0.0001}})
    assert run_reconciliation(client)["reconciled"] == 1
    assert books(sql, user["id"])["credits"] == Decimal("0.9999")


def test_errors_come_in_anthropics_shape_with_the_same_statuses(client, upstream, sql):
    _, key = create_user(client, credits="1.00", plan="team")
    assert_anthropic_error(client.post("/v1/messages", json=BODY), 401, "authentication_error")
    bad = {"x-api-key": "gw_live_" + "x" * 40}
    assert_anthropic_error(client.post("/v1/messages", json=BODY, headers=bad), 401, "authentication_error")
    without_limit = {k: v for k, v in BODY.items() if k != "max_tokens"}
    response = client.post("/v1/messages", json=without_limit, headers=anthropic_key(key))
    assert_anthropic_error(response, 422, "invalid_request_error", "validation_error")
    unknown = client.post("/v1/messages", json={**BODY, "model": "nope/nope"}, headers=anthropic_key(key))
    assert_anthropic_error(unknown, 404, "not_found_error", "model_not_found")
    _, restricted = create_key(client, key, name="r", allowed_models=["test/free-model"])
    assert_anthropic_error(
        client.post("/v1/messages", json=BODY, headers=anthropic_key(restricted)), 403, "permission_error"
    )
    _, poor = create_user(client, credits="0.00", plan="team")
    assert_anthropic_error(
        client.post("/v1/messages", json=BODY, headers=anthropic_key(poor)),
        402,
        "billing_error",
        "insufficient_credits",
    )
    assert client.post("/v1/messages/nope", json=BODY, headers=anthropic_key(key)).get_json()["type"] == "error"
    assert sql("SELECT count(*) AS n FROM usage_records") == [{"n": 0}]


def test_a_rate_limited_message_is_a_rate_limit_error_with_retry_after(client, upstream):
    user, key = create_user(client, credits="1.00", plan="team")
    limit = {"user_id": user["id"], "rate_limits": {"requests_per_minute": 1}}
    assert client.post("/admin/limit", json=limit, headers=ADMIN).status_code == 200
    assert client.post("/v1/messages", json=BODY, headers=anthropic_key(key)).status_code == 200
    response = client.post("/v1/messages", json=BODY, headers=anthropic_key(key))
    assert_anthropic_error(response, 429, "rate_limit_error")
    assert int(response.headers["Retry-After"]) >= 1


def test_count_tokens_answers_the_gateways_bound_unmetered_and_scope_checked(client, upstream, sql):
    _, key = create_user(client, credits="1.00", plan="team")
    body = {k: v for k, v in BODY.items() if k != "max_tokens"}
    response = client.post("/v1/messages/count_tokens", json=body, headers=anthropic_key(key))
    assert response.status_code == 200 and response.get_json()["input_tokens"] == len(
        json.dumps(body, separators=(",", ":"))
    )
    _, chat_only = create_key(client, key, name="chat", scopes=["chat:write"])
    refused = client.post("/v1/messages/count_tokens", json=body, headers=anthropic_key(chat_only))
    assert_anthropic_error(refused, 403, "permission_error", "insufficient_scope")
    assert sql("SELECT count(*) AS n FROM usage_records") == [{"n": 0}]


def test_a_model_is_retrieved_by_id_and_an_unknown_or_disallowed_one_is_a_json_404(client, upstream):
    _, key = create_user(client, credits="1.00", plan="team")
    response = client.get(f"/v1/models/{MODEL}", headers=bearer(key))
    assert response.status_code == 200
    assert response.get_json()["id"] == MODEL and response.get_json()["object"] == "model"
    assert "messages" in response.get_json()["endpoints"]
    missing = client.get("/v1/models/nope/nope", headers=bearer(key))
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "model_not_found"
    _, restricted = create_key(client, key, name="r", allowed_models=["test/free-model"])
    assert client.get(f"/v1/models/{MODEL}", headers=bearer(restricted)).status_code == 404
    unknown_path = client.get("/v1/nothing-here", headers=bearer(key))
    assert unknown_path.status_code == 404 and unknown_path.get_json()["error"]["code"] == "not_found"
