"""Upstream's bill is what the user pays: every request shape an attacker used to pay a fraction of
it (cut streams with huge prompts, no output limit, dearer providers, embedding batches, routers)
is charged what OpenRouter reports, reconciled from its generation lookup, and settled once."""

import json
from decimal import Decimal

import pytest

from ops_gateway.billing import pricing, settlement
from ops_gateway.core import db
from tests.helpers import ADMIN, assert_error, bearer, create_user
from tests.helpers.billing import books, cut_after
from tests.helpers.jobs import run_reconciliation
from tests.helpers.upstream import CATALOGUE, DEAR, EMBEDDER, SSE, UPSTREAM, chunk, completion, mock_model_lists, sse

MINI_PROMPT = Decimal("0.00000015")
AUTO = {"id": "openrouter/auto", "name": "Auto Router", "context_length": 2000000,
        "pricing": {"prompt": "-1", "completion": "-1"}}  # fmt: skip
MESSAGES = [{"role": "user", "content": "x"}]
TOOLS = [  # about 300 KB that upstream bills as prompt, none of it message text
    {"type": "function", "function": {"name": f"f{i}", "description": "d" * 3000, "parameters": {"type": "object"}}}
    for i in range(100)
]


@pytest.fixture
def upstream(requests_mock):
    """The metered endpoints' catalogue with the auto router listed at OpenRouter's "-1"."""
    mock_model_lists(requests_mock, {"data": [*CATALOGUE["data"], AUTO]}, [EMBEDDER])
    requests_mock.post(f"{UPSTREAM}/chat/completions", json=completion(10, 20))
    return requests_mock


def test_a_cut_stream_pays_its_whole_prompt_bound_then_exactly_what_upstream_billed(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    events = sse(*[chunk(f"w{i}") for i in range(40)], chunk(usage={"prompt_tokens": 75000, "cost": 0.2}), "[DONE]")
    upstream.post(f"{UPSTREAM}/chat/completions", text=events, headers=SSE)
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "tools": TOOLS}
    response = client.post("/v1/chat/completions", json={**body, "stream": True}, headers=bearer(key), buffered=False)
    assert '"w19"' in cut_after(response, 20)

    provisional = books(sql, user["id"])
    [row] = provisional["usage"]
    assert row["status"] == "incomplete" and row["upstream_cost"] is None
    assert pricing.body_bytes(body) > 300_000  # bytes bound tokens; no prompt outgrows the context
    assert (row["prompt_tokens"], row["completion_tokens"]) == (128_000, 20)
    assert row["cost"] == pricing.price({"pricing": CATALOGUE["data"][0]["pricing"]}, 128_000, 20)  # was 0.000378
    assert sql("SELECT generation_id, attempts FROM generation_lookups") == [{"generation_id": "gen-1", "attempts": 0}]

    generation = f"{UPSTREAM}/generation?id=gen-1"
    upstream.get(generation, status_code=404, json={"error": {"code": 404, "message": "Generation not found"}})
    assert run_reconciliation(client)["postponed"] == 1  # not posted yet: asked again after a backoff
    assert sql("SELECT attempts, next_attempt_at > now() AS later FROM generation_lookups") == [
        {"attempts": 1, "later": True}
    ]
    sql("UPDATE generation_lookups SET next_attempt_at = now()")
    billed = {"id": "gen-1", "total_cost": 0.0115, "native_tokens_prompt": 75000, "native_tokens_completion": 20}
    upstream.get(generation, json={"data": {**billed, "model": "openai/gpt-4o-mini", "cancelled": True}})
    assert run_reconciliation(client)["reconciled"] == 1
    assert run_reconciliation(client)["reconciled"] == 0  # reconciled once

    final = books(sql, user["id"])
    assert final["usage"] == [
        {
            "status": "incomplete",
            "cost": Decimal("0.0115"),
            "upstream_cost": Decimal("0.0115"),
            "prompt_tokens": 75000,
            "completion_tokens": 20,
        }
    ]
    assert final["credits"] == Decimal("1.00") - Decimal("0.0115") and final["spent"] == Decimal("-0.0115")
    assert final["rows"] == 2 and final["reserved_credits"] == final["held"] == 0
    [daily] = sql("SELECT cost, upstream_cost, upstream_reported, prompt_tokens FROM usage_daily_totals")
    assert daily == {
        "cost": Decimal("0.0115"),
        "upstream_cost": Decimal("0.0115"),
        "upstream_reported": 1,
        "prompt_tokens": 75000,
    }
    billing = client.get("/admin/monitor", headers=ADMIN).get_json()["data"]["billing"]
    assert Decimal(billing["today"]["upstream_cost"]) == Decimal("0.0115")  # the drift monitor sees it


def responses_event(name, **data):
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"


def test_a_responses_stream_cut_before_completion_pays_its_instructions(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    created = {"id": "gen-resp-1", "model": "openai/gpt-4o-mini", "status": "in_progress"}
    deltas = [responses_event("response.output_text.delta", delta=f"w{i}") for i in range(10)]
    text = responses_event("response.created", response=created) + "".join(deltas)
    upstream.post(f"{UPSTREAM}/responses", text=text, headers=SSE)
    body = {"model": "openai/gpt-4o-mini", "input": "hi", "instructions": "i" * 600_000, "stream": True}
    response = client.post("/v1/responses", json=body, headers=bearer(key), buffered=False)
    assert "w4" in cut_after(response, 6)

    [row] = books(sql, user["id"])["usage"]
    assert row["status"] == "incomplete" and row["prompt_tokens"] == 128_000  # the whole context; was 0.0006
    assert row["cost"] >= Decimal(128_000) * MINI_PROMPT
    assert sql("SELECT generation_id FROM generation_lookups") == [{"generation_id": "gen-resp-1"}]


@pytest.mark.parametrize(
    ("path", "body", "sent"),
    [
        ("chat/completions", {"messages": MESSAGES}, {"max_tokens": 1024}),
        ("chat/completions", {"messages": MESSAGES, "max_tokens": 10**6}, {"max_tokens": 128000}),
        ("chat/completions", {"messages": MESSAGES, "max_completion_tokens": 99}, {"max_completion_tokens": 99}),
        ("responses", {"input": "x"}, {"max_output_tokens": 1024}),
    ],
)  # fmt: skip
def test_upstream_is_sent_the_output_limit_that_was_held(client, upstream, path, body, sent):
    user, key = create_user(client, credits="1.00", plan="team")
    upstream.post(f"{UPSTREAM}/responses", json={"id": "r", "model": "openai/gpt-4o-mini", "output": [], "usage": {}})
    response = client.post(f"/v1/{path}", json={"model": "openai/gpt-4o-mini", **body}, headers=bearer(key))
    assert response.status_code == 200
    payload = upstream.request_history[-1].json()
    assert {field: payload.get(field) for field in sent} == sent  # no answer longer than the hold


def test_an_embedding_batch_is_held_for_every_input_not_one_context(client, upstream, sql):
    user, key = create_user(client, credits="0.002", plan="team")
    batch = {"model": EMBEDDER["id"], "input": [[1000 + i for i in range(50)]] * 2048}  # 2,048 token arrays
    response = client.post("/v1/embeddings", json=batch, headers=bearer(key))
    assert_error(response, 402, "insufficient_credits")
    assert Decimal(response.get_json()["error"]["details"]["required"]) > Decimal("0.002")
    capped_user, capped_key = create_user(client, credits="10.00", plan="team")
    client.patch(f"/admin/users/{capped_user['id']}", json={"budget": "0.002", "budget_period": "daily"}, headers=ADMIN)
    assert_error(client.post("/v1/embeddings", json=batch, headers=bearer(capped_key)), 402, "budget_exceeded")
    assert sql("SELECT count(*) AS n FROM usage_records") == [{"n": 0}]
    assert upstream.call_count == 2  # the two model lists only: nothing was sent upstream


def test_the_auto_router_is_held_at_the_dearest_price_and_billed_what_upstream_reports(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    routed = {**completion(10, 20), "model": DEAR["id"], "usage": {**completion(10, 20)["usage"], "cost": 0.00033}}
    upstream.post(f"{UPSTREAM}/chat/completions", json=routed)
    body = {"model": AUTO["id"], "messages": [{"role": "user", "content": "x"}], "max_tokens": 20}
    response = client.post("/v1/chat/completions", json=body, headers=bearer(key))
    assert response.status_code == 200 and response.headers["X-Gateway-Cost"] == "0.00033"

    unreported = {**routed, "usage": completion(10, 20)["usage"]}  # no cost: the routed model's prices
    upstream.post(f"{UPSTREAM}/chat/completions", json=unreported)
    response = client.post("/v1/chat/completions", json=body, headers=bearer(key))
    assert response.headers["X-Gateway-Cost"] == "0.00033"  # 10 x 0.000003 + 20 x 0.000015

    events = sse(chunk("a"), {**chunk(usage={"prompt_tokens": 3, "completion_tokens": 1, "cost": 0.0001})}, "[DONE]")
    upstream.post(f"{UPSTREAM}/chat/completions", text=events.replace("openai/gpt-4o-mini", DEAR["id"]), headers=SSE)
    streamed = client.post("/v1/chat/completions", json={**body, "stream": True}, headers=bearer(key))
    assert b"[DONE]" in streamed.get_data()
    held = pricing.worst_case({**AUTO, "hold_pricing": DEAR["pricing"]}, {**body, "stream": True}, 1024).cost
    assert Decimal(streamed.headers["X-Gateway-Reserved"]) == held > 0  # the dearest listed prices
    final = books(sql, user["id"])
    assert [row["status"] for row in final["usage"]] == ["success"] * 3  # one row each, no second settlement
    assert final["credits"] == Decimal("1.00") - Decimal("0.00033") * 2 - Decimal("0.0001")
    assert final["reserved_credits"] == final["held"] == 0


def test_a_failure_after_the_settlement_committed_does_not_settle_the_stream_again(client, upstream, sql, monkeypatch):
    user, key = create_user(client, credits="1.00", plan="team")
    events = sse(chunk("a"), chunk(usage={"prompt_tokens": 3, "completion_tokens": 1, "cost": 0.0001}), "[DONE]")
    upstream.post(f"{UPSTREAM}/chat/completions", text=events, headers=SSE)

    def announce_fails(*args):
        raise RuntimeError("announce failed")

    monkeypatch.setattr("ops_gateway.billing.budgets.announce", announce_fails)
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True}
    response = client.post("/v1/chat/completions", json=body, headers=bearer(key), buffered=False)
    with pytest.raises(RuntimeError):
        b"".join(response.response)
    response.close()
    final = books(sql, user["id"])
    assert len(final["usage"]) == 1 and final["rows"] == 1  # was two: success + incomplete
    assert final["credits"] == Decimal("1.00") - Decimal("0.0001") and final["reserved_credits"] == 0


def test_the_database_settles_a_request_id_once_whoever_asks(app, client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    [row] = sql("SELECT id FROM api_keys WHERE user_id = %s", (user["id"],))
    finished = settlement.FinishedRequest(
        settlement_id="6f1c7a0e-4d0c-4a7e-9a51-9d7c7a0e4d0c",
        user_id=user["id"],
        api_key_id=row["id"],
        actor=f"user:{user['id']}",
        request_id="client-chosen-id",
        model="openai/gpt-4o-mini",
        held=Decimal(0),
        hold_id=None,
        streamed=False,
        status="success",
        prompt_tokens=1,
        completion_tokens=1,
        cost=Decimal("0.01"),
        latency_ms=1.0,
    )
    with app.app_context():
        with db.statement() as cur:
            assert settlement.settle_request(cur, finished)[0] == Decimal("0.01")
        with db.statement() as cur:
            assert settlement.settle_request(cur, finished) is None
    final = books(sql, user["id"])
    assert len(final["usage"]) == 1 and final["rows"] == 1 and final["credits"] == Decimal("0.99")
    with pytest.raises(Exception, match="credit_transactions_settlement_idx"):
        sql(
            "INSERT INTO credit_transactions (user_id, amount, balance_after, kind, reason, actor, settlement_id)"
            " VALUES (%s, -1, 0, 'usage', 'again', 'test', %s)",
            (user["id"], finished.settlement_id),
        )


def test_cut_streams_sharing_a_client_request_id_are_settled_and_reconciled_apart(client, upstream, sql):
    first, first_key = create_user(client, credits="1.00", plan="team")
    second, second_key = create_user(client, credits="1.00", plan="team")
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True}
    for generation_id, key in (("gen-a", first_key), ("gen-b", second_key)):
        events = sse(*[chunk(f"w{i}") for i in range(5)]).replace('"gen-1"', f'"{generation_id}"')
        upstream.post(f"{UPSTREAM}/chat/completions", text=events, headers=SSE)
        headers = {**bearer(key), "X-Request-ID": "same-id-from-the-client"}
        cut_after(client.post("/v1/chat/completions", json=body, headers=headers, buffered=False), 2)
    for generation_id, cost in (("gen-a", 0.001), ("gen-b", 0.002)):
        upstream.get(f"{UPSTREAM}/generation?id={generation_id}", json={"data": {"total_cost": cost}})
    assert run_reconciliation(client)["reconciled"] == 2
    assert books(sql, first["id"])["credits"] == Decimal("0.999")
    assert books(sql, second["id"])["credits"] == Decimal("0.998")
