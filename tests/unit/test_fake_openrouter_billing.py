"""Fake OpenRouter: what it bills and how a client finds out (the cost multiplier, generation
records, long answers, streams cut mid-way, openrouter/auto), as OpenRouter does."""

import json
import socket
import time
from datetime import datetime
from decimal import Decimal

import pytest
import requests

from devtools import fake_openrouter
from devtools.fake_openrouter import FakeOpenRouter, StreamCut
from devtools.fake_openrouter.catalogue import PRICES, ROUTERS, cost
from tests.helpers.fake_openrouter import (
    COMPLETIONS,
    EMBED,
    EMBEDDINGS,
    GENERATION,
    MINI,
    RESPOND,
    RESPONSES,
    SONNET,
    ask,
    exact,
    generation,
    named_events,
    priced,
    record_of,
    sse_payloads,
)


def chat(**fields):
    """A chat completion body of one user message, with fields."""
    return {"model": MINI[0], "messages": [{"role": "user", "content": "x" * 40}], **fields}


def answered(fake, path, body):
    """fake.answer to a POST of body: (status, headers as a dict, body: bytes or the events' iterator)."""
    status, headers, reply = fake.answer("POST", path, json.dumps(body).encode())
    return status, dict(headers), reply


# cost_multiplier


def test_cost_multiplier_scales_every_reported_cost_exactly_and_leaves_tokens_alone(client):
    usage = {"include": True}
    plain = exact(ask(client, max_tokens=4, usage=usage))["usage"]
    client.post("/_control", json={"cost_multiplier": 1.37})
    dearer = exact(ask(client, max_tokens=4, usage=usage))
    assert {k: v for k, v in dearer["usage"].items() if k != "cost"} == {k: v for k, v in plain.items() if k != "cost"}
    assert (
        dearer["usage"]["cost"] == priced(MINI, plain["prompt_tokens"], 4, Decimal("1.37")) == plain["cost"] * 137 / 100
    )
    assert record_of(client, dearer["id"])["total_cost"] == dearer["usage"]["cost"]
    streamed = ask(client, max_tokens=4, usage=usage, stream=True)
    final = json.loads(sse_payloads(streamed)[-2], parse_float=Decimal)
    assert final["usage"]["cost"] == dearer["usage"]["cost"]
    embedded = exact(client.post(EMBEDDINGS, json={**EMBED, "usage": usage}))
    assert embedded["usage"]["cost"] == embedded["usage"]["prompt_tokens"] * Decimal("0.00000002") * Decimal("1.37")
    responded = exact(client.post(RESPONSES, json={**RESPOND, "max_output_tokens": 3, "usage": usage}))["usage"]
    assert responded["cost"] == priced(MINI, responded["input_tokens"], 3, Decimal("1.37"))


def test_an_integer_cost_multiplier_and_the_free_model_stay_exact(client):
    client.post("/_control", json={"cost_multiplier": 3})
    answer = exact(ask(client, max_tokens=2, usage={"include": True}))
    assert answer["usage"]["cost"] == priced(MINI, answer["usage"]["prompt_tokens"], 2, 3)
    free = exact(ask(client, model="test/free-model", max_tokens=2, usage={"include": True}))
    assert free["usage"]["cost"] == 0


@pytest.mark.parametrize("value", [0, -1, True, "2", None, [1]])
def test_invalid_cost_multipliers_are_rejected(client, value):
    assert client.post("/_control", json={"cost_multiplier": value}).status_code == 400
    assert client.get("/_control").json()["cost_multiplier"] == 1


def test_a_cost_multiplier_of_nan_or_infinity_is_rejected(client):
    for spelled in ("NaN", "Infinity"):
        response = client.post("/_control", data=f'{{"cost_multiplier": {spelled}}}')
        assert response.status_code == 400


# GET /api/v1/generation


def test_a_chat_generation_is_recorded_in_openrouters_shape(client):
    answer = ask(client, max_tokens=5)
    generation_id = answer.json()["id"]
    assert answer.headers["X-Generation-Id"] == generation_id and generation_id.startswith("gen-")
    data = record_of(client, generation_id)
    prompt = answer.json()["usage"]["prompt_tokens"]
    assert data["id"] == generation_id and data["model"] == MINI[0]
    assert data["total_cost"] == data["usage"] == priced(MINI, prompt, 5)
    assert (data["tokens_prompt"], data["tokens_completion"]) == (prompt, 5)
    assert (data["native_tokens_prompt"], data["native_tokens_completion"], data["native_tokens_reasoning"]) == (
        prompt,
        5,
        0,
    )
    assert (data["streamed"], data["cancelled"], data["finish_reason"]) == (False, False, "stop")
    assert data["api_type"] == "completions" and data["router"] is None and data["provider_name"] == "OpenAI"
    created = data["created_at"]
    assert created.endswith("+00:00") and abs(time.time() - _epoch(created)) < 60


def _epoch(iso):
    """Seconds since the epoch of an ISO 8601 time with offset."""
    return datetime.fromisoformat(iso).timestamp()


def test_the_cost_is_recorded_without_usage_accounting_too(client):
    answer = ask(client, max_tokens=3).json()
    assert "cost" not in answer["usage"]
    assert record_of(client, answer["id"])["total_cost"] == priced(MINI, answer["usage"]["prompt_tokens"], 3)


def test_a_stream_records_its_generation_under_the_id_its_chunks_carry(client):
    response = ask(client, max_tokens=3, stream=True)
    *chunks, done = sse_payloads(response)
    ids = {json.loads(chunk)["id"] for chunk in chunks}
    assert ids == {response.headers["X-Generation-Id"]}
    data = record_of(client, ids.pop())
    assert (data["streamed"], data["cancelled"], data["tokens_completion"]) == (True, False, 3)
    assert data["total_cost"] == priced(MINI, data["tokens_prompt"], 3)


def test_embeddings_and_responses_are_recorded_too(client):
    embedded = client.post(EMBEDDINGS, json=EMBED)
    embedding_id = embedded.json()["id"]
    assert embedded.headers["X-Generation-Id"] == embedding_id
    data = record_of(client, embedding_id)
    assert (data["api_type"], data["model"], data["tokens_completion"], data["finish_reason"]) == (
        "embeddings",
        "openai/text-embedding-3-small",
        0,
        None,
    )
    assert data["total_cost"] == embedded.json()["usage"]["prompt_tokens"] * Decimal("0.00000002")
    for streamed in (False, True):
        response = client.post(RESPONSES, json={**RESPOND, "max_output_tokens": 2, "stream": streamed})
        response_id = response.headers["X-Generation-Id"]
        assert response_id.startswith("resp_")
        data = record_of(client, response_id)
        assert (data["api_type"], data["streamed"], data["cancelled"], data["tokens_completion"]) == (
            "completions",
            streamed,
            False,
            2,
        )
        assert data["total_cost"] == priced(MINI, data["tokens_prompt"], 2)


def test_an_unknown_generation_is_404_and_a_missing_id_400_in_openrouters_error_shape(client):
    for unknown in ("gen-nothing", "gen-fake-1-1-1", "gen-fake-1-1-0", "../../etc/passwd"):
        response = generation(client, unknown)
        assert response.status_code == 404
        assert response.json() == {"error": {"code": 404, "message": "Generation not found"}}
    missing = client.get(GENERATION)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == 400
    assert generation(client, "").status_code == 400


def test_a_generation_is_not_found_until_generation_delay_ms_after_it_finished(client):
    client.post("/_control", json={"generation_delay_ms": 400})
    generation_id = ask(client, max_tokens=2).json()["id"]
    assert generation(client, generation_id).status_code == 404
    time.sleep(0.45)
    assert generation(client, generation_id).status_code == 200


def test_generation_records_are_shared_by_fakes_on_the_same_state_file(serve_fake, state_file, monkeypatch):
    monkeypatch.setattr(fake_openrouter.faults, "RECHECK_SECONDS", 0)  # no waiting for the re-read interval
    first, second = serve_fake(state_file), serve_fake(state_file)
    from_first = ask(first, max_tokens=3).json()["id"]
    from_second = ask(second, max_tokens=4).json()["id"]
    assert from_first != from_second
    assert record_of(second, from_first)["tokens_completion"] == 3
    assert record_of(first, from_second)["tokens_completion"] == 4
    first.post("/_control", json={"generation_delay_ms": 60_000})  # the switch applies to every reader
    assert generation(second, from_first).status_code == 404


def test_a_generation_record_is_written_once_however_many_fakes_answer(fake, state_file):
    other = FakeOpenRouter(state_file)
    _, headers, _ = answered(fake, COMPLETIONS, chat(max_tokens=2))
    status, _, body = other.answer("GET", f"{GENERATION}?id={headers['X-Generation-Id']}", b"")
    assert status == 200 and json.loads(body)["data"]["tokens_completion"] == 2


def test_the_oldest_records_give_way_once_a_process_has_written_a_ring_of_them(fake, monkeypatch):
    monkeypatch.setattr(fake_openrouter.generations, "SLOTS", 4)
    ids = [answered(fake, COMPLETIONS, chat(max_tokens=1))[1]["X-Generation-Id"] for _ in range(6)]
    statuses = [fake.answer("GET", f"{GENERATION}?id={generation_id}", b"")[0] for generation_id in ids]
    assert statuses == [404, 404, 200, 200, 200, 200]


# long_answer_tokens


def test_long_answer_tokens_answers_requests_without_a_limit_at_length(client):
    client.post("/_control", json={"long_answer_tokens": 8192})
    answer = ask(client).json()
    assert answer["usage"]["completion_tokens"] == 8192
    content = answer["choices"][0]["message"]["content"].split(" ")
    assert len(content) == 8192 and content[-1] == "word8191"
    assert record_of(client, answer["id"])["tokens_completion"] == 8192
    output = client.post(RESPONSES, json=RESPOND).json()
    assert output["usage"]["output_tokens"] == 8192
    assert output["output"][0]["content"][0]["text"].endswith(" word8191")


@pytest.mark.parametrize(
    "limit,expected", [({"max_tokens": 5}, 5), ({"max_completion_tokens": 7}, 7), ({"max_tokens": 1000}, 256)]
)
def test_a_request_with_a_limit_is_answered_within_it_despite_long_answer_tokens(client, limit, expected):
    client.post("/_control", json={"long_answer_tokens": 8192})
    assert ask(client, **limit).json()["usage"]["completion_tokens"] == expected
    responded = client.post(RESPONSES, json={**RESPOND, "max_output_tokens": 5}).json()
    assert responded["usage"]["output_tokens"] == 5


def test_a_long_answer_streams_one_chunk_per_token_and_is_billed_for_them(client):
    client.post("/_control", json={"long_answer_tokens": 3000})
    *chunks, done = sse_payloads(ask(client, stream=True, usage={"include": True}))
    parsed = [json.loads(chunk, parse_float=Decimal) for chunk in chunks]
    contents = [chunk["choices"][0]["delta"].get("content") for chunk in parsed[:-2]]
    assert len(contents) == 3000 and "".join(contents).split(" ")[-1] == "word2999"
    usage = parsed[-1]["usage"]
    assert usage["completion_tokens"] == 3000 and usage["cost"] == priced(MINI, usage["prompt_tokens"], 3000)
    events = named_events(client.post(RESPONSES, json={**RESPOND, "stream": True}))
    assert sum(name == "response.output_text.delta" for name, _ in events) == 3000


@pytest.mark.parametrize("value", [0, -5, 262145, "8192", 1.5])
def test_invalid_long_answer_tokens_are_rejected(client, value):
    assert client.post("/_control", json={"long_answer_tokens": value}).status_code == 400


# cut_stream_after


def test_cut_stream_after_stops_a_chat_stream_after_n_chunks_and_bills_what_was_sent(fake):
    fake.faults.update({"cut_stream_after": 3})
    status, headers, events = answered(fake, COMPLETIONS, chat(max_tokens=10, stream=True, usage={"include": True}))
    sent = []
    with pytest.raises(StreamCut):
        for event in events:
            sent.append(event)
    chunks = [json.loads(event.removeprefix("data: ")) for event in sent]
    assert [chunk["choices"][0]["delta"]["content"] for chunk in chunks] == ["word0", " word1", " word2"]
    assert not any(chunk["choices"][0]["finish_reason"] for chunk in chunks)
    _, _, body = fake.answer("GET", f"{GENERATION}?id={headers['X-Generation-Id']}", b"")
    data = json.loads(body, parse_float=Decimal)["data"]
    assert (data["cancelled"], data["streamed"], data["tokens_completion"], data["finish_reason"]) == (
        True,
        True,
        3,
        None,
    )
    assert data["total_cost"] == priced(MINI, data["tokens_prompt"], 3)


def test_a_cut_stream_drops_the_connection_without_finish_usage_or_done(client):
    client.post("/_control", json={"cut_stream_after": 2})
    body = json.dumps(chat(max_tokens=10, stream=True, usage={"include": True}))
    request = f"POST {COMPLETIONS} HTTP/1.1\r\nHost: fake\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode()
    with socket.create_connection(("127.0.0.1", client.port), timeout=10) as sock:
        sock.sendall(request)
        received = b"".join(iter(lambda: sock.recv(65536), b""))  # the server closes the connection
    head, _, chunked = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"Transfer-Encoding: chunked" in head
    assert not chunked.endswith(b"0\r\n\r\n")  # the chunked body never ends
    assert chunked.count(b'"content"') == 2 and b'finish_reason": "stop' not in chunked
    assert b"usage" not in chunked and b"[DONE]" not in chunked
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        ask(client, max_tokens=10, stream=True).content  # noqa: B018 - a client sees the break


def test_cut_stream_after_stops_a_responses_stream_before_response_completed(client):
    client.post("/_control", json={"cut_stream_after": 2})
    response = client.post(RESPONSES, json={**RESPOND, "stream": True, "max_output_tokens": 5}, stream=True)
    response_id = response.headers["X-Generation-Id"]
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        response.content  # noqa: B018
    data = record_of(client, response_id)
    assert (data["cancelled"], data["tokens_completion"]) == (True, 2)
    assert data["total_cost"] == priced(MINI, data["tokens_prompt"], 2)


def test_cut_stream_after_zero_bills_the_prompt_only_and_spares_short_and_unstreamed_answers(fake):
    fake.faults.update({"cut_stream_after": 0})
    _, headers, events = answered(fake, COMPLETIONS, chat(max_tokens=4, stream=True))
    with pytest.raises(StreamCut):
        list(events)
    cut = json.loads(fake.answer("GET", f"{GENERATION}?id={headers['X-Generation-Id']}", b"")[2])["data"]
    assert (cut["cancelled"], cut["tokens_completion"]) == (True, 0)
    fake.faults.update({"cut_stream_after": 5})
    _, _, events = answered(fake, COMPLETIONS, chat(max_tokens=4, stream=True))
    assert list(events)[-1] == "data: [DONE]\n\n"  # four chunks never reach five
    _, headers, body = answered(fake, COMPLETIONS, chat(max_tokens=10))
    assert json.loads(body)["usage"]["completion_tokens"] == 10


@pytest.mark.parametrize("value", [-1, "3", 2.5, True])
def test_invalid_cut_stream_after_values_are_rejected(client, value):
    assert client.post("/_control", json={"cut_stream_after": value}).status_code == 400


def test_a_stream_whose_client_goes_away_is_recorded_cancelled_with_what_it_produced(client):
    client.post("/_control", json={"chunk_delay_ms": 30})
    body = json.dumps(chat(max_tokens=200, stream=True))
    request = f"POST {COMPLETIONS} HTTP/1.1\r\nHost: fake\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode()
    with socket.create_connection(("127.0.0.1", client.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while received.count(b'"content"') < 3:
            received += sock.recv(65536)
    generation_id = received.split(b'"id": "')[1].split(b'"')[0].decode()
    deadline = time.monotonic() + 5
    while (response := generation(client, generation_id)).status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.05)
    data = exact(response)["data"]
    assert data["cancelled"] is True and 3 <= data["tokens_completion"] < 200
    assert data["total_cost"] == priced(MINI, data["tokens_prompt"], data["tokens_completion"])


# openrouter/auto


def test_openrouter_auto_is_answered_and_billed_by_the_model_it_routes_to(client):
    answer = exact(ask(client, model="openrouter/auto", max_tokens=3, usage={"include": True}))
    assert answer["model"] == MINI[0]
    assert answer["usage"]["cost"] == priced(MINI, answer["usage"]["prompt_tokens"], 3)
    data = record_of(client, answer["id"])
    assert (data["model"], data["router"], data["total_cost"]) == (MINI[0], "openrouter/auto", answer["usage"]["cost"])
    client.post("/_control", json={"auto_routes_to": SONNET[0], "cost_multiplier": 2})
    routed = exact(ask(client, model="openrouter/auto", max_tokens=3, usage={"include": True}))
    assert routed["model"] == SONNET[0]
    assert routed["usage"]["cost"] == priced(SONNET, routed["usage"]["prompt_tokens"], 3, 2)
    chunks = sse_payloads(ask(client, model="openrouter/auto", max_tokens=1, stream=True))
    assert json.loads(chunks[0])["model"] == SONNET[0]
    responded = exact(client.post(RESPONSES, json={**RESPOND, "model": "openrouter/auto", "usage": {"include": True}}))
    assert responded["model"] == SONNET[0]
    assert responded["usage"]["cost"] == priced(SONNET, responded["usage"]["input_tokens"], 16, 2)


def test_openrouter_auto_serves_chat_and_responses_but_not_embeddings(client):
    refused = client.post(EMBEDDINGS, json={**EMBED, "model": "openrouter/auto"})
    assert refused.status_code == 400 and "does not serve" in refused.json()["error"]["message"]
    fallback = ask(client, model="nope/none", models=["openrouter/auto"])
    assert fallback.status_code == 404  # every model named must exist, as before
    assert ask(client, model="openrouter/auto", models=[SONNET[0]]).json()["model"] == MINI[0]


def test_the_unpriced_router_never_reaches_the_price_table():
    assert ROUTERS == {"openrouter/auto"} and not ROUTERS & set(PRICES)
    assert all(cost(model, 10, 10) >= 0 for model in PRICES)
    with pytest.raises(KeyError):
        cost("openrouter/auto", 10, 10)


@pytest.mark.parametrize(
    "changes",
    [
        {"auto_routes_to": "openrouter/auto"},
        {"auto_routes_to": "openai/text-embedding-3-small"},
        {"auto_routes_to": "nope/none"},
        {"auto_routes_to": None},
        {"auto_routes_to": ["openai/gpt-4o-mini"]},
        {"served_model": "openrouter/auto"},
        {"generation_delay_ms": -1},
    ],
)
def test_invalid_routing_and_record_switches_are_rejected(client, changes):
    assert client.post("/_control", json=changes).status_code == 400
    assert client.get("/_control").json() == fake_openrouter.DEFAULT_FAULTS
