"""The official openai SDK, unchanged, through gunicorn and the fake OpenRouter: embeddings,
responses (streamed and not) and chat with fallback models; each metered and recorded by endpoint."""

import time
from decimal import Decimal

import openai
import requests

from devtools.fake_openrouter.faults import RECHECK_SECONDS
from tests.e2e.gateway_calls import MODEL, books, create_user

FALLBACK = "meta-llama/llama-3.1-8b-instruct"


def test_the_openai_sdk_embeds_responds_and_falls_back_through_the_gateway(gateway, upstream, sql):
    server = gateway(workers=2)
    user_id, _, key = create_user(server.url, "1.00")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)

    created = client.embeddings.create(model="openai/text-embedding-3-small", input=["How far is the moon?", "x"])
    assert len(created.data) == 2 and created.usage.prompt_tokens > 0

    tool = {"type": "function", "name": "distance", "parameters": {"type": "object", "properties": {}}}
    answer = client.responses.create(model=MODEL, input="How far is the moon?", max_output_tokens=3, tools=[tool])
    assert answer.output_text == "word0 word1 word2"
    assert [item.type for item in answer.output] == ["message", "function_call"]
    events = list(client.responses.create(model=MODEL, input="hi", max_output_tokens=4, stream=True))
    assert events[-1].type == "response.completed" and events[-1].response.usage.output_tokens == 4

    requests.post(f"{upstream.url}/_control", json={"unavailable_models": [MODEL]}, timeout=5).raise_for_status()
    time.sleep(RECHECK_SECONDS)
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2, extra_body={"models": [FALLBACK]}
    )
    assert reply.model == FALLBACK

    rows = sql(
        "SELECT endpoint, model, served_model, streamed, completion_tokens FROM usage_records"
        " WHERE user_id = %s ORDER BY id",
        (user_id,),
    )
    assert [(r["endpoint"], r["model"], r["served_model"], r["streamed"]) for r in rows] == [
        ("embeddings", "openai/text-embedding-3-small", None, False),
        ("responses", MODEL, None, False),
        ("responses", MODEL, None, True),
        ("chat", MODEL, FALLBACK, False),
    ]
    row = books(sql, user_id)
    assert Decimal("1.00") - row["credits"] == row["usage"] == row["debits"] == row["upstream"] > 0
    assert row["reserved_credits"] == 0
