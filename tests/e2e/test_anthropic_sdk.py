"""The official anthropic SDK, unchanged, through gunicorn and the fake OpenRouter's /messages:
create, both ways of streaming, a tool-use round trip, and its typed errors; books exact."""

from decimal import Decimal

import anthropic
import pytest
import requests

from tests.e2e.gateway_calls import ADMIN, MODEL, books, create_user

QUESTION = {"role": "user", "content": "How far is the moon?"}
TOOLS = [{"name": "distance", "description": "distance to a body", "input_schema": {"type": "object"}}]


def sdk(server, key):
    return anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0)


def assert_books_exact(sql, user_id, opening):
    row = books(sql, user_id)
    assert opening - row["credits"] == row["usage"] == row["debits"] == row["upstream"] > 0, row
    assert row["reserved_credits"] == 0


def test_the_anthropic_sdk_creates_streams_and_uses_tools_through_the_gateway(gateway, upstream, sql):
    server = gateway(workers=2)
    user_id, _, key = create_user(server.url, "1.00")
    client = sdk(server, key)

    message = client.messages.create(model=MODEL, max_tokens=3, messages=[QUESTION])
    assert message.content[0].text == "word0 word1 word2" and message.usage.output_tokens == 3

    with client.messages.stream(model=MODEL, max_tokens=4, messages=[QUESTION]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "word0 word1 word2 word3" and final.usage.output_tokens == 4
    events = list(client.messages.create(model=MODEL, max_tokens=2, messages=[QUESTION], stream=True))
    assert events[0].type == "message_start" and events[-1].type == "message_stop"

    asked = client.messages.create(
        model=MODEL, max_tokens=16, tools=TOOLS, tool_choice={"type": "any"}, messages=[QUESTION]
    )
    assert asked.stop_reason == "tool_use"
    [call] = [block for block in asked.content if block.type == "tool_use"]
    assert call.name == "distance"
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "384,400 km"}
    answer = client.messages.create(
        model=MODEL,
        max_tokens=5,
        tools=TOOLS,
        messages=[QUESTION, {"role": "assistant", "content": asked.content}, {"role": "user", "content": [result]}],
    )
    assert answer.content[0].type == "text" and answer.stop_reason in ("end_turn", "max_tokens")

    rows = sql("SELECT endpoint, streamed, status FROM usage_records WHERE user_id = %s ORDER BY id", (user_id,))
    assert [(r["endpoint"], r["streamed"], r["status"]) for r in rows] == [
        ("messages", False, "success"),
        ("messages", True, "success"),
        ("messages", True, "success"),
        ("messages", False, "success"),
        ("messages", False, "success"),
    ]
    assert_books_exact(sql, user_id, Decimal("1.00"))


def test_the_anthropic_sdk_raises_its_typed_errors_and_nothing_is_charged_for_them(gateway, upstream, sql):
    server = gateway(workers=2)
    user_id, _, key = create_user(server.url, "1.00")
    with pytest.raises(anthropic.AuthenticationError):
        sdk(server, "gw_live_" + "x" * 40).messages.create(model=MODEL, max_tokens=2, messages=[QUESTION])

    restricted = requests.post(
        f"{server.url}/user/api-keys",
        json={"name": "restricted", "allowed_models": ["test/free-model"]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ).json()["api_key"]
    with pytest.raises(anthropic.PermissionDeniedError):
        sdk(server, restricted).messages.create(model=MODEL, max_tokens=2, messages=[QUESTION])

    poor_id, _, poor_key = create_user(server.url, "0.00")
    with pytest.raises(anthropic.APIStatusError) as refused:
        sdk(server, poor_key).messages.create(model=MODEL, max_tokens=2, messages=[QUESTION])
    assert refused.value.status_code == 402 and refused.value.body["error"]["type"] == "billing_error"

    limit = {"user_id": user_id, "rate_limits": {"requests_per_minute": 1}}
    requests.post(f"{server.url}/admin/limit", json=limit, headers=ADMIN, timeout=10).raise_for_status()
    client = sdk(server, key)
    for _ in range(3):  # 1 a minute: the second is refused, or the third if the minute turned between
        try:
            client.messages.create(model=MODEL, max_tokens=2, messages=[QUESTION])
        except anthropic.RateLimitError as error:
            assert int(error.response.headers["retry-after"]) >= 1
            break
    else:
        pytest.fail("no request was rate limited")
    assert_books_exact(sql, user_id, Decimal("1.00"))
    assert sql("SELECT count(*) AS n FROM usage_records WHERE user_id = %s", (poor_id,)) == [{"n": 0}]
