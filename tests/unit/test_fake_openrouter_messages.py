"""Fake OpenRouter: the Anthropic Messages API (``POST /api/v1/messages``) as OpenRouter serves it:
one message or named SSE events, tool use, Anthropic's error shape, usage with cost, generation
records and the switches that chat and responses honour."""

import json
from decimal import Decimal

import pytest
import requests

from devtools.fake_openrouter import StreamCut
from devtools.fake_openrouter.replies import prompt_tokens
from tests.helpers.fake_openrouter import GENERATION, MINI, SONNET, exact, named_events, priced, record_of

MESSAGES = "/api/v1/messages"
HELLO = [{"role": "user", "content": "hello there"}]
WEATHER = {"name": "get_weather", "description": "the weather", "input_schema": {"type": "object"}}
CLOCK = {"name": "get_time", "description": "the time", "input_schema": {"type": "object"}}


def message(**fields):
    """A Messages API body for Claude Sonnet of one user message, with fields (None: left out)."""
    body = {"model": SONNET[0], "max_tokens": 5, "messages": HELLO, **fields}
    return {field: value for field, value in body.items() if value is not None}


def send(client, **fields):
    """POST message(**fields); the response."""
    return client.post(MESSAGES, json=message(**fields))


def text_of(events):
    """The text a stream's text_delta events spell."""
    return "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")


def test_a_message_is_answered_in_anthropics_shape_with_usage_and_its_exact_cost(client):
    response = send(client)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    answer = exact(response)
    assert answer["id"].startswith("msg_") and response.headers["X-Generation-Id"] == answer["id"]
    assert (answer["type"], answer["role"], answer["model"]) == ("message", "assistant", SONNET[0])
    assert answer["content"] == [{"type": "text", "text": "word0 word1 word2 word3 word4"}]
    assert (answer["stop_reason"], answer["stop_sequence"]) == ("max_tokens", None)  # it used all 5 tokens
    usage = answer["usage"]
    assert (usage["output_tokens"], usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"]) == (5, 0, 0)
    assert usage["input_tokens"] == prompt_tokens({"messages": HELLO})
    assert usage["cost"] == priced(SONNET, usage["input_tokens"], 5)  # always there, as OpenRouter reports it


def test_max_tokens_is_optional_at_openrouter_and_an_answer_within_it_ends_its_turn(client):
    unbounded = send(client, max_tokens=None).json()
    assert unbounded["content"][0]["text"] == " ".join(f"word{i}" for i in range(16))
    assert (unbounded["stop_reason"], unbounded["usage"]["output_tokens"]) == ("end_turn", 16)
    large = send(client, max_tokens=4096).json()
    assert (large["stop_reason"], large["usage"]["output_tokens"]) == ("end_turn", 256)  # the fake's cap


def test_input_tokens_count_system_messages_and_tools_but_not_the_options(client):
    plain = send(client).json()["usage"]["input_tokens"]
    options = {"temperature": 0.2, "top_k": 5, "stop_sequences": ["x"], "metadata": {"user_id": "u1"}}
    assert send(client, **options).json()["usage"]["input_tokens"] == plain
    system = "You are terse. " * 20
    billed = send(client, system=system, tools=[WEATHER]).json()["usage"]["input_tokens"]
    assert billed == prompt_tokens({"messages": HELLO, "system": system, "tools": [WEATHER]}) > plain


def test_a_stream_sends_anthropics_named_events_with_the_usage_and_cost_in_message_delta(client):
    response = send(client, stream=True)
    assert response.headers["Content-Type"] == "text/event-stream"
    events = named_events(response)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 5,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["id"] == response.headers["X-Generation-Id"] and start["model"] == SONNET[0]
    assert (start["content"], start["stop_reason"], start["usage"]["output_tokens"]) == ([], None, 0)
    assert events[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert text_of(events) == "word0 word1 word2 word3 word4"
    assert {data["delta"]["type"] for name, data in events if name == "content_block_delta"} == {"text_delta"}
    delta = json.loads(response.text.split("event: message_delta\ndata: ")[1].split("\n")[0], parse_float=Decimal)
    assert delta["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    usage = delta["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (start["usage"]["input_tokens"], 5)
    assert usage["cost"] == priced(SONNET, usage["input_tokens"], 5)


def test_tool_choice_any_or_a_named_tool_is_answered_with_a_tool_use_block(client):
    tools = [WEATHER, CLOCK]
    for choice, name in [({"type": "any"}, "get_weather"), ({"type": "tool", "name": "get_time"}, "get_time")]:
        answer = exact(send(client, tools=tools, tool_choice=choice, max_tokens=100))
        [block] = answer["content"]
        assert block == {"type": "tool_use", "id": block["id"], "name": name, "input": {}}
        assert block["id"].startswith("toolu_") and answer["stop_reason"] == "tool_use"
        output = prompt_tokens({"name": name, "input": {}})
        assert answer["usage"]["output_tokens"] == output
        assert answer["usage"]["cost"] == priced(SONNET, answer["usage"]["input_tokens"], output)


def test_a_user_asking_to_use_a_tool_gets_a_call_and_its_result_gets_a_text_answer(client):
    asking = [{"role": "user", "content": [{"type": "text", "text": "Please USE TOOL get_weather"}]}]
    call = send(client, tools=[WEATHER], messages=asking).json()
    assert call["stop_reason"] == "tool_use" and call["content"][0]["name"] == "get_weather"
    result = {"type": "tool_result", "tool_use_id": call["content"][0]["id"], "content": "sunny"}
    turns = [*asking, {"role": "assistant", "content": call["content"]}, {"role": "user", "content": [result]}]
    answer = send(client, tools=[WEATHER], messages=turns).json()
    assert answer["content"][0]["type"] == "text" and answer["stop_reason"] == "max_tokens"
    assert send(client, tools=[WEATHER]).json()["content"][0]["type"] == "text"  # not asked for
    refused = send(client, tools=[WEATHER], messages=asking, tool_choice={"type": "none"}).json()
    assert refused["content"][0]["type"] == "text"
    assert send(client, messages=asking).json()["content"][0]["type"] == "text"  # no tools given


def test_a_streamed_tool_call_sends_its_input_as_one_input_json_delta(client):
    response = send(client, stream=True, tools=[WEATHER], tool_choice={"type": "any"})
    events = named_events(response)
    assert [name for name, _ in events][1:6] == [
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
    ]
    block = events[1][1]["content_block"]
    assert (block["type"], block["name"], block["input"]) == ("tool_use", "get_weather", {})
    assert events[3][1]["delta"] == {"type": "input_json_delta", "partial_json": "{}"}
    assert events[5][1]["delta"]["stop_reason"] == "tool_use"
    call_tokens = prompt_tokens({"name": "get_weather", "input": {}})
    assert events[5][1]["usage"]["output_tokens"] == min(call_tokens, 5)  # within max_tokens


@pytest.mark.parametrize(
    ("fields", "status", "kind"),
    [
        ({"messages": []}, 400, "invalid_request_error"),
        ({"messages": [{"role": "system", "content": "x"}]}, 400, "invalid_request_error"),
        ({"max_tokens": 0}, 400, "invalid_request_error"),
        ({"system": 5}, 400, "invalid_request_error"),
        ({"tools": [{"description": "no name"}]}, 400, "invalid_request_error"),
        ({"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "get_time"}}, 400, "invalid_request_error"),
        ({"tool_choice": {"type": "sometimes"}}, 400, "invalid_request_error"),
        ({"model": "nope/none"}, 404, "not_found_error"),
        ({"model": "openai/text-embedding-3-small"}, 400, "invalid_request_error"),
    ],
)
def test_invalid_requests_are_refused_in_anthropics_error_shape(client, fields, status, kind):
    response = send(client, **fields)
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == kind and body["error"]["message"]
    assert body["request_id"] is None


def test_a_body_that_is_not_an_object_is_an_invalid_request(client):
    response = client.post(MESSAGES, data=b"[1, 2]")
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


def test_fault_switches_refuse_in_anthropics_error_shape_and_other_routes_in_openrouters(client):
    client.post("/_control", json={"status": 429})
    limited = send(client)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert limited.json()["error"] == {"type": "rate_limit_error", "message": "fake upstream forced status 429"}
    client.post("/_control", json={"status": None, "fail_next": {"count": 2, "status": 529, "retry_after": 3}})
    overloaded = send(client)
    assert (overloaded.status_code, overloaded.headers["Retry-After"]) == (529, "3")
    assert overloaded.json()["error"]["type"] == "overloaded_error"
    assert send(client, stream=True).json()["error"]["type"] == "overloaded_error"
    assert send(client).status_code == 200
    client.post("/_control", json={"outage": True})
    down = send(client)
    assert down.status_code == 503 and down.json()["error"]["type"] == "overloaded_error"
    assert client.get("/api/v1/models").json() == {"error": {"message": "fake upstream outage", "code": 503}}


def test_count_tokens_is_not_served_as_openrouter_does_not_offer_it(client):
    response = client.post(f"{MESSAGES}/count_tokens", json={"model": SONNET[0], "messages": HELLO})
    assert response.status_code == 404


def test_messages_are_recorded_as_completions_generations_billed_as_reported(client):
    for streamed in (False, True):
        response = send(client, stream=streamed, max_tokens=3)
        data = record_of(client, response.headers["X-Generation-Id"])
        assert (data["api_type"], data["model"], data["streamed"], data["cancelled"]) == (
            "completions",
            SONNET[0],
            streamed,
            False,
        )
        assert (data["tokens_completion"], data["finish_reason"]) == (3, "stop")
        assert data["total_cost"] == priced(SONNET, data["tokens_prompt"], 3)
    answer = exact(send(client))
    assert record_of(client, answer["id"])["total_cost"] == answer["usage"]["cost"]


def test_the_cost_multiplier_scales_the_reported_and_recorded_cost_exactly(client):
    client.post("/_control", json={"cost_multiplier": 1.37})
    answer = exact(send(client))
    usage = answer["usage"]
    assert usage["cost"] == priced(SONNET, usage["input_tokens"], 5, Decimal("1.37"))
    assert record_of(client, answer["id"])["total_cost"] == usage["cost"]
    events = named_events(send(client, stream=True))
    assert Decimal(str(events[-2][1]["usage"]["cost"])) == usage["cost"]


def test_openrouter_auto_is_answered_and_billed_by_the_model_it_routes_to(client):
    answer = exact(send(client, model="openrouter/auto", max_tokens=3))
    assert answer["model"] == MINI[0]
    assert answer["usage"]["cost"] == priced(MINI, answer["usage"]["input_tokens"], 3)
    data = record_of(client, answer["id"])
    assert (data["model"], data["router"]) == (MINI[0], "openrouter/auto")
    client.post("/_control", json={"auto_routes_to": SONNET[0]})
    start = named_events(send(client, model="openrouter/auto", stream=True))[0][1]["message"]
    assert start["model"] == SONNET[0]


def test_fallbacks_answer_with_the_first_available_model_priced_as_served(client):
    client.post("/_control", json={"unavailable_models": [SONNET[0]]})
    answer = exact(send(client, models=[MINI[0]]))
    assert answer["model"] == MINI[0]
    assert answer["usage"]["cost"] == priced(MINI, answer["usage"]["input_tokens"], 5)
    alone = send(client)
    assert alone.status_code == 503 and alone.json()["error"]["type"] == "overloaded_error"


def test_long_answer_tokens_answers_a_message_without_max_tokens_at_length(client):
    client.post("/_control", json={"long_answer_tokens": 1000})
    answer = send(client, max_tokens=None).json()
    assert answer["usage"]["output_tokens"] == 1000 and answer["stop_reason"] == "end_turn"
    assert send(client, max_tokens=7).json()["usage"]["output_tokens"] == 7


def test_cut_stream_after_drops_a_message_stream_before_message_delta_and_bills_what_was_sent(fake):
    fake.faults.update({"cut_stream_after": 2})
    status, headers, events = fake.answer("POST", MESSAGES, json.dumps(message(stream=True, max_tokens=9)).encode())
    sent = []
    with pytest.raises(StreamCut):
        for event in events:
            sent.append(event)
    deltas = [event for event in sent if event.startswith("event: content_block_delta")]
    assert len(deltas) == 2 and not any("message_delta" in event for event in sent)
    generation_id = dict(headers)["X-Generation-Id"]
    data = json.loads(fake.answer("GET", f"{GENERATION}?id={generation_id}", b"")[2], parse_float=Decimal)["data"]
    assert (data["cancelled"], data["tokens_completion"]) == (True, 2)
    assert data["total_cost"] == priced(SONNET, data["tokens_prompt"], 2)


def test_a_cut_message_stream_breaks_off_for_a_client(client):
    client.post("/_control", json={"cut_stream_after": 1})
    response = client.post(MESSAGES, json=message(stream=True), stream=True)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        response.content  # noqa: B018 - a client sees the break
    assert record_of(client, response.headers["X-Generation-Id"])["tokens_completion"] == 1


def test_stats_count_messages_apart_from_chat(client):
    send(client)
    send(client, stream=True)
    stats = client.get("/_stats").json()
    assert (stats["messages"], stats["completions_served"]) == (2, 0)
