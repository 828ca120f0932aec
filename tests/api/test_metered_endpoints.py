"""/v1/embeddings, /v1/responses and chat fallbacks (``models``), metered like chat completions."""

import json
from decimal import Decimal

import pytest

from tests.helpers import assert_error, bearer, create_key, create_user
from tests.helpers.upstream import CATALOGUE, DEAR, EMBEDDER, UPSTREAM, chat, completion, mock_model_lists


@pytest.fixture
def upstream(requests_mock):
    mock_model_lists(requests_mock, CATALOGUE, [EMBEDDER])
    requests_mock.post(f"{UPSTREAM}/chat/completions", json=completion(10, 20))
    requests_mock.post(
        f"{UPSTREAM}/embeddings",
        json={
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            "model": EMBEDDER["id"],
            "usage": {"prompt_tokens": 50, "total_tokens": 50, "cost": 0.000001},
        },
    )
    requests_mock.post(
        f"{UPSTREAM}/responses",
        json={
            "id": "resp_1",
            "object": "response",
            "created_at": 1,
            "status": "completed",
            "model": "openai/gpt-4o-mini",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "f", "arguments": "{}"},
            ],
            "usage": {"input_tokens": 30, "output_tokens": 5, "total_tokens": 35},
        },
    )
    return requests_mock


def post(client, key, path, body):
    return client.post(f"/v1/{path}", json=body, headers=bearer(key))


def usage_rows(sql, user_id):
    return sql(
        "SELECT endpoint, model, served_model, prompt_tokens, completion_tokens, cost, upstream_cost"
        " FROM usage_records WHERE user_id = %s ORDER BY id",
        (user_id,),
    )


def test_embeddings_are_held_settled_and_recorded_as_their_endpoint(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    response = post(client, key, "embeddings", {"model": EMBEDDER["id"], "input": ["a", "b"]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"][0]["embedding"] == [0.1, 0.2]
    assert upstream.request_history[-1].json()["usage"] == {"include": True}
    cost = 50 * Decimal("0.00000002")
    assert Decimal(response.headers["X-Gateway-Cost"]) == cost
    assert usage_rows(sql, user["id"]) == [
        {
            "endpoint": "embeddings",
            "model": EMBEDDER["id"],
            "served_model": None,
            "prompt_tokens": 50,
            "completion_tokens": 0,
            "cost": cost,
            "upstream_cost": Decimal("0.000001"),
        }
    ]
    [totals] = sql("SELECT endpoint, cost FROM usage_daily_totals WHERE user_id = %s", (user["id"],))
    assert totals == {"endpoint": "embeddings", "cost": cost}


def test_a_model_is_served_only_at_its_endpoints_and_listed_with_them(client, upstream):
    _, key = create_user(client, credits="1.00", plan="team")
    listed = {m["id"]: m["endpoints"] for m in client.get("/v1/models", headers=bearer(key)).get_json()["data"]}
    assert listed[EMBEDDER["id"]] == ["embeddings"]
    assert listed["openai/gpt-4o-mini"] == ["chat", "responses", "messages"]
    assert_error(post(client, key, "embeddings", {"model": "openai/gpt-4o-mini", "input": "x"}), 404, "model_not_found")
    assert_error(chat(client, key, model=EMBEDDER["id"]), 404, "model_not_found")


def test_responses_pass_output_items_through_and_are_billed_by_input_and_output_tokens(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    body = {"model": "openai/gpt-4o-mini", "input": "hi", "tools": [{"type": "function", "name": "f"}]}
    response = post(client, key, "responses", body)
    assert response.status_code == 200, response.get_json()
    assert [item["type"] for item in response.get_json()["output"]] == ["reasoning", "function_call"]
    [row] = usage_rows(sql, user["id"])
    assert (row["endpoint"], row["prompt_tokens"], row["completion_tokens"]) == ("responses", 30, 5)
    assert row["cost"] == 30 * Decimal("0.00000015") + 5 * Decimal("0.0000006")


def test_a_streamed_response_relays_named_events_and_settles_on_completion(client, upstream, sql):
    completed = {
        "type": "response.completed",
        "response": {"id": "r", "model": "openai/gpt-4o-mini", "usage": {"input_tokens": 8, "output_tokens": 2}},
    }
    events = [
        ("response.created", {"type": "response.created", "response": {"id": "r", "model": "openai/gpt-4o-mini"}}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "Hi"}),
        ("response.completed", completed),
    ]
    text = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
    upstream.post(f"{UPSTREAM}/responses", text=text, headers={"Content-Type": "text/event-stream"})
    user, key = create_user(client, credits="1.00", plan="team")
    response = post(client, key, "responses", {"model": "openai/gpt-4o-mini", "input": "hi", "stream": True})
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    body = response.get_data(as_text=True)
    assert body.count("event: ") == 3 and "event: response.completed" in body
    [row] = usage_rows(sql, user["id"])
    assert (row["endpoint"], row["prompt_tokens"], row["completion_tokens"]) == ("responses", 8, 2)
    assert sql("SELECT reserved_credits FROM users WHERE id = %s", (user["id"],)) == [{"reserved_credits": 0}]


def test_fallbacks_hold_for_the_dearest_and_bill_the_model_that_answered(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    served = {**completion(10, 20), "model": DEAR["id"]}
    upstream.post(f"{UPSTREAM}/chat/completions", json=served)
    response = chat(client, key, models=[DEAR["id"]], provider={"order": ["anthropic"]})
    assert response.status_code == 200
    sent = upstream.request_history[-1].json()
    assert sent["models"] == [DEAR["id"]] and sent["provider"] == {"order": ["anthropic"]}
    [row] = usage_rows(sql, user["id"])
    assert (row["model"], row["served_model"]) == ("openai/gpt-4o-mini", DEAR["id"])
    assert row["cost"] == 10 * Decimal("0.000003") + 20 * Decimal("0.000015")
    # A fallback the key may not use, or one not offered, refuses the whole request.
    _, limited_key = create_key(client, key, name="mini-only", allowed_models=["openai/*"])
    assert_error(chat(client, limited_key, models=[DEAR["id"]]), 403, "model_not_allowed")
    assert_error(chat(client, key, models=["nobody/nothing"]), 404, "model_not_found")


def test_the_hold_covers_the_dearest_fallback(client, upstream):
    _, key = create_user(client, credits="0.0005", plan="team")
    assert chat(client, key).status_code == 200  # the cheap model alone fits
    error = assert_error(chat(client, key, models=[DEAR["id"]]), 402, "insufficient_credits")
    assert error["details"]["model"] == DEAR["id"]


@pytest.mark.parametrize(("path", "scope"), [("embeddings", "embeddings:write"), ("responses", "responses:write")])
def test_each_endpoint_needs_its_scope(client, upstream, path, scope):
    _, key = create_user(client, credits="1.00", plan="team")
    _, chat_key = create_key(client, key, name="chat-only", scopes=["chat:write"])
    body = {"model": EMBEDDER["id"] if path == "embeddings" else "openai/gpt-4o-mini", "input": "x"}
    error = assert_error(post(client, chat_key, path, body), 403, "insufficient_scope")
    assert error["details"] == {"required": scope}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("embeddings", {"model": "openai/text-embedding-3-small"}),
        ("embeddings", {"model": "openai/text-embedding-3-small", "input": []}),
        ("responses", {"model": "openai/gpt-4o-mini", "input": 5}),
        ("chat/completions", {"model": "openai/gpt-4o-mini", "messages": [{"role": "user"}], "models": "x"}),
    ],
)
def test_malformed_bodies_are_422(client, upstream, path, body):
    _, key = create_user(client, credits="1.00", plan="team")
    assert_error(post(client, key, path, body), 422, "validation_error")
