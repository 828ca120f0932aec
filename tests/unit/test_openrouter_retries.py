"""OpenRouter client: POSTs are retried after 429/502/503 within the call's deadline, streams only
before their first event, and every retry's outcome reaches the on_retry hook and /metrics."""

import email.utils
import io
import time

import pytest
import requests
from prometheus_client import REGISTRY

from ops_gateway.core.config import ConfigError, load_settings
from ops_gateway.telemetry import metrics
from ops_gateway.upstream import openrouter
from ops_gateway.upstream.failures import UpstreamError
from ops_gateway.upstream.openrouter import OpenRouterClient
from ops_gateway.upstream.streams import KEEP_ALIVE

BASE_URL = "https://openrouter.test/api/v1"
COMPLETIONS_URL = f"{BASE_URL}/chat/completions"
RESPONSES_URL = f"{BASE_URL}/responses"
PAYLOAD = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {"id": "gen-1", "object": "chat.completion", "choices": [], "usage": {"total_tokens": 5}}


@pytest.fixture
def waits(monkeypatch):
    """The client's sleeps, recorded instead of slept."""
    slept = []
    monkeypatch.setattr(openrouter.time, "sleep", slept.append)
    return slept


@pytest.fixture
def retries():
    """The (endpoint, outcome) pairs the client reports to on_retry."""
    return []


@pytest.fixture
def client(retries):
    """A client with the default retry settings, reporting retries into ``retries``."""
    return OpenRouterClient(BASE_URL, "key", on_retry=lambda *retry: retries.append(retry))


def test_a_503_then_success_is_retried_once_after_the_default_backoff(requests_mock, client, retries, waits):
    requests_mock.post(COMPLETIONS_URL, [{"status_code": 503}, {"json": COMPLETION}])
    assert client.chat_completion(PAYLOAD) == COMPLETION
    assert requests_mock.call_count == 2
    assert waits == [0.25]
    assert retries == [("/chat/completions", "succeeded")]


@pytest.mark.parametrize("status", [429, 502, 503])
def test_retryable_statuses_get_one_retry_by_default_then_fail(requests_mock, client, retries, waits, status):
    requests_mock.post(COMPLETIONS_URL, status_code=status, json={"error": {"message": "busy"}})
    with pytest.raises(UpstreamError) as raised:
        client.chat_completion(PAYLOAD)
    assert raised.value.status == status
    assert requests_mock.call_count == 2
    assert retries == [("/chat/completions", "failed")]


@pytest.mark.parametrize("status", [400, 401, 404, 500, 504])
def test_other_statuses_are_not_retried(requests_mock, client, retries, status):
    requests_mock.post(COMPLETIONS_URL, status_code=status, json={"error": {"message": "no"}})
    with pytest.raises(UpstreamError):
        client.chat_completion(PAYLOAD)
    assert requests_mock.call_count == 1
    assert retries == []


def test_retry_after_seconds_is_honoured(requests_mock, client, waits):
    requests_mock.post(COMPLETIONS_URL, [{"status_code": 429, "headers": {"Retry-After": "3"}}, {"json": COMPLETION}])
    assert client.chat_completion(PAYLOAD) == COMPLETION
    assert waits == [3]


def test_retry_after_as_an_http_date_is_honoured(requests_mock, client, waits):
    header = email.utils.formatdate(time.time() + 5, usegmt=True)
    requests_mock.post(COMPLETIONS_URL, [{"status_code": 503, "headers": {"Retry-After": header}}, {"json": {}}])
    client.chat_completion(PAYLOAD)
    assert len(waits) == 1 and 4 <= waits[0] <= 6


def test_a_429_whose_retry_after_passes_the_deadline_is_not_retried(requests_mock, retries, waits):
    client = OpenRouterClient(BASE_URL, "key", read_timeout=2, on_retry=lambda *retry: retries.append(retry))
    requests_mock.post(COMPLETIONS_URL, status_code=429, headers={"Retry-After": "5"}, json={"error": {}})
    with pytest.raises(UpstreamError) as raised:
        client.chat_completion(PAYLOAD)
    assert (raised.value.kind, raised.value.retry_after) == ("rate_limited", 5)
    assert requests_mock.call_count == 1
    assert waits == []
    assert retries == [("/chat/completions", "skipped_deadline")]


def test_upstream_retries_zero_turns_retries_off(requests_mock, waits):
    requests_mock.post(COMPLETIONS_URL, [{"status_code": 503}, {"json": COMPLETION}])
    with pytest.raises(UpstreamError):
        OpenRouterClient(BASE_URL, "key", upstream_retries=0).chat_completion(PAYLOAD)
    assert requests_mock.call_count == 1


def test_a_stream_refused_before_its_first_byte_is_retried(requests_mock, client, retries, waits):
    body = 'data: {"n":1}\n\ndata: [DONE]\n\n'
    requests_mock.post(COMPLETIONS_URL, [{"status_code": 502}, {"text": body}])
    assert list(client.stream_chat_completion(PAYLOAD)) == ['{"n":1}', "[DONE]"]
    assert requests_mock.call_count == 2
    assert retries == [("/chat/completions", "succeeded")]


def test_a_stream_that_never_connected_is_retried(requests_mock, client, waits):
    requests_mock.post(COMPLETIONS_URL, [{"exc": requests.exceptions.ConnectTimeout}, {"text": "data: [DONE]\n\n"}])
    assert list(client.stream_chat_completion(PAYLOAD)) == ["[DONE]"]
    assert requests_mock.call_count == 2


class BreakingBody(io.BytesIO):
    """A body that, once its bytes are delivered, breaks like a reset connection."""

    def read(self, *args):
        data = super().read(*args)
        if not data:
            raise ConnectionResetError("connection reset by peer")
        return data


def test_a_stream_failing_midway_is_not_retried(requests_mock, client, retries):
    padding = b": " + b"x" * 600 + b"\n"  # past one 512-byte read, so the first event arrives first
    requests_mock.post(COMPLETIONS_URL, body=BreakingBody(b'data: {"n":1}\n\n' + padding))
    stream = client.stream_chat_completion(PAYLOAD)
    assert next(stream) == '{"n":1}'
    with pytest.raises(UpstreamError):
        next(stream)
    assert requests_mock.call_count == 1
    assert retries == []


def test_embeddings_and_responses_go_through_the_same_retries(requests_mock, client, retries, waits):
    requests_mock.post(f"{BASE_URL}/embeddings", [{"status_code": 503}, {"json": {"object": "list"}}])
    requests_mock.post(RESPONSES_URL, [{"status_code": 429}, {"json": {"object": "response"}}])
    assert client.embeddings({"model": "m", "input": "x"}) == {"object": "list"}
    assert client.responses({"model": "m", "input": "x"}) == {"object": "response"}
    assert requests_mock.last_request.json()["stream"] is False
    assert retries == [("/embeddings", "succeeded"), ("/responses", "succeeded")]


def test_a_responses_stream_yields_event_names_with_their_data(requests_mock, client, waits):
    body = (
        'event: response.created\ndata: {"type":"response.created"}\n\n'
        ": keep-alive\n\n"
        'event: response.output_text.delta\ndata: {"delta":"a"}\n\n'
        'event: response.completed\ndata: {"type":"response.completed"}\n\n'
    )
    requests_mock.post(RESPONSES_URL, [{"status_code": 503}, {"text": body}])
    events = list(client.stream_responses({"model": "m", "input": "x"}))
    assert events == [
        ("response.created", '{"type":"response.created"}'),
        KEEP_ALIVE,  # the comment, for the relay to pass on
        ("response.output_text.delta", '{"delta":"a"}'),
        ("response.completed", '{"type":"response.completed"}'),
    ]
    assert requests_mock.last_request.json()["stream"] is True


def test_retry_outcomes_are_counted_in_metrics(requests_mock, waits):
    def count(outcome):
        labels = {"endpoint": "/embeddings", "outcome": outcome}
        return REGISTRY.get_sample_value("gateway_upstream_retries_total", labels) or 0.0

    before = {outcome: count(outcome) for outcome in ("succeeded", "failed", "skipped_deadline")}
    client = OpenRouterClient(BASE_URL, "key", read_timeout=10, on_retry=metrics.observe_upstream_retry)
    requests_mock.post(
        f"{BASE_URL}/embeddings",
        [
            {"status_code": 503},
            {"json": {}},
            {"status_code": 502},
            {"status_code": 502},
            {"status_code": 429, "headers": {"Retry-After": "60"}},
        ],
    )
    client.embeddings({"input": "x"})
    for _ in range(2):
        with pytest.raises(UpstreamError):
            client.embeddings({"input": "x"})
    assert {outcome: count(outcome) - before[outcome] for outcome in before} == {
        "succeeded": 1,
        "failed": 1,
        "skipped_deadline": 1,
    }


@pytest.mark.parametrize("raw", ["-1", "one", "1.5"])
def test_upstream_retries_setting_is_strict(raw):
    with pytest.raises(ConfigError, match="UPSTREAM_RETRIES"):
        load_settings({"UPSTREAM_RETRIES": raw})


def test_upstream_retries_defaults_to_one():
    assert load_settings({}).UPSTREAM_RETRIES == 1
