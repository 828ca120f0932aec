"""Fake OpenRouter: deterministic answers, fault switches and its HTTP server, over real sockets."""

import http.client
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devtools import fake_openrouter
from tests.helpers.fake_openrouter import (
    COMPLETIONS,
    EMBED,
    EMBEDDINGS,
    RESPOND,
    RESPONSES,
    WORDS_16,
    Client,
    ask,
    sse_payloads,
)


def test_catalogue_lists_models_with_per_token_pricing(client):
    listed = client.get("/api/v1/models").json()["data"] + client.get("/api/v1/embeddings/models").json()["data"]
    models = {model["id"]: model for model in listed}
    assert len(models) == len(listed) == 9
    assert models["openai/gpt-4o-mini"]["pricing"] == {"prompt": "0.00000015", "completion": "0.0000006"}
    assert models["test/free-model"]["pricing"] == {"prompt": "0", "completion": "0"}
    assert models["openrouter/auto"]["pricing"] == {"prompt": "-1", "completion": "-1"}  # as OpenRouter lists it
    assert all(model["context_length"] > 0 and model["name"] for model in models.values())


def test_embedding_models_are_listed_apart_from_the_others_as_openrouter_lists_them(client):
    models = client.get("/api/v1/models").json()["data"]
    embedders = client.get("/api/v1/embeddings/models").json()["data"]
    assert {m["id"] for m in embedders} == {"openai/text-embedding-3-small", "openai/text-embedding-3-large"}
    assert all(m["architecture"]["output_modalities"] == ["embeddings"] for m in embedders)
    assert {m["pricing"]["completion"] for m in embedders} == {"0"}
    assert len(models) == 7  # openrouter/auto included
    assert all(m["architecture"]["output_modalities"] == ["text"] for m in models)
    assert {m["id"] for m in fake_openrouter.MODELS} == {m["id"] for m in models + embedders}  # MODELS: all


def test_usage_is_deterministic(client):
    first, second = ask(client).json(), ask(client).json()
    assert first["usage"] == second["usage"] == {"prompt_tokens": 20, "completion_tokens": 16, "total_tokens": 36}
    assert first["object"] == "chat.completion"
    assert first["model"] == "openai/gpt-4o-mini"
    assert first["id"].startswith("gen-fake-") and first["id"] != second["id"]
    assert isinstance(first["created"], int)
    assert first["choices"][0]["message"] == {"role": "assistant", "content": WORDS_16}


def test_prompt_tokens_are_a_quarter_of_the_messages_bytes_parts_included(client):
    parts = [{"type": "text", "text": "y" * 8}, {"type": "image_url", "image_url": {"url": "https://x"}}]
    body = {
        "model": "test/free-model",
        "messages": [{"role": "system", "content": "z" * 12}, {"role": "user", "content": parts}],
    }
    usage = client.post(COMPLETIONS, json=body).json()["usage"]
    messages = json.dumps({"messages": body["messages"]}, separators=(",", ":"))
    assert usage["prompt_tokens"] == len(messages) // 4


@pytest.mark.parametrize("max_tokens,expected", [(3, 3), (16, 16), (40, 40), (1000, 256)])
def test_max_tokens_sets_the_completion_length_up_to_a_cap(client, max_tokens, expected):
    answer = ask(client, max_tokens=max_tokens).json()
    assert answer["usage"]["completion_tokens"] == expected
    assert answer["choices"][0]["message"]["content"] == " ".join(f"word{i}" for i in range(expected))


def test_stream_sends_one_chunk_per_word_then_usage_and_done(client):
    response = ask(client, stream=True, stream_options={"include_usage": True})
    assert response.headers["Content-Type"] == "text/event-stream"
    *chunks, done = sse_payloads(response)
    assert done == "[DONE]"
    chunks = [json.loads(chunk) for chunk in chunks]
    *word_chunks, finish, usage = chunks
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert "".join(chunk["choices"][0]["delta"]["content"] for chunk in word_chunks) == WORDS_16
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 20, "completion_tokens": 16, "total_tokens": 36}


def test_stream_sends_max_tokens_content_chunks(client):
    *chunks, done = sse_payloads(ask(client, stream=True, max_tokens=20))
    contents = [json.loads(chunk)["choices"][0]["delta"].get("content") for chunk in chunks]
    assert contents[:-1] == ["word0", *(f" word{i}" for i in range(1, 20))]
    assert contents[-1] is None  # the finish chunk


def test_stream_without_include_usage_has_no_usage_chunk(client):
    *chunks, done = sse_payloads(ask(client, stream=True, max_tokens=2))
    assert done == "[DONE]"
    assert len(chunks) == 3  # two words and the finish chunk
    assert not any("usage" in json.loads(chunk) for chunk in chunks)


def test_outage_switch_refuses_every_route_until_reset(client):
    assert client.post("/_control", json={"outage": True}).json()["outage"] is True
    assert client.get("/api/v1/models").status_code == 503
    assert ask(client).status_code == 503
    assert client.get("/_control").json()["outage"] is True
    client.post("/_control/reset")
    assert client.get("/api/v1/models").status_code == 200
    assert ask(client).status_code == 200


def test_forced_status_applies_to_generation_routes_only(client):
    client.post("/_control", json={"status": 429})
    refused = ask(client)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == 429
    assert client.get("/api/v1/models").status_code == 200
    assert client.post(EMBEDDINGS, json=EMBED).status_code == 429
    assert client.post(RESPONSES, json=RESPOND).status_code == 429
    client.post("/_control", json={"status": None})
    assert ask(client).status_code == 200


def test_switches_are_shared_through_the_state_file(serve_fake, state_file, monkeypatch):
    monkeypatch.setattr(fake_openrouter.faults, "RECHECK_SECONDS", 0)  # no waiting for the re-read interval
    first, second = serve_fake(state_file), serve_fake(state_file)
    assert second.get("/api/v1/models").status_code == 200
    first.post("/_control", json={"outage": True})
    assert second.get("/api/v1/models").status_code == 503
    assert json.loads(state_file.read_text())["outage"] is True


@pytest.mark.parametrize("changes", [{"latency_ms": -1}, {"status": 200}, {"outage": "yes"}, {"typo": 1}, [1]])
def test_invalid_switches_are_rejected(client, changes):
    response = client.post("/_control", json=changes)
    assert response.status_code == 400
    assert client.get("/_control").json() == fake_openrouter.DEFAULT_FAULTS


def test_unknown_model_is_404(client):
    response = client.post(COMPLETIONS, json={"model": "nope/nothing", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 404
    assert "nope/nothing" in response.json()["error"]["message"]


def test_missing_messages_is_400(client):
    response = client.post(COMPLETIONS, json={"model": "openai/gpt-4o-mini"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 400


def test_stats_count_completions_served(client):
    ask(client)
    ask(client, stream=True)
    stats = client.get("/_stats").json()
    assert (stats["completions_served"], stats["completions"], stats["streams"]) == (2, 1, 1)


def test_one_connection_serves_request_after_request(client):
    connection = http.client.HTTPConnection("127.0.0.1", client.port, timeout=10)
    body = json.dumps({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    statuses, sockets = [], set()
    for method, path, payload in [("GET", "/api/v1/models", None), ("POST", COMPLETIONS, body)] * 2:
        connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        sockets.add(connection.sock)  # http.client opens a new socket if the server closed the last one
        response = connection.getresponse()
        statuses.append(response.status)
        assert response.read()
    connection.close()
    assert statuses == [200] * 4
    assert len(sockets) == 1


def test_latency_delays_each_request_without_queueing_the_others(client):
    client.post("/_control", json={"latency_ms": 400})
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:  # eight connections at once
        responses = list(pool.map(lambda _: requests.get(f"{client.url}/api/v1/models", timeout=10), range(8)))
    statuses = [response.status_code for response in responses]
    elapsed = time.monotonic() - started
    assert statuses == [200] * 8
    assert 0.4 <= elapsed < 2.0  # one after the other would take 3.2 s
    control_started = time.monotonic()
    assert client.get("/_control").json()["latency_ms"] == 400
    assert time.monotonic() - control_started < 0.4  # control routes are never delayed


def test_hundreds_of_slow_requests_wait_at_the_same_time(client):
    client.post("/_control", json={"latency_ms": 500})
    request = b"GET /api/v1/models HTTP/1.1\r\nHost: fake\r\nConnection: close\r\n\r\n"
    started = time.monotonic()
    sockets = [socket.create_connection(("127.0.0.1", client.port), timeout=10) for _ in range(300)]
    try:
        for sock in sockets:
            sock.sendall(request)
        answers = [b"".join(iter(lambda sock=sock: sock.recv(65536), b"")) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    elapsed = time.monotonic() - started
    assert all(answer.startswith(b"HTTP/1.1 200 ") for answer in answers)
    assert 0.5 <= elapsed < 3.0  # one greenlet each: they all wait their 0.5 s together


def test_slow_stream_sends_events_as_they_come_and_holds_up_no_one(client):
    client.post("/_control", json={"chunk_delay_ms": 150})
    started = time.monotonic()
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    stream = client.post(COMPLETIONS, json={**body, "stream": True}, stream=True)
    events = (line for line in stream.iter_lines() if line)
    assert json.loads(next(events).removeprefix(b"data: "))["choices"][0]["delta"]["content"] == "word0"
    first_event_at = time.monotonic() - started
    assert ask(Client(client.port)).status_code == 200  # another connection, while the stream goes on
    other_answered_at = time.monotonic() - started
    assert list(events)[-1] == b"data: [DONE]"
    done_at = time.monotonic() - started
    assert first_event_at < done_at - 0.3 and other_answered_at < done_at - 0.15


def test_malformed_request_is_answered_400_and_closed(client):
    with socket.create_connection(("127.0.0.1", client.port), timeout=10) as sock:
        sock.sendall(b"NOT A REQUEST\r\n\r\n")
        answer = b"".join(iter(lambda: sock.recv(65536), b""))  # the server closes the connection
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close" in answer
