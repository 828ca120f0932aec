"""Fake OpenRouter: embeddings, the Responses API, model fallbacks and one-shot failures."""

import base64
import json
import struct
from decimal import Decimal

import pytest

from devtools import fake_openrouter
from tests.helpers.fake_openrouter import (
    COMPLETIONS,
    EMBED,
    EMBEDDINGS,
    RESPOND,
    RESPONSES,
    WORDS_16,
    ask,
    exact,
    named_events,
)


def test_embeddings_answer_one_vector_per_input_in_openai_shape(client):
    answer = client.post(EMBEDDINGS, json={**EMBED, "input": ["a" * 40, "b" * 3]}).json()
    assert answer["object"] == "list" and answer["model"] == "openai/text-embedding-3-small"
    assert [(item["object"], item["index"]) for item in answer["data"]] == [("embedding", 0), ("embedding", 1)]
    assert all(len(item["embedding"]) == 8 for item in answer["data"])
    assert answer["usage"] == {"prompt_tokens": 10 + 1, "total_tokens": 11}  # at least one token an input


def test_embeddings_are_deterministic_and_honour_dimensions(client):
    first = client.post(EMBEDDINGS, json={**EMBED, "dimensions": 32}).json()["data"][0]["embedding"]
    again = client.post(EMBEDDINGS, json={**EMBED, "dimensions": 32}).json()["data"][0]["embedding"]
    other = client.post(EMBEDDINGS, json={**EMBED, "input": "other", "dimensions": 32}).json()["data"][0]
    assert len(first) == 32 and first == again != other["embedding"]


def test_base64_embeddings_are_little_endian_float32(client):
    floats = client.post(EMBEDDINGS, json=EMBED).json()["data"][0]["embedding"]
    packed = client.post(EMBEDDINGS, json={**EMBED, "encoding_format": "base64"}).json()["data"][0]["embedding"]
    assert struct.unpack("<8f", base64.b64decode(packed)) == pytest.approx(floats, abs=1e-6)


def test_token_array_inputs_count_their_tokens(client):
    usage = client.post(EMBEDDINGS, json={**EMBED, "input": [[1, 2, 3], [4]]}).json()["usage"]
    assert usage["prompt_tokens"] == 4
    assert client.post(EMBEDDINGS, json={**EMBED, "input": [5, 6]}).json()["usage"]["prompt_tokens"] == 2


def test_embeddings_cost_is_exact_with_usage_accounting(client):
    usage = exact(client.post(EMBEDDINGS, json={**EMBED, "input": "x" * 400, "usage": {"include": True}}))["usage"]
    assert usage["cost"] == 100 * Decimal("0.00000002")
    assert "cost" not in client.post(EMBEDDINGS, json=EMBED).json()["usage"]


@pytest.mark.parametrize(
    "fields",
    [{"input": ""}, {"input": []}, {"input": [1, "a"]}, {"dimensions": 0}, {"encoding_format": "hex"}, {"input": None}],
)
def test_invalid_embeddings_requests_are_400(client, fields):
    assert client.post(EMBEDDINGS, json={**EMBED, **fields}).status_code == 400


def test_models_serve_only_their_own_endpoint(client):
    assert client.post(EMBEDDINGS, json={**EMBED, "model": "openai/gpt-4o-mini"}).status_code == 400
    assert ask(client, model="openai/text-embedding-3-small").status_code == 400
    assert client.post(RESPONSES, json={**RESPOND, "model": "openai/text-embedding-3-small"}).status_code == 400
    assert client.post(EMBEDDINGS, json={**EMBED, "model": "nope/none"}).status_code == 404


def test_responses_answer_a_completed_response_with_usage(client):
    body = {**RESPOND, "instructions": "Be brief.", "max_output_tokens": 4, "usage": {"include": True}}
    answer = exact(client.post(RESPONSES, json=body))
    assert (answer["object"], answer["status"], answer["model"]) == ("response", "completed", "openai/gpt-4o-mini")
    assert answer["id"].startswith("resp_") and isinstance(answer["created_at"], int)
    [message] = answer["output"]
    assert (message["type"], message["role"]) == ("message", "assistant")
    assert message["content"][0] == {"type": "output_text", "text": "word0 word1 word2 word3", "annotations": []}
    prompt = json.dumps({"input": "hello", "instructions": "Be brief."}, separators=(",", ":"))
    usage = answer["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (len(prompt) // 4, 4)
    assert usage["total_tokens"] == usage["input_tokens"] + 4
    assert usage["cost"] == usage["input_tokens"] * Decimal("0.00000015") + 4 * Decimal("0.0000006")


def test_responses_with_reasoning_and_tools_add_those_items(client):
    tool = {"type": "function", "name": "distance", "parameters": {"type": "object", "properties": {}}}
    with_tools = client.post(RESPONSES, json={**RESPOND, "tools": [tool], "reasoning": {"effort": "low"}}).json()
    assert [item["type"] for item in with_tools["output"]] == ["reasoning", "message", "function_call"]
    call = with_tools["output"][2]
    assert (call["name"], call["arguments"]) == ("distance", "{}") and call["call_id"]
    bare = client.post(RESPONSES, json=RESPOND).json()
    assert with_tools["usage"]["input_tokens"] > bare["usage"]["input_tokens"]
    assert bare["usage"]["output_tokens"] == 16


def test_streamed_responses_send_named_events_ending_with_the_usage(client):
    body = {**RESPOND, "stream": True, "max_output_tokens": 3, "usage": {"include": True}}
    response = client.post(RESPONSES, json=body)
    assert response.headers["Content-Type"] == "text/event-stream"
    events = named_events(response)
    names = [name for name, _ in events]
    assert names[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert names[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert all(data["type"] == name for name, data in events)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    deltas = [data["delta"] for name, data in events if name == "response.output_text.delta"]
    assert "".join(deltas) == "word0 word1 word2"
    final = json.loads(response.text.split("data: ")[-1], parse_float=Decimal)["response"]
    unstreamed = exact(client.post(RESPONSES, json={**body, "stream": False}))
    assert final["usage"] == unstreamed["usage"] and final["usage"]["cost"] > 0


def test_an_unavailable_model_falls_back_along_models_and_is_priced_as_served(client):
    client.post("/_control", json={"unavailable_models": ["openai/gpt-4o-mini"]})
    fallbacks = ["openai/gpt-4o-mini", "anthropic/claude-3.5-sonnet"]
    answer = exact(ask(client, models=fallbacks, max_tokens=2, usage={"include": True}))
    assert answer["model"] == "anthropic/claude-3.5-sonnet"
    usage = answer["usage"]
    assert usage["cost"] == usage["prompt_tokens"] * Decimal("0.000003") + 2 * Decimal("0.000015")
    assert ask(client).status_code == 503  # no fallback left
    assert client.post(RESPONSES, json={**RESPOND, "models": fallbacks}).json()["model"] == fallbacks[1]


def test_served_model_switch_forces_the_answering_model_in_streams_too(client):
    client.post("/_control", json={"served_model": "test/free-model"})
    assert ask(client).json()["model"] == "test/free-model"
    chunks = ask(client, stream=True).text.split("\n\n")
    assert json.loads(chunks[0].removeprefix("data: "))["model"] == "test/free-model"


def test_provider_preferences_are_accepted_and_not_billed(client):
    bare = ask(client).json()["usage"]
    routed = ask(client, provider={"order": ["openai"], "allow_fallbacks": False}).json()
    assert routed["usage"] == bare and routed["choices"][0]["message"]["content"] == WORDS_16


def test_fail_next_fails_exactly_that_many_requests_with_retry_after(client):
    client.post("/_control", json={"fail_next": {"count": 2, "status": 503, "retry_after": 3}})
    assert client.get("/api/v1/models").status_code == 200  # the model list is not a generation
    first, second = ask(client), client.post(EMBEDDINGS, json=EMBED)
    assert (first.status_code, second.status_code) == (503, 503)
    assert first.headers["Retry-After"] == "3"
    assert client.get("/_control").json()["fail_next"] is None
    assert client.post(RESPONSES, json=RESPOND).status_code == 200


def test_fail_next_without_retry_after_sends_none(client):
    client.post("/_control", json={"fail_next": {"count": 1, "status": 429}})
    refused = ask(client)
    assert refused.status_code == 429 and "Retry-After" not in refused.headers
    assert ask(client).status_code == 200


def test_fail_next_is_counted_down_across_fakes_sharing_the_switches(serve_fake, state_file, monkeypatch):
    monkeypatch.setattr(fake_openrouter.faults, "RECHECK_SECONDS", 0)  # no waiting for the re-read interval
    first, second = serve_fake(state_file), serve_fake(state_file)
    first.post("/_control", json={"fail_next": {"count": 3, "status": 502}})
    statuses = [ask(fake).status_code for fake in (first, second, first, second, first)]
    assert sorted(statuses) == [200, 200, 502, 502, 502]


@pytest.mark.parametrize(
    "changes",
    [
        {"fail_next": {"count": 0, "status": 503}},
        {"fail_next": {"count": 1, "status": 200}},
        {"fail_next": {"count": 1, "status": 503, "wait": 1}},
        {"unavailable_models": ["nope/none"]},
        {"served_model": "nope/none"},
    ],
)
def test_invalid_routing_and_failure_switches_are_rejected(client, changes):
    assert client.post("/_control", json=changes).status_code == 400


def test_stats_count_each_endpoint(client):
    ask(client)
    client.post(EMBEDDINGS, json=EMBED)
    client.post(RESPONSES, json=RESPOND)
    stats = client.get("/_stats").json()
    assert (stats["completions_served"], stats["embeddings"], stats["responses"]) == (1, 1, 1)
    assert client.post(COMPLETIONS, json={"messages": [{"role": "user", "content": "x"}]}).status_code == 400
