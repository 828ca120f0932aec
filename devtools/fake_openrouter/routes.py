"""The fake's routes: the model lists, chat completions (JSON or SSE, ``chat``), embeddings, the Responses API,
the Messages API, generation records and the control endpoints.

``GET /models`` lists the chat models and ``GET /embeddings/models`` the embedding models, apart, as
OpenRouter lists them (``catalogue``).

Answers are deterministic (same request, same usage and text) and cheap to produce: a completion
is max_tokens (else max_completion_tokens) words long (one stream chunk each),
DEFAULT_COMPLETION_TOKENS when the request gives neither (``long_answer_tokens`` when that switch
is set), never more than MAX_COMPLETION_TOKENS when it gives a limit. The prompt is one token per
PROMPT_BYTES_PER_TOKEN bytes of everything in the body a real upstream bills as prompt. With
``"usage": {"include": true}`` the usage also carries ``cost``, in USD at the catalogue's prices
times ``cost_multiplier``, as OpenRouter's usage accounting does.

The answering model is the first of ``model`` and then the ``models`` fallback list that is not
switched ``unavailable_models``, or the ``served_model`` switch: the reply's ``model`` names it and
its prices make the cost, as with OpenRouter's fallbacks. ``openrouter/auto`` is answered by the
``auto_routes_to`` switch's model, named in the reply and billed at its price. ``provider``
preferences are accepted and ignored.

Chat ids are ``gen-...`` (every chunk of a stream carries the same one), Responses ids ``resp_...``,
Messages ids ``msg_...``, embeddings ids ``gen-emb-...``; each reply also names its id in
``X-Generation-Id``, as OpenRouter does, and ``GET /api/v1/generation?id=`` answers for it
(``generations``). With ``cut_stream_after`` a stream stops after that many content chunks
(StreamCut: the server drops the connection), with no finish chunk, usage or ``[DONE]``. The
Messages API answers every error, the fault switches' included, in Anthropic's shape
(``messages``), as OpenRouter's ``/messages`` does.
"""

import os

import gevent

from devtools.fake_openrouter.catalogue import (
    CHAT_MODELS,
    EMBEDDING_MODELS,
    EMBEDDING_MODELS_BODY,
    MODEL_IDS,
    MODELS,
    MODELS_BODY,
    ROUTERS,
)
from devtools.fake_openrouter.chat import chat_answer, chat_problem
from devtools.fake_openrouter.embeddings import (
    embeddings_answer,
    embeddings_input_tokens,
    embeddings_problem,
)
from devtools.fake_openrouter.faults import FaultSwitches
from devtools.fake_openrouter.generations import GenerationLog, generation_reply, generations_directory
from devtools.fake_openrouter.messages import (
    anthropic_error_reply,
    messages_answer,
    messages_input_tokens,
    messages_problem,
)
from devtools.fake_openrouter.replies import (
    DEFAULT_COMPLETION_TOKENS,
    JSON_HEADERS,
    MAX_COMPLETION_TOKENS,
    NOT_AN_OBJECT,
    error_reply,
    flag,
    json_reply,
    parsed_json,
    request_prompt_tokens,
)
from devtools.fake_openrouter.responses import (
    responses_answer,
    responses_input_tokens,
    responses_problem,
)

__all__ = ["DEFAULT_COMPLETION_TOKENS", "MAX_COMPLETION_TOKENS", "MODELS", "FakeOpenRouter", "error_reply"]

_GENERATION_ROUTES = ("/api/v1/chat/completions", "/api/v1/embeddings", "/api/v1/responses", "/api/v1/messages")
_NO_ROUTE = (None, error_reply)  # not a generation route: refused in OpenRouter's own error shape
_MODEL_LISTS = {"/api/v1/models": MODELS_BODY, "/api/v1/embeddings/models": EMBEDDING_MODELS_BODY}


class FakeOpenRouter:
    """The routes: a request's method, path and body in; (status, headers, body) out.

    The body is bytes, or an iterator of str when a stream must go out event by event.
    """

    def __init__(self, state_file):
        """Serve with the fault switches kept in state_file, generation records beside it."""
        self.faults = FaultSwitches(state_file)
        self.generations = GenerationLog(generations_directory(state_file))
        self._served = {"completions": 0, "streams": 0, "embeddings": 0, "responses": 0, "messages": 0}
        self._last_traceparent = None  # what the last generation request carried (the gateway's trace)
        self._control_routes = {
            ("GET", "/_control"): lambda body: json_reply(self.faults.current()),
            ("POST", "/_control"): self._change_faults,
            ("POST", "/_control/reset"): lambda body: json_reply(self.faults.reset()),
            ("GET", "/_stats"): self._stats,
        }
        # Each generation route: how it answers, and how it refuses (the Messages API in Anthropic's shape).
        handlers = (self._chat_completion, self._embeddings, self._responses, self._messages)
        refusals = (error_reply, error_reply, error_reply, anthropic_error_reply)
        self._generation_routes = dict(zip(_GENERATION_ROUTES, zip(handlers, refusals, strict=True), strict=True))

    def answer(self, method, target, body, headers=None):
        """Answer one request (target: its path and query; headers: lower-case names); API routes
        pass the fault switches first, control routes never do."""
        path, _, query = target.partition("?")
        control = self._control_routes.get((method, path))
        if control:
            return control(body)
        faults = self.faults.current()
        if faults["latency_ms"]:
            gevent.sleep(faults["latency_ms"] / 1000)
        route, refuse = self._generation_routes.get(path, _NO_ROUTE) if method == "POST" else _NO_ROUTE
        if faults["outage"]:
            return refuse(503, "fake upstream outage")
        if route:
            self._last_traceparent = (headers or {}).get("traceparent")
            return self._forced_failure(faults, refuse) or route(parsed_json(body), faults)
        if method == "GET" and path in _MODEL_LISTS:
            return 200, JSON_HEADERS, _MODEL_LISTS[path]
        if (method, path) == ("GET", "/api/v1/generation"):
            return generation_reply(self.generations, query, faults["generation_delay_ms"])
        return error_reply(404, f"no route for {method} {path}")

    def _forced_failure(self, faults, refuse):
        """The error reply (made by refuse) the status or fail_next switch forces on a generation
        request, or None."""
        status, retry_after = faults["status"], None
        if status:
            retry_after = 1 if status == 429 else None
        elif faults["fail_next"]:
            status, retry_after = self.faults.take_forced_failure() or (None, None)
        if not status:
            return None
        headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
        return refuse(status, f"fake upstream forced status {status}", headers)

    def _chat_completion(self, request, faults):
        """Answer a chat completion, streamed as SSE when the request asks for it."""
        problem = chat_problem(request)
        model, model_problem = _answering_model(request, faults, CHAT_MODELS)
        if problem or model_problem:
            return error_reply(*(problem or model_problem))
        prompt = request_prompt_tokens(request)
        streamed = request.get("stream") is True
        generation = self._begin("gen-fake-", "completions", model, faults, streamed, prompt)
        self._served["streams" if streamed else "completions"] += 1
        return chat_answer(request, generation, faults, prompt)

    def _embeddings(self, request, faults):
        """Answer an embeddings request."""
        problem = embeddings_problem(request) if isinstance(request, dict) else NOT_AN_OBJECT
        model, model_problem = _answering_model(request, faults, EMBEDDING_MODELS)
        if problem or model_problem:
            return error_reply(*(problem or model_problem))
        self._served["embeddings"] += 1
        tokens = embeddings_input_tokens(request)
        generation = self._begin("gen-emb-fake-", "embeddings", model, faults, False, tokens)
        return embeddings_answer(request, generation, flag(request, "usage", "include"))

    def _responses(self, request, faults):
        """Answer a Responses API request, streamed as named SSE events when it asks for it."""
        problem = responses_problem(request) if isinstance(request, dict) else NOT_AN_OBJECT
        model, model_problem = _answering_model(request, faults, CHAT_MODELS)
        if problem or model_problem:
            return error_reply(*(problem or model_problem))
        self._served["responses"] += 1
        streamed = request.get("stream") is True
        generation = self._begin("resp_fake", "completions", model, faults, streamed, responses_input_tokens(request))
        return responses_answer(request, generation, faults, flag(request, "usage", "include"))

    def _messages(self, request, faults):
        """Answer a Messages API request, streamed as named SSE events when it asks for it."""
        problem = messages_problem(request) if isinstance(request, dict) else NOT_AN_OBJECT
        model, model_problem = _answering_model(request, faults, CHAT_MODELS)
        if problem or model_problem:
            return anthropic_error_reply(*(problem or model_problem))
        self._served["messages"] += 1
        streamed = request.get("stream") is True
        generation = self._begin("msg_fake", "completions", model, faults, streamed, messages_input_tokens(request))
        return messages_answer(request, generation, faults)

    def _begin(self, prefix, api_type, model, faults, streamed, prompt):
        """Start recording a generation of model: a router is answered by the model it routes to."""
        router = model if model in ROUTERS else None
        answering = faults["auto_routes_to"] if router else model
        multiplier = faults["cost_multiplier"]
        return self.generations.begin(prefix, api_type, answering, router, streamed, prompt, multiplier)

    def _change_faults(self, body):
        """Merge the JSON body into the fault switches."""
        try:
            return json_reply(self.faults.update(parsed_json(body)))
        except ValueError as problem:
            return error_reply(400, str(problem))

    def _stats(self, body):
        """Return how many requests of each kind this process has served (completions: chat only)
        and the ``traceparent`` its last generation request carried (OpenRouter ignores it; the
        tests check the gateway passes its trace on)."""
        counts = self._served
        completions = counts["completions"] + counts["streams"]
        stats = {"pid": os.getpid(), "completions_served": completions, **counts}
        return json_reply({**stats, "last_traceparent": self._last_traceparent})


def _answering_model(request, faults, endpoint_models):
    """(model, None) for the model that answers the request, or (None, (status, message)).

    ``model`` first, then the ``models`` fallbacks, skipping the switched-off ``unavailable_models``;
    the ``served_model`` switch overrides the choice. Every model named must exist and serve this
    endpoint, as OpenRouter checks them before routing.
    """
    if not isinstance(request, dict):
        return None, NOT_AN_OBJECT
    model = request.get("model")
    fallbacks = request.get("models", [])
    if not (fallbacks or faults["served_model"] or faults["unavailable_models"]):
        if isinstance(model, str) and model in endpoint_models:
            return model, None  # the common case, answered without building the candidate list
    if not isinstance(fallbacks, list) or not all(isinstance(model, str) for model in fallbacks):
        return None, (400, "models must be a list of model ids")
    named = [model] if isinstance(model, str) else []
    candidates = list(dict.fromkeys(named + fallbacks))
    if not candidates:
        return None, (400, "model is required")
    for model in candidates:
        if model not in MODEL_IDS:
            return None, (404, f"Model {model} not found")
        if model not in endpoint_models:
            return None, (400, f"Model {model} does not serve this endpoint")
    if faults["served_model"]:
        return faults["served_model"], None
    unavailable = faults["unavailable_models"]
    available = next((model for model in candidates if model not in unavailable), None)
    if available is None:
        return None, (503, f"No available model among {', '.join(candidates)}")
    return available, None
