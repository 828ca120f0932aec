"""OpenRouter client: what is retried, how failures are classified, what reaches the logs."""

import http.server
import io
import logging
import threading

import pytest
import requests

from devtools.ports import unused_port
from ops_gateway.upstream.failures import CREDENTIALS_REJECTED, UpstreamError
from ops_gateway.upstream.openrouter import OpenRouterClient
from ops_gateway.upstream.streams import KEEP_ALIVE

BASE_URL = "https://openrouter.test/api/v1"
API_KEY = "sk-or-v1-secret-test-key-0123456789"
MODELS_URL = f"{BASE_URL}/models"
COMPLETIONS_URL = f"{BASE_URL}/chat/completions"
PAYLOAD = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {"id": "gen-1", "object": "chat.completion", "choices": [], "usage": {"total_tokens": 5}}


def make_client(**options):
    """A client that never sleeps between retries."""
    return OpenRouterClient(BASE_URL, API_KEY, backoff_seconds=0, **options)


@pytest.fixture
def upstream_log(caplog):
    """caplog attached to the client's logger directly: app logging may stop propagation."""
    logger = logging.getLogger("ops_gateway.openrouter")
    caplog.set_level(logging.INFO, logger=logger.name)
    logger.addHandler(caplog.handler)
    propagate = logger.propagate
    logger.propagate = False  # each record once, whatever the root handlers are
    yield caplog
    logger.propagate = propagate
    logger.removeHandler(caplog.handler)


def sse(*payloads):
    """Encode payloads as an SSE body, with a keep-alive comment like OpenRouter sends."""
    return ": OPENROUTER PROCESSING\n\n" + "".join(f"data: {payload}\n\n" for payload in payloads)


class StallingBody(io.BytesIO):
    """A body that, once its bytes are delivered, times out like a stalled socket."""

    def read(self, *args):
        data = super().read(*args)
        if not data:
            raise TimeoutError("timed out")
        return data


class CookieSettingUpstream(http.server.BaseHTTPRequestHandler):
    """An upstream that sets a cookie, like a CDN in front of OpenRouter, and records the ones sent."""

    def do_GET(self):
        self.server.cookies_sent.append(self.headers.get("Cookie"))
        body = b'{"data": []}'
        self.send_response(200)
        self.send_header("Set-Cookie", "__cf_bm=abc; Path=/")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_list_models_returns_the_data_list(requests_mock):
    requests_mock.get(MODELS_URL, json={"data": [{"id": "openai/gpt-4o-mini"}]})
    assert make_client().list_models() == [{"id": "openai/gpt-4o-mini"}]


def test_list_embedding_models_reads_openrouters_separate_list_and_retries_it(requests_mock, upstream_log):
    embedder = {"id": "openai/text-embedding-3-small", "architecture": {"output_modalities": ["embeddings"]}}
    requests_mock.get(f"{BASE_URL}/embeddings/models", [{"status_code": 502}, {"json": {"data": [embedder]}}])
    assert make_client().list_embedding_models() == [embedder]
    assert requests_mock.call_count == 2 and upstream_log.records[-1].upstream_path == "/embeddings/models"


def test_list_models_retries_server_errors_until_success(requests_mock):
    requests_mock.get(MODELS_URL, [{"status_code": 503}, {"status_code": 502}, {"json": {"data": []}}])
    assert make_client().list_models() == []
    assert requests_mock.call_count == 3


def test_list_models_gives_up_after_max_retries(requests_mock, upstream_log):
    requests_mock.get(MODELS_URL, status_code=503)
    with pytest.raises(UpstreamError) as raised:
        make_client(max_retries=2).list_models()
    assert (raised.value.kind, raised.value.status) == ("unavailable", 503)
    assert requests_mock.call_count == 3
    assert upstream_log.records[-1].attempts == 3


def test_list_models_retries_a_timeout(requests_mock):
    requests_mock.get(MODELS_URL, [{"exc": requests.exceptions.ReadTimeout}, {"json": {"data": []}}])
    assert make_client().list_models() == []
    assert requests_mock.call_count == 2


def test_malformed_model_list_is_unavailable(requests_mock):
    requests_mock.get(MODELS_URL, text="<html>oops</html>")
    with pytest.raises(UpstreamError) as raised:
        make_client().list_models()
    assert raised.value.kind == "unavailable"


def test_completion_returns_the_parsed_body(requests_mock):
    requests_mock.post(COMPLETIONS_URL, json=COMPLETION)
    assert make_client().chat_completion(PAYLOAD) == COMPLETION
    assert requests_mock.last_request.json()["model"] == "openai/gpt-4o-mini"


def test_completion_is_sent_as_json_with_its_length(requests_mock):
    requests_mock.post(COMPLETIONS_URL, json=COMPLETION)
    make_client().chat_completion(PAYLOAD)
    sent = requests_mock.last_request
    assert sent.json() == {**PAYLOAD, "stream": False}
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["Content-Length"] == str(len(sent.body))


def test_a_payload_json_cannot_carry_is_unavailable_and_never_sent(requests_mock):
    requests_mock.post(COMPLETIONS_URL, json=COMPLETION)
    with pytest.raises(UpstreamError) as raised:
        make_client().chat_completion({**PAYLOAD, "temperature": float("nan")})
    assert raised.value.kind == "unavailable"
    assert requests_mock.call_count == 0


def test_completion_is_not_retried_on_server_error(requests_mock):
    requests_mock.post(COMPLETIONS_URL, status_code=500)
    with pytest.raises(UpstreamError) as raised:
        make_client().chat_completion(PAYLOAD)
    assert (raised.value.kind, raised.value.status) == ("unavailable", 500)
    assert requests_mock.call_count == 1


def test_completion_is_not_retried_on_read_timeout(requests_mock):
    requests_mock.post(COMPLETIONS_URL, exc=requests.exceptions.ReadTimeout)
    with pytest.raises(UpstreamError) as raised:
        make_client().chat_completion(PAYLOAD)
    assert raised.value.kind == "timeout"
    assert requests_mock.call_count == 1


def test_completion_is_not_retried_when_the_connection_breaks_after_sending(requests_mock):
    requests_mock.post(COMPLETIONS_URL, exc=requests.exceptions.ConnectionError("Connection reset by peer"))
    with pytest.raises(UpstreamError) as raised:
        make_client().chat_completion(PAYLOAD)
    assert raised.value.kind == "unavailable"
    assert requests_mock.call_count == 1


def test_completion_is_retried_when_connecting_timed_out(requests_mock):
    requests_mock.post(COMPLETIONS_URL, [{"exc": requests.exceptions.ConnectTimeout}, {"json": COMPLETION}])
    assert make_client().chat_completion(PAYLOAD) == COMPLETION
    assert requests_mock.call_count == 2


def test_completion_is_retried_when_the_connection_is_refused(upstream_log):
    port = unused_port("127.0.0.1")  # nothing listens there
    client = OpenRouterClient(f"http://127.0.0.1:{port}/api/v1", API_KEY, backoff_seconds=0, upstream_retries=2)
    with pytest.raises(UpstreamError) as raised:
        client.chat_completion(PAYLOAD)
    assert raised.value.kind == "unavailable"
    assert upstream_log.records[-1].attempts == 3


@pytest.mark.parametrize("status", [400, 422])
def test_bad_request_passes_the_upstream_message_through(requests_mock, status):
    body = {"error": {"message": "max_tokens must be at most 4096", "code": status}}
    requests_mock.post(COMPLETIONS_URL, status_code=status, json=body)
    with pytest.raises(UpstreamError) as raised:
        make_client().chat_completion(PAYLOAD)
    assert (raised.value.kind, raised.value.status) == ("bad_request", status)
    assert raised.value.message == "max_tokens must be at most 4096"


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_gateway_credentials_are_unavailable(requests_mock, status):
    requests_mock.post(COMPLETIONS_URL, status_code=status, json={"error": {"message": "No auth credentials"}})
    with pytest.raises(UpstreamError) as raised:
        make_client().chat_completion(PAYLOAD)
    assert (raised.value.kind, raised.value.status) == ("unavailable", status)
    assert raised.value.message == CREDENTIALS_REJECTED


def test_unknown_model_is_not_found(requests_mock):
    requests_mock.post(COMPLETIONS_URL, status_code=404, json={"error": {"message": "Model x/y not found"}})
    with pytest.raises(UpstreamError) as raised:
        make_client().chat_completion(PAYLOAD)
    assert (raised.value.kind, raised.value.message) == ("not_found", "Model x/y not found")


def test_upstream_rate_limit_carries_retry_after(requests_mock):
    requests_mock.post(COMPLETIONS_URL, status_code=429, headers={"Retry-After": "7"}, json={"error": {}})
    with pytest.raises(UpstreamError) as raised:
        make_client(upstream_retries=0).chat_completion(PAYLOAD)
    assert (raised.value.kind, raised.value.status, raised.value.retry_after) == ("rate_limited", 429, 7)
    assert requests_mock.call_count == 1


def test_stream_yields_events_in_order_then_done(requests_mock):
    events = ['{"choices":[{"delta":{"content":"a"}}]}', '{"choices":[{"delta":{"content":"b"}}]}', "[DONE]"]
    requests_mock.post(COMPLETIONS_URL, text=sse(*events), headers={"Content-Type": "text/event-stream"})
    stream = make_client().stream_chat_completion(PAYLOAD)
    assert list(stream) == [KEEP_ALIVE, *events]  # the leading comment, for the relay to pass on
    assert requests_mock.last_request.json()["stream"] is True


def test_stream_error_status_raises_before_any_event(requests_mock):
    requests_mock.post(COMPLETIONS_URL, status_code=429, json={"error": {"message": "slow down"}})
    with pytest.raises(UpstreamError) as raised:
        make_client().stream_chat_completion(PAYLOAD)
    assert (raised.value.kind, raised.value.message) == ("rate_limited", "slow down")


def test_stream_read_timeout_midway_is_a_timeout(requests_mock):
    # Padded past one 512-byte read: without chunked encoding urllib3 reads whole blocks.
    padding = b": " + b"x" * 600 + b"\n"
    requests_mock.post(COMPLETIONS_URL, body=StallingBody(b'data: {"n":1}\n\n' + padding))
    stream = make_client().stream_chat_completion(PAYLOAD)
    assert next(stream) == '{"n":1}'
    with pytest.raises(UpstreamError) as raised:
        next(stream)
    assert raised.value.kind == "timeout"


def test_closing_a_stream_early_reports_the_call_once(requests_mock):
    calls = []
    requests_mock.post(COMPLETIONS_URL, text=sse('{"n":1}', '{"n":2}', "[DONE]"))
    stream = make_client(on_call=lambda *call: calls.append(call)).stream_chat_completion(PAYLOAD)
    assert next(stream) is KEEP_ALIVE and next(stream) == '{"n":1}'
    stream.close()
    stream.close()
    assert [(endpoint, status, ok) for endpoint, status, _, ok in calls] == [("/chat/completions", 200, True)]


def test_every_call_reports_to_the_on_call_hook(requests_mock):
    calls = []
    requests_mock.get(MODELS_URL, json={"data": []})
    requests_mock.post(COMPLETIONS_URL, status_code=400, json={"error": {"message": "bad"}})
    client = make_client(on_call=lambda *call: calls.append(call))
    client.list_models()
    with pytest.raises(UpstreamError):
        client.chat_completion(PAYLOAD)
    assert [(endpoint, status, ok) for endpoint, status, _, ok in calls] == [
        ("/models", 200, True),
        ("/chat/completions", 400, False),
    ]
    assert all(latency_ms >= 0 for _, _, latency_ms, _ in calls)


def test_a_failing_on_call_hook_does_not_fail_the_call(requests_mock):
    def broken_hook(*call):
        raise RuntimeError("metrics backend down")

    requests_mock.get(MODELS_URL, json={"data": []})
    assert make_client(on_call=broken_hook).list_models() == []


def test_requests_carry_the_key_and_identify_the_gateway(requests_mock):
    requests_mock.get(MODELS_URL, json={"data": []})
    make_client(referer="https://example.test", title="gw").list_models()
    headers = requests_mock.last_request.headers
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert (headers["HTTP-Referer"], headers["X-Title"]) == ("https://example.test", "gw")


def test_no_authorization_header_without_a_key(requests_mock):
    requests_mock.get(MODELS_URL, json={"data": []})
    OpenRouterClient(BASE_URL, "", backoff_seconds=0).list_models()
    assert "Authorization" not in requests_mock.last_request.headers


def test_an_invalid_base_url_fails_every_call_as_unavailable():
    client = OpenRouterClient("not a url", API_KEY, backoff_seconds=0)
    for _ in range(2):
        with pytest.raises(UpstreamError) as raised:
            client.list_models()
        assert raised.value.kind == "unavailable"


def test_cookies_set_by_upstream_are_sent_back():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CookieSettingUpstream)
    server.cookies_sent = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        client = OpenRouterClient(f"http://127.0.0.1:{server.server_port}/api/v1", API_KEY, backoff_seconds=0)
        client.list_models()
        client.list_models()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert server.cookies_sent == [None, "__cf_bm=abc"]


def test_api_key_never_reaches_the_logs(requests_mock, upstream_log):
    requests_mock.get(MODELS_URL, [{"status_code": 502}, {"json": {"data": []}}])
    requests_mock.post(COMPLETIONS_URL, status_code=401, json={"error": {"message": f"bad key {API_KEY}"}})
    client = make_client()
    client.list_models()
    with pytest.raises(UpstreamError):
        client.chat_completion(PAYLOAD)
    assert len(upstream_log.records) == 2  # one line per call, retries included
    first = upstream_log.records[0]
    assert (first.upstream_status, first.attempts, first.retry_causes) == (200, 2, ["502"])
    for record in upstream_log.records:
        assert API_KEY not in record.getMessage()
        assert API_KEY not in repr(record.__dict__)
