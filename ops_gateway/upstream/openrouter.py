"""HTTP client for OpenRouter's OpenAI-compatible API, with timeouts and bounded retries.

Listing models is idempotent and retried on any transient failure. A POST (chat completion,
embeddings, responses) is billed upstream, so it is retried only when upstream cannot have done
the work: it answered 429, 502 or 503, or the connection was never made. Every wait honours
``Retry-After`` and ends before the call's deadline (its start plus the read timeout), and a
stream is retried only until its status arrives, never once events flow. Every call ends in one
log line on ``ops_gateway.openrouter`` and one ``on_call`` notification, whatever its outcome, and
every retry in one ``on_retry`` notification (``calls.UpstreamCall``).
"""

import functools
import json
import time
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from ops_gateway.core.config import OPENROUTER_DEFAULT_BASE_URL
from ops_gateway.upstream.calls import UpstreamCall
from ops_gateway.upstream.failures import (
    UpstreamError,
    error_for_exception,
    error_for_response,
    never_reached_upstream,
    retry_after_seconds,
)
from ops_gateway.upstream.streams import ChatCompletionStream, EventStream, ResponsesStream


def is_configured(config):
    """Whether the gateway can reach an upstream: a key, or a base URL of its own (the fake, a
    self-hosted OpenRouter-compatible server) that may need none."""
    return bool(config["OPENROUTER_API_KEY"]) or config["OPENROUTER_BASE_URL"] != OPENROUTER_DEFAULT_BASE_URL


# Failures worth repeating for an idempotent request: the next attempt may well succeed.
_TRANSIENT_EXCEPTIONS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
# Statuses at which upstream did no billable work and says, or implies, "try again".
RETRYABLE_POST_STATUSES = frozenset({429, 502, 503})


class OpenRouterClient:
    """One pooled session to OpenRouter, shared by every thread of a worker process."""

    def __init__(
        self,
        base_url,
        api_key,
        connect_timeout=3.05,
        read_timeout=60.0,
        max_retries=2,
        upstream_retries=1,
        backoff_seconds=0.25,
        referer="https://github.com/ops-gateway/ops-gateway",
        title="ops-gateway",
        pool_size=50,
        on_call=None,
        on_retry=None,
    ):
        """Build the pooled session.

        ``max_retries`` bounds the retries of the model list, ``upstream_retries`` those of every
        POST. ``on_call(endpoint, status, latency_ms, ok)`` follows calls and
        ``on_retry(endpoint, outcome)`` retries: outcome succeeded, failed or skipped_deadline.
        """
        self.base_url = base_url.rstrip("/")
        self.timeouts = (connect_timeout, read_timeout)
        self.max_retries = max_retries
        self.upstream_retries = upstream_retries
        self.backoff_seconds = backoff_seconds
        self.on_call = on_call
        self.on_retry = on_retry
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
        """Return the ``data`` list of ``GET /models``: every model but the embedding models."""
        return self._model_list("/models")

    def list_embedding_models(self):
        """Return the ``data`` list of ``GET /embeddings/models``: the embedding models, which
        OpenRouter lists only there (entries of the same shape as ``list_models``)."""
        return self._model_list("/embeddings/models")

    def _model_list(self, path):
        """GET one of upstream's model lists (path under the base URL) and return its ``data``."""
        return self._get_data(UpstreamCall("GET", path), list, "model list")

    def generation(self, generation_id):
        """Return the ``data`` of ``GET /generation?id=``: what upstream billed for one generation
        (``total_cost``, native token counts), or None while it is not there yet (404: OpenRouter
        posts it a moment after the request ends)."""
        call = UpstreamCall("GET", "/generation", query=f"?id={quote(generation_id, safe='')}")
        try:
            return self._get_data(call, dict, "generation")
        except UpstreamError as error:
            if error.status == 404:
                return None
            raise

    def _get_data(self, call, kind, what):
        """Send the GET ``call`` (retried as idempotent) and return its body's ``data``, which must
        be a ``kind``; the call is finished (logged, counted) whatever happens."""
        try:
            data = _json_body(self._send(call)).get("data")
            if not isinstance(data, kind):
                raise UpstreamError("unavailable", f"upstream sent a malformed {what}", call.status)
        except UpstreamError as error:
            call.finish(self.on_call, error)
            raise
        call.finish(self.on_call)
        return data

    def chat_completion(self, payload, headers=None):
        """Return the parsed JSON of a non-streaming ``POST /chat/completions``."""
        return self.post("/chat/completions", {**payload, "stream": False}, headers)

    def stream_chat_completion(self, payload, headers=None):
        """Start a streamed ``POST /chat/completions``; its ChatCompletionStream yields data payloads."""
        return self.post_stream("/chat/completions", payload, ChatCompletionStream, headers)

    def embeddings(self, payload, headers=None):
        """Return the parsed JSON of ``POST /embeddings``."""
        return self.post("/embeddings", payload, headers)

    def responses(self, payload, headers=None):
        """Return the parsed JSON of a non-streaming ``POST /responses`` (the Responses API)."""
        return self.post("/responses", {**payload, "stream": False}, headers)

    def stream_responses(self, payload, headers=None):
        """Start a streamed ``POST /responses``; its ResponsesStream yields (event name, data) pairs."""
        return self.post_stream("/responses", payload, ResponsesStream, headers)

    def messages(self, payload, headers=None):
        """Return the parsed JSON of a non-streaming ``POST /messages`` (the Anthropic Messages
        API). Every POST takes ``headers`` to pass on besides the session's (the Messages API's
        ``anthropic-version``/``anthropic-beta``)."""
        return self.post("/messages", {**payload, "stream": False}, headers)

    def stream_messages(self, payload, headers=None):
        """Start a streamed ``POST /messages``; its EventStream yields (event name, data) pairs."""
        return self.post_stream("/messages", payload, EventStream, headers)

    def post(self, path, payload, headers=None):
        """POST payload as JSON to path (under the base URL), with retries; return the JSON answer."""
        call = UpstreamCall("POST", path, headers=headers)
        try:
            body = _json_body(self._send(call, payload=payload))
        except UpstreamError as error:
            call.finish(self.on_call, error)
            raise
        call.finish(self.on_call)
        return body

    def post_stream(self, path, payload, stream_class, headers=None):
        """POST payload with ``"stream": true`` and return ``stream_class`` over the open response.

        Upstream error statuses raise UpstreamError here, before any event is read, so the
        caller can still answer with a proper error status; only this phase is ever retried.
        """
        call = UpstreamCall("POST", path, headers=headers)
        try:
            response = self._send(call, payload={**payload, "stream": True}, stream=True)
        except UpstreamError as error:
            call.finish(self.on_call, error)
            raise
        return stream_class(response, on_end=lambda error: call.finish(self.on_call, error))

    def _send(self, call, payload=None, stream=False):
        """Send the request, retrying what is safe to retry; return a 2xx response or raise."""
        idempotent = call.method == "GET"
        budget = self.max_retries if idempotent else self.upstream_retries
        while True:
            call.attempts += 1
            call.status = None
            retry_after = None
            try:
                response = self._session.send(
                    self._prepare(call, payload), timeout=self.timeouts, stream=stream, proxies=self._session.proxies
                )
            except requests.exceptions.RequestException as exc:
                retryable = never_reached_upstream(exc) or (idempotent and isinstance(exc, _TRANSIENT_EXCEPTIONS))
                error, cause, failure = error_for_exception(exc), exc, type(exc).__name__
            else:
                call.status = response.status_code
                if 200 <= response.status_code < 300:
                    call.retried("succeeded", self.on_retry)
                    return response
                status = response.status_code
                retryable = status in RETRYABLE_POST_STATUSES or (idempotent and status >= 500)
                if retryable:
                    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                error, cause, failure = error_for_response(response), None, str(status)
                response.close()
            call.retried("failed", self.on_retry)
            if not retryable or call.attempts > budget:
                raise error from cause
            delay = retry_after if retry_after is not None else self.backoff_seconds * 2 ** (call.attempts - 1)
            if time.perf_counter() + delay >= call.started + self.timeouts[1]:
                call.notify_retry("skipped_deadline", self.on_retry)
                raise error from cause
            call.retry_causes.append(failure)
            time.sleep(delay)

    def _prepare(self, call, payload):
        """Build the request Session.request would: the session's headers and cookies, a JSON body."""
        # Session.request would re-merge the session's settings, hooks and cookies on every call, about
        # 0.14 ms of CPU per completion; Session.send stays the entry point because requests_mock patches it.
        request = requests.PreparedRequest()
        request.method = call.method
        request.url = _normalised_url(self.base_url + call.path) + call.query
        request.headers = self._session.headers.copy()
        if call.headers:
            request.headers.update(call.headers)
        if payload is not None:
            request.body = _encode_json(payload)
            request.headers["Content-Length"] = str(len(request.body))
        if self._session.cookies:  # only if upstream ever set one
            request.prepare_cookies(self._session.cookies.copy())
        return request


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
