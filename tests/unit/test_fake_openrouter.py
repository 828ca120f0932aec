"""Fake OpenRouter: deterministic answers and fault switches, through the Flask test client."""

import json

import pytest

from ops_gateway import fake_openrouter
from ops_gateway.fake_openrouter import create_fake_app

COMPLETIONS = "/api/v1/chat/completions"
WORDS_16 = " ".join(f"word{i}" for i in range(16))


@pytest.fixture
def state_file(tmp_path):
    """A fault-switch file private to the test."""
    return tmp_path / "faults.json"


@pytest.fixture
def client(state_file):
    """Test client of a fake whose faults live in the test's own file."""
    return create_fake_app(state_file=state_file).test_client()


def ask(client, content="x" * 40, **fields):
    """POST one user message to the completions route."""
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": content}], **fields}
    return client.post(COMPLETIONS, json=body)


def sse_payloads(response):
    """Split an SSE body into its data payloads."""
    events = response.get_data(as_text=True).split("\n\n")
    assert events.pop() == ""  # every event, [DONE] included, ends with a blank line
    assert all(event.startswith("data: ") for event in events)
    return [event.removeprefix("data: ") for event in events]


def test_catalogue_lists_models_with_per_token_pricing(client):
    models = {model["id"]: model for model in client.get("/api/v1/models").get_json()["data"]}
    assert len(models) == 6
    assert models["openai/gpt-4o-mini"]["pricing"] == {"prompt": "0.00000015", "completion": "0.0000006"}
    assert models["test/free-model"]["pricing"] == {"prompt": "0", "completion": "0"}
    assert all(model["context_length"] > 0 and model["name"] for model in models.values())


def test_usage_is_deterministic(client):
    first, second = ask(client).get_json(), ask(client).get_json()
    assert first["usage"] == second["usage"] == {"prompt_tokens": 14, "completion_tokens": 16, "total_tokens": 30}
    assert first["object"] == "chat.completion"
    assert first["choices"][0]["message"] == {"role": "assistant", "content": WORDS_16}


def test_prompt_tokens_count_text_parts_of_every_message(client):
    parts = [{"type": "text", "text": "y" * 8}, {"type": "image_url", "image_url": {"url": "https://x"}}]
    body = {
        "model": "test/free-model",
        "messages": [{"role": "system", "content": "z" * 12}, {"role": "user", "content": parts}],
    }
    usage = client.post(COMPLETIONS, json=body).get_json()["usage"]
    assert usage["prompt_tokens"] == (12 // 4 + 4) + (8 // 4 + 4)


@pytest.mark.parametrize("max_tokens,expected", [(3, 3), (16, 16), (1000, 16)])
def test_max_tokens_caps_the_completion(client, max_tokens, expected):
    answer = ask(client, max_tokens=max_tokens).get_json()
    assert answer["usage"]["completion_tokens"] == expected
    assert answer["choices"][0]["message"]["content"] == " ".join(f"word{i}" for i in range(expected))


def test_stream_sends_one_chunk_per_word_then_usage_and_done(client):
    response = ask(client, stream=True, stream_options={"include_usage": True})
    assert response.mimetype == "text/event-stream"
    *chunks, done = sse_payloads(response)
    assert done == "[DONE]"
    chunks = [json.loads(chunk) for chunk in chunks]
    *word_chunks, finish, usage = chunks
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert "".join(chunk["choices"][0]["delta"]["content"] for chunk in word_chunks) == WORDS_16
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 14, "completion_tokens": 16, "total_tokens": 30}


def test_stream_without_include_usage_has_no_usage_chunk(client):
    *chunks, done = sse_payloads(ask(client, stream=True, max_tokens=2))
    assert done == "[DONE]"
    assert len(chunks) == 3  # two words and the finish chunk
    assert not any("usage" in json.loads(chunk) for chunk in chunks)


def test_outage_switch_refuses_every_route_until_reset(client):
    assert client.post("/_control", json={"outage": True}).get_json()["outage"] is True
    assert client.get("/api/v1/models").status_code == 503
    assert ask(client).status_code == 503
    assert client.get("/_control").get_json()["outage"] is True
    client.post("/_control/reset")
    assert client.get("/api/v1/models").status_code == 200
    assert ask(client).status_code == 200


def test_forced_status_applies_to_completions_only(client):
    client.post("/_control", json={"status": 429})
    refused = ask(client)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.get_json()["error"]["code"] == 429
    assert client.get("/api/v1/models").status_code == 200
    client.post("/_control", json={"status": None})
    assert ask(client).status_code == 200


def test_switches_are_shared_through_the_state_file(state_file, monkeypatch):
    monkeypatch.setattr(fake_openrouter, "RECHECK_SECONDS", 0)  # no waiting for the re-read interval
    first, second = (create_fake_app(state_file=state_file).test_client() for _ in range(2))
    assert second.get("/api/v1/models").status_code == 200
    first.post("/_control", json={"outage": True})
    assert second.get("/api/v1/models").status_code == 503
    assert json.loads(state_file.read_text())["outage"] is True


@pytest.mark.parametrize("changes", [{"latency_ms": -1}, {"status": 200}, {"outage": "yes"}, {"typo": 1}, [1]])
def test_invalid_switches_are_rejected(client, changes):
    response = client.post("/_control", json=changes)
    assert response.status_code == 400
    assert client.get("/_control").get_json() == fake_openrouter.DEFAULT_FAULTS


def test_unknown_model_is_404(client):
    response = client.post(COMPLETIONS, json={"model": "nope/nothing", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 404
    assert "nope/nothing" in response.get_json()["error"]["message"]


def test_missing_messages_is_400(client):
    response = client.post(COMPLETIONS, json={"model": "openai/gpt-4o-mini"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == 400


def test_stats_count_completions_served(client):
    ask(client)
    ask(client, stream=True)
    stats = client.get("/_stats").get_json()
    assert (stats["completions_served"], stats["completions"], stats["streams"]) == (2, 1, 1)
