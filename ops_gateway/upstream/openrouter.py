"""HTTP client for OpenRouter's OpenAI-compatible API, with timeouts and bounded retries.

Listing models is idempotent and retried on any transient failure. A chat completion is billed
upstream, so it is retried only when the connection was never made and upstream cannot have
seen it. Every call ends in one log line on ``ops_gateway.openrouter`` and one ``on_call``
notification, whatever its outcome.
"""

import functools
import json
import logging
import time

import requests
from requests.adapters import HTTPAdapter

from ops_gateway.upstream.failures import (
    UpstreamError,
    error_for_exception,
    error_for_response,
    never_reached_upstream,
)

logger = logging.getLogger("ops_gateway.openrouter")

# Failures worth repeating for an idempotent request: the next attempt may well succeed.
_TRANSIENT_EXCEPTIONS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class OpenRouterClient:
    """One pooled session to OpenRouter, shared by every thread of a worker process."""

    def __init__(
        self,
        base_url,
        api_key,
        connect_timeout=3.05,
        read_timeout=60.0,
        max_retries=2,
        backoff_seconds=0.2,
        referer="https://github.com/ops-gateway/ops-gateway",
        title="ops-gateway",
        pool_size=50,
        on_call=None,
    ):
        """Build the pooled session; ``on_call(endpoint, status, latency_ms, ok)`` follows calls."""
        self.base_url = base_url.rstrip("/")
        self.timeouts = (connect_timeout, read_timeout)
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.on_call = on_call
        # max_retries=0 turns off urllib3's own retries: ours are counted, logged and
        # know which requests are safe to repeat.
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self._session = requests.Session()
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update({"HTTP-Referer": referer, "X-Title": title, "Content-Type": "application/json"})
        # Proxy and CA-bundle variables are read once, here: with trust_env, requests re-scans
        # os.environ on every call (a few hundred microseconds of CPU per completion).
        environment = self._session.merge_environment_settings(self.base_url, {}, None, None, None)
        self._session.proxies = environment["proxies"]
        self._session.verify = environment["verify"]
        self._session.trust_env = False
        if api_key:
            self._session.headers["Authorization"] = f"Bearer {api_key}"

    def list_models(self):
        """Return the upstream model catalogue: the ``data`` list of ``GET /models``."""
        call = _Call("GET", "/models")
        try:
            response = self._send(call, idempotent=True)
            models = _json_body(response).get("data")
            if not isinstance(models, list):
                raise UpstreamError("unavailable", "upstream sent a malformed model list", call.status)
        except UpstreamError as error:
            self._finish(call, error)
            raise
        self._finish(call)
        return models

    def chat_completion(self, payload):
        """Return the parsed JSON of a non-streaming ``POST /chat/completions``."""
        call = _Call("POST", "/chat/completions")
        try:
            response = self._send(call, idempotent=False, payload={**payload, "stream": False})
            completion = _json_body(response)
        except UpstreamError as error:
            self._finish(call, error)
            raise
        self._finish(call)
        return completion

    def stream_chat_completion(self, payload):
        """Start a streamed completion and return its ChatCompletionStream.

        Upstream error statuses raise UpstreamError here, before any event is read, so the
        caller can still answer with a proper error status.
        """
        call = _Call("POST", "/chat/completions")
        try:
            response = self._send(call, idempotent=False, payload={**payload, "stream": True}, stream=True)
        except UpstreamError as error:
            self._finish(call, error)
            raise
        return ChatCompletionStream(response, on_end=lambda error: self._finish(call, error))

    def _send(self, call, idempotent, payload=None, stream=False):
        """Send the request, retrying what is safe to retry; return a 2xx response or raise."""
        while True:
            call.attempts += 1
            call.status = None
            may_retry = call.attempts <= self.max_retries
            try:
                response = self._session.send(
                    self._prepare(call, payload), timeout=self.timeouts, stream=stream, proxies=self._session.proxies
                )
            except requests.exceptions.RequestException as exc:
                transient = isinstance(exc, _TRANSIENT_EXCEPTIONS)
                if not (may_retry and (never_reached_upstream(exc) or (idempotent and transient))):
                    raise error_for_exception(exc) from exc
                call.retry_causes.append(type(exc).__name__)
            else:
                call.status = response.status_code
                if 200 <= response.status_code < 300:
                    return response
                if not (may_retry and idempotent and response.status_code >= 500):
                    error = error_for_response(response)
                    response.close()
                    raise error
                response.close()
                call.retry_causes.append(str(response.status_code))
            time.sleep(self.backoff_seconds * 2 ** (call.attempts - 1))

    def _prepare(self, call, payload):
        """Build the request Session.request would: the session's headers and cookies, a JSON body."""
        # Session.request would re-merge the session's settings, hooks and cookies on every call, about
        # 0.14 ms of CPU per completion; Session.send stays the entry point because requests_mock patches it.
        request = requests.PreparedRequest()
        request.method = call.method
        request.url = _normalised_url(self.base_url + call.path)
        request.headers = self._session.headers.copy()
        if payload is not None:
            request.body = _encode_json(payload)
            request.headers["Content-Length"] = str(len(request.body))
        if self._session.cookies:  # only if upstream ever set one
            request.prepare_cookies(self._session.cookies.copy())
        return request

    def _finish(self, call, error=None):
        """Log the call's one line and notify the on_call hook."""
        latency_ms = round((time.perf_counter() - call.started) * 1000, 1)
        ok = error is None
        log = logger.info if ok else logger.warning
        log(
            "upstream %s %s -> %s",
            call.method,
            call.path,
            call.status if ok else error.kind,
            extra={
                "upstream_method": call.method,
                "upstream_path": call.path,
                "upstream_status": call.status,
                "latency_ms": latency_ms,
                "attempts": call.attempts,
                "retry_causes": call.retry_causes,
                "error_kind": None if ok else error.kind,
            },
        )
        if self.on_call is not None:
            try:
                self.on_call(call.path, call.status, latency_ms, ok)
            except Exception:
                # Metrics are a side channel: their failure must never fail a user's request.
                logger.exception("on_call hook failed for %s %s", call.method, call.path)


class ChatCompletionStream:
    """Iterator over the SSE ``data`` payloads of one streamed completion, ``[DONE]`` last."""

    def __init__(self, response, on_end):
        """Wrap an open streaming response; ``on_end(error_or_None)`` runs once at the end."""
        self._response = response
        self._on_end = on_end
        self._ended = False
        self._events = self._read_events()

    def __iter__(self):
        """Return the stream itself: events can be read only once."""
        return self

    def __next__(self):
        """Return the next event payload as soon as upstream has sent it."""
        return next(self._events)

    def close(self):
        """Close the upstream response (safe to call more than once, or after the end)."""
        self._events.close()
        self._end(None)

    def _read_events(self):
        """Yield each event's data lines, joined per the SSE spec; comments are dropped."""
        data_lines = []
        try:
            # Bytes, not decode_unicode: requests would guess latin-1 for text/event-stream.
            for line in self._response.iter_lines():
                if line.startswith(b"data:"):
                    data_lines.append(line[5:].removeprefix(b" ").decode("utf-8", "replace"))
                elif not line and data_lines:
                    event = "\n".join(data_lines)
                    data_lines = []
                    yield event
                    if event == "[DONE]":
                        break
            else:
                if data_lines:  # the stream ended without the blank line closing its last event
                    yield "\n".join(data_lines)
        except requests.exceptions.RequestException as exc:
            error = error_for_exception(exc)
            self._end(error)
            raise error from exc
        self._end(None)

    def _end(self, error):
        """Release the connection and report the outcome, once."""
        if self._ended:
            return
        self._ended = True
        self._response.close()
        self._on_end(error)


class _Call:
    """What one public call did upstream, for its log line and the on_call hook."""

    def __init__(self, method, path):
        self.method = method
        self.path = path
        self.started = time.perf_counter()
        self.attempts = 0
        self.status = None
        self.retry_causes = []


@functools.cache
def _normalised_url(url):
    """The URL as requests would send it (quoted, IDNA host); an invalid one raises on every call."""
    return requests.Request("GET", url).prepare().url


def _encode_json(payload):
    """Compact UTF-8 JSON, refusing NaN and infinities as requests' ``json=`` does."""
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    except ValueError as exc:
        raise requests.exceptions.InvalidJSONError(exc) from exc


def _json_body(response):
    """Return a successful response's JSON object, or raise for a malformed body."""
    try:
        # JSON is UTF-8 (RFC 8259): parsing the bytes skips Response.json()'s charset handling.
        body = json.loads(response.content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise UpstreamError("unavailable", "upstream sent a malformed body", response.status_code)
    return body
