"""The fake OpenRouter as a process: several on one port share the switches and the generation
records; usage accounting reports the exact cost the gateway computes; prompt and completion tokens
are billed as upstream would; the official openai SDK reads its embeddings, responses and fallbacks;
the gateway's client retries exactly the failures the fake is told to send."""

import json
import time
from decimal import Decimal

import openai
import psutil
import pytest
import requests

from devtools.fake_openrouter import RECHECK_SECONDS
from devtools.fake_openrouter.routes import DEFAULT_COMPLETION_TOKENS
from ops_gateway.billing import pricing
from ops_gateway.upstream.failures import UpstreamError
from ops_gateway.upstream.openrouter import OpenRouterClient
from tests.e2e.servers import start_fake_openrouter


def test_worker_processes_share_the_port_and_the_switches_and_stop_together(tmp_path):
    server = start_fake_openrouter(tmp_path, workers=2)
    try:
        parent = psutil.Process(server.process.pid)
        processes = [parent, *parent.children(recursive=True)]
        assert len(processes) == 2
        # A new connection each time: the kernel hands them to either process.
        pids = {requests.get(f"{server.url}/_stats", timeout=5).json()["pid"] for _ in range(40)}
        assert pids == {process.pid for process in processes}
        requests.post(f"{server.url}/_control", json={"outage": True}, timeout=5).raise_for_status()
        time.sleep(RECHECK_SECONDS + 0.1)
        statuses = {requests.get(f"{server.base_url}/models", timeout=5).status_code for _ in range(20)}
        assert statuses == {503}
    finally:
        server.stop()
    assert not any(process.is_running() for process in processes)


def test_every_worker_process_reads_the_generations_the_others_recorded(tmp_path):
    server = start_fake_openrouter(tmp_path, workers=2)
    try:
        body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        # A new connection each time: the kernel hands them to either process.
        ids = [
            requests.post(f"{server.base_url}/chat/completions", json=body, timeout=5).json()["id"] for _ in range(20)
        ]
        writers = {generation_id.split("-")[2] for generation_id in ids}  # gen-fake-<pid>-<n>-<number>
        assert len(writers) == 2
        for generation_id in ids:
            for _ in range(2):  # asked twice, on new connections: each process may answer
                found = requests.get(f"{server.base_url}/generation", params={"id": generation_id}, timeout=5)
                assert found.status_code == 200 and found.json()["data"]["tokens_completion"] == 2
    finally:
        server.stop()


def test_worker_processes_exit_when_the_parent_is_killed(tmp_path):
    server = start_fake_openrouter(tmp_path, workers=3)
    children = psutil.Process(server.process.pid).children()
    assert len(children) == 2
    server.process.kill()
    server.stop()
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive


def ask(upstream, model="openai/gpt-4o-mini", **fields):
    """POST one chat completion to the fake; return the response."""
    body = {"model": model, "messages": [{"role": "user", "content": "How far is the moon?"}], **fields}
    return requests.post(f"{upstream.base_url}/chat/completions", json=body, timeout=10)


def catalogue(upstream, path="/models"):
    """The entries by id of one of the fake's model lists (/models, or /embeddings/models)."""
    return {model["id"]: model for model in requests.get(f"{upstream.base_url}{path}", timeout=10).json()["data"]}


def test_usage_accounting_reports_the_cost_the_gateway_computes_from_the_catalogue(upstream):
    for model_id, model in catalogue(upstream).items():
        assert model["architecture"]["output_modalities"] == ["text"]  # embedding models are listed apart
        if pricing.is_unpriced(model["pricing"]):
            continue  # openrouter/auto: billed as the model it routes to (tests/unit/test_fake_openrouter_billing.py)
        answer = ask(upstream, model_id, max_tokens=7, usage={"include": True})
        usage = json.loads(answer.text, parse_float=Decimal)["usage"]
        prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
        expected = prompt * Decimal(model["pricing"]["prompt"]) + completion * Decimal(model["pricing"]["completion"])
        assert usage["cost"] == expected == pricing.price(model, prompt, completion), model_id
        assert not isinstance(usage["cost"], str)  # a JSON number


def test_streamed_usage_chunk_carries_the_cost_even_without_include_usage(upstream):
    events = ask(upstream, max_tokens=3, stream=True, usage={"include": True}).text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    final = json.loads(events[-3].removeprefix("data: "), parse_float=Decimal)
    assert final["choices"] == []
    unstreamed = json.loads(ask(upstream, max_tokens=3, usage={"include": True}).text, parse_float=Decimal)
    assert final["usage"] == unstreamed["usage"]
    assert final["usage"]["cost"] > 0


def test_no_cost_without_usage_accounting(upstream):
    assert "cost" not in ask(upstream).json()["usage"]
    events = ask(upstream, stream=True, stream_options={"include_usage": True}).text.split("\n\n")
    assert "cost" not in json.loads(events[-3].removeprefix("data: "))["usage"]


def test_prompt_tokens_count_tools_and_response_format_but_not_request_options(upstream):
    def prompt_tokens(**fields):
        return ask(upstream, **fields).json()["usage"]["prompt_tokens"]

    bare = prompt_tokens()
    tool = {"type": "function", "function": {"name": "distance", "parameters": {"type": "object", "properties": {}}}}
    schema = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
    assert prompt_tokens(tools=[tool]) > bare
    assert prompt_tokens(tools=[tool] * 3) > prompt_tokens(tools=[tool]) + 20
    assert prompt_tokens(response_format=schema) > bare
    options = {
        "temperature": 0.2,
        "max_tokens": 5,
        "stream_options": {"include_usage": True},
        "usage": {"include": True},
    }
    assert prompt_tokens(**options) == bare


def test_completion_length_without_max_tokens_is_the_default_and_max_completion_tokens_caps_it(upstream):
    assert ask(upstream).json()["usage"]["completion_tokens"] == DEFAULT_COMPLETION_TOKENS
    assert ask(upstream, max_completion_tokens=5).json()["usage"]["completion_tokens"] == 5
    assert ask(upstream, max_tokens=3, max_completion_tokens=5).json()["usage"]["completion_tokens"] == 3


def sdk(upstream):
    """The official openai client pointed at the fake, with its own retries off."""
    return openai.OpenAI(base_url=upstream.base_url, api_key="fake", max_retries=0)


def test_embeddings_through_the_openai_sdk_are_priced_exactly(upstream):
    model = catalogue(upstream, "/embeddings/models")["openai/text-embedding-3-small"]
    raw = sdk(upstream).embeddings.with_raw_response.create(  # the SDK asks for base64 and decodes it
        model=model["id"], input=["How far is the moon?", "x"], dimensions=16, extra_body={"usage": {"include": True}}
    )
    created = raw.parse()
    assert [len(item.embedding) for item in created.data] == [16, 16]
    assert created.usage.prompt_tokens == len("How far is the moon?") // 4 + 1
    cost = json.loads(raw.http_response.text, parse_float=Decimal)["usage"]["cost"]
    assert cost == pricing.price(model, created.usage.prompt_tokens, 0) > 0


def test_responses_through_the_openai_sdk_streamed_and_not(upstream):
    client = sdk(upstream)
    tool = {"type": "function", "name": "distance", "parameters": {"type": "object", "properties": {}}}
    answer = client.responses.create(
        model="openai/gpt-4o-mini", input="How far is the moon?", max_output_tokens=3, tools=[tool]
    )
    assert answer.status == "completed" and answer.output_text == "word0 word1 word2"
    assert [item.type for item in answer.output] == ["message", "function_call"]
    assert answer.usage.output_tokens == 3
    events = list(client.responses.create(model="openai/gpt-4o-mini", input="How far is the moon?", stream=True))
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert deltas == " ".join(f"word{i}" for i in range(DEFAULT_COMPLETION_TOKENS))
    assert events[-1].type == "response.completed"
    usage = events[-1].response.usage
    assert (usage.output_tokens, usage.total_tokens) == (DEFAULT_COMPLETION_TOKENS, usage.input_tokens + 16)
    with client.responses.stream(model="openai/gpt-4o-mini", input="hi", max_output_tokens=2) as stream:
        assert stream.get_final_response().output_text == "word0 word1"


def test_chat_fallback_models_through_the_openai_sdk_answer_with_the_next_model(upstream):
    requests.post(f"{upstream.url}/_control", json={"unavailable_models": ["openai/gpt-4o-mini"]}, timeout=5)
    time.sleep(RECHECK_SECONDS)
    completion = sdk(upstream).chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=2,
        extra_body={"models": ["meta-llama/llama-3.1-8b-instruct"], "provider": {"sort": "price"}},
    )
    assert completion.model == "meta-llama/llama-3.1-8b-instruct"


@pytest.mark.parametrize("stream", [False, True])
def test_the_gateway_client_retries_exactly_the_failures_the_fake_sends(upstream, stream):
    retries = []
    client = OpenRouterClient(upstream.base_url, "fake", on_retry=lambda *retry: retries.append(retry))
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    requests.post(f"{upstream.url}/_control", json={"fail_next": {"count": 1, "status": 503}}, timeout=5)
    answer = list(client.stream_chat_completion(body)) if stream else client.chat_completion(body)
    assert answer[-1] == "[DONE]" if stream else answer["usage"]["completion_tokens"] == 2
    requests.post(
        f"{upstream.url}/_control", json={"fail_next": {"count": 2, "status": 429, "retry_after": 0}}, timeout=5
    )
    with pytest.raises(UpstreamError) as raised:
        client.embeddings({"model": "openai/text-embedding-3-small", "input": "hi"})
    assert raised.value.status == 429
    assert retries == [("/chat/completions", "succeeded"), ("/embeddings", "failed")]
    assert requests.get(f"{upstream.url}/_control", timeout=5).json()["fail_next"] is None
