"""OpenTelemetry traces end to end: a gunicorn gateway exports its spans to a local OTLP/HTTP
collector with the GenAI attributes, the caller's traceparent continued and passed upstream to
the fake OpenRouter; with the collector down every request still answers at once."""

import time

import pytest
import requests

from devtools.otlp_collector import OtlpCollector
from tests.e2e.gateway_calls import MODEL, complete, create_user

SERVER, CLIENT = 2, 3  # opentelemetry-proto's Span.SpanKind
TRACE_ID, CALLER_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
OTEL = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "gateway-under-test"}


@pytest.fixture
def collector():
    running = OtlpCollector()
    yield running
    running.stop()


def chat_spans(spans):
    server = [s for s in spans if s["kind"] == SERVER and s["name"] == "POST /v1/chat/completions"]
    client = [s for s in spans if s["kind"] == CLIENT]
    return server, client


def test_a_completion_is_a_server_span_with_an_upstream_client_span(gateway, upstream, collector):
    server = gateway(workers=1, OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, **OTEL)
    user_id, headers, _ = create_user(server.url, "5.00")
    traced = {**headers, "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"}
    status, body = complete(server.url, traced)
    assert status == 200, body
    spans = collector.wait_for(lambda spans: all(chat_spans(spans)))
    [request_span], [call_span] = chat_spans(spans)
    assert (request_span["trace_id"], request_span["parent_span_id"]) == (TRACE_ID, CALLER_SPAN)
    assert (call_span["trace_id"], call_span["parent_span_id"]) == (TRACE_ID, request_span["span_id"])
    attributes = request_span["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.system"] == "openrouter"
    assert attributes["gen_ai.request.model"] == attributes["gen_ai.response.model"] == MODEL
    assert attributes["gen_ai.usage.input_tokens"] > 0 and attributes["gen_ai.usage.output_tokens"] > 0
    assert (attributes["gateway.user_id"], attributes["http.response.status_code"]) == (user_id, 200)
    assert call_span["attributes"]["gen_ai.request.model"] == MODEL and call_span["name"] == f"chat {MODEL}"
    assert request_span["resource"]["service.name"] == "gateway-under-test"
    stats = requests.get(f"{upstream.url}/_stats", timeout=5).json()
    assert stats["last_traceparent"] == f"00-{TRACE_ID}-{call_span['span_id']}-01"  # it reached upstream


def test_a_streams_span_ends_with_the_stream_and_a_new_trace_starts_without_a_caller(gateway, upstream, collector):
    server = gateway(workers=1, OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, **OTEL)
    _, headers, _ = create_user(server.url, "5.00")
    status, events = complete(server.url, headers, stream=True)
    assert status == 200 and events[-1] == "data: [DONE]"
    spans = collector.wait_for(lambda spans: all(chat_spans(spans)))
    [request_span], [call_span] = chat_spans(spans)
    assert request_span["parent_span_id"] == "" and call_span["trace_id"] == request_span["trace_id"]
    assert request_span["attributes"]["gateway.status"] == "success"  # annotated at the stream's end
    assert request_span["attributes"]["gen_ai.usage.output_tokens"] > 0


def test_a_collector_that_is_down_costs_the_requests_nothing(gateway, upstream):
    down = OtlpCollector()
    down.stop()  # its port now refuses connections
    server = gateway(workers=1, OTEL_EXPORTER_OTLP_ENDPOINT=down.url, **OTEL)
    _, headers, _ = create_user(server.url, "5.00")
    for _ in range(5):
        started = time.monotonic()
        status, _ = complete(server.url, headers)
        assert status == 200 and time.monotonic() - started < 1.0
    assert requests.get(f"{server.url}/health/live", timeout=5).status_code == 200
