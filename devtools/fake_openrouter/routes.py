"""The fake's routes: the model lists, chat completions (JSON or SSE), embeddings, the Responses API,
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

import json
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
    SLOT,
    SSE_HEADERS,
    StreamCut,
    error_reply,
    flag,
    json_reply,
    json_template,
    output_length,
    parsed_json,
    positive_int_problem,
    reply_text,
    request_prompt_tokens,
    words,
)
from devtools.fake_openrouter.responses import (
    responses_answer,
    responses_input_tokens,
    responses_problem,
)

__all__ = ["DEFAULT_COMPLETION_TOKENS", "MAX_COMPLETION_TOKENS", "MODELS", "FakeOpenRouter", "error_reply"]

# A non-streamed answer with %-placeholders for what varies: filling it in costs a fraction of
# json.dumps, and all that goes in is JSON-safe as it is (numbers, known model ids, ASCII words).
_COMPLETION_JSON = (
    '{"id": "%s", "created": %d, "model": "%s", "object": "chat.completion", '
    '"choices": [{"index": 0, "message": {"role": "assistant", "content": "%s"}, "finish_reason": "stop"}], '
    '"usage": %s}'
)
_USAGE_JSON = '{"prompt_tokens": %d, "completion_tokens": %d, "total_tokens": %d%s}'
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

    def answer(self, method, target, body):
        """Answer one request (target: its path and query); API routes pass the fault switches first,
        control routes never do."""
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
        problem = _chat_problem(request)
        model, model_problem = _answering_model(request, faults, CHAT_MODELS)
        if problem or model_problem:
            return error_reply(*(problem or model_problem))
        prompt = request_prompt_tokens(request)
        streamed = request.get("stream") is True
        generation = self._begin("gen-fake-", "completions", model, faults, streamed, prompt)
        asked = request.get("max_tokens") or request.get("max_completion_tokens")
        completion_tokens = output_length(asked, faults["long_answer_tokens"])
        usage_accounting = flag(request, "usage", "include")
        cost_usd = generation.cost(completion_tokens) if usage_accounting else None
        usage = _usage_json(prompt, completion_tokens, cost_usd)
        headers = (("X-Generation-Id", generation.id),)
        created = generation.created // 1_000_000
        self._served["streams" if streamed else "completions"] += 1
        if not streamed:
            generation.finish(completion_tokens)
            text = reply_text(completion_tokens)
            reply = _COMPLETION_JSON % (generation.id, created, generation.model, text, usage)
            return 200, (*JSON_HEADERS, *headers), reply.encode()
        envelope = {"id": generation.id, "created": created, "model": generation.model}
        with_usage = usage_accounting or flag(request, "stream_options", "include_usage")
        delay_ms, cut_after = faults["chunk_delay_ms"], faults["cut_stream_after"]
        events = _completion_events(
            envelope, generation, completion_tokens, usage if with_usage else None, delay_ms, cut_after
        )
        # Without delays or a cut the whole stream is one write; else each event leaves when it is due.
        body = events if delay_ms or cut_after is not None else "".join(events).encode()
        return 200, (*SSE_HEADERS, *headers), body

    def _embeddings(self, request, faults):
        """Answer an embeddings request."""
        problem = embeddings_problem(request) if isinstance(request, dict) else _NOT_AN_OBJECT
        model, model_problem = _answering_model(request, faults, EMBEDDING_MODELS)
        if problem or model_problem:
            return error_reply(*(problem or model_problem))
        self._served["embeddings"] += 1
        tokens = embeddings_input_tokens(request)
        generation = self._begin("gen-emb-fake-", "embeddings", model, faults, False, tokens)
        return embeddings_answer(request, generation, flag(request, "usage", "include"))

    def _responses(self, request, faults):
        """Answer a Responses API request, streamed as named SSE events when it asks for it."""
        problem = responses_problem(request) if isinstance(request, dict) else _NOT_AN_OBJECT
        model, model_problem = _answering_model(request, faults, CHAT_MODELS)
        if problem or model_problem:
            return error_reply(*(problem or model_problem))
        self._served["responses"] += 1
        streamed = request.get("stream") is True
        generation = self._begin("resp_fake", "completions", model, faults, streamed, responses_input_tokens(request))
        return responses_answer(request, generation, faults, flag(request, "usage", "include"))

    def _messages(self, request, faults):
        """Answer a Messages API request, streamed as named SSE events when it asks for it."""
        problem = messages_problem(request) if isinstance(request, dict) else _NOT_AN_OBJECT
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
        """Return how many requests of each kind this process has served (completions: chat only)."""
        counts = self._served
        completions = counts["completions"] + counts["streams"]
        return json_reply({"pid": os.getpid(), "completions_served": completions, **counts})


_NOT_AN_OBJECT = (400, "request body must be a JSON object")


def _answering_model(request, faults, endpoint_models):
    """(model, None) for the model that answers the request, or (None, (status, message)).

    ``model`` first, then the ``models`` fallbacks, skipping the switched-off ``unavailable_models``;
    the ``served_model`` switch overrides the choice. Every model named must exist and serve this
    endpoint, as OpenRouter checks them before routing.
    """
    if not isinstance(request, dict):
        return None, _NOT_AN_OBJECT
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


def _chat_problem(body):
    """Return why a chat completion request is invalid (status, message), or None."""
    if not isinstance(body, dict):
        return _NOT_AN_OBJECT
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return 400, "messages is required and must be a non-empty list of objects"
    return positive_int_problem(body, "max_tokens", "max_completion_tokens")


def _usage_json(prompt_tokens, completion_tokens, cost_usd):
    """The usage object as JSON text, ``cost`` (when given) written as the Decimal's fixed-point digits.

    json.dumps would pass the cost through a float; written literally, a client parsing the
    number as Decimal reads back exactly the value computed here.
    """
    cost_field = f', "cost": {cost_usd:f}' if cost_usd is not None else ""
    return _USAGE_JSON % (prompt_tokens, completion_tokens, prompt_tokens + completion_tokens, cost_field)


def _completion_events(envelope, generation, completion_tokens, usage, delay_ms, cut_after):
    """Yield the SSE events of a streamed completion: one chunk per word, then stop, usage, [DONE].

    ``usage`` is the usage object's JSON text (see _usage_json), spliced in as it is. After
    cut_after content chunks (when not None) StreamCut ends the events. The generation is recorded
    when they end: finished, or cancelled after the chunks produced (cut, or the client went away).
    """
    chunk = {**envelope, "object": "chat.completion.chunk"}

    def event(choices):
        return f"data: {json.dumps({**chunk, 'choices': choices})}\n\n"

    head, tail = json_template({**chunk, "choices": [{"index": 0, "delta": {"content": SLOT}, "finish_reason": None}]})
    produced, finished = 0, False
    try:
        for index, word in enumerate(words(completion_tokens)):
            if index == cut_after:
                raise StreamCut
            if delay_ms:
                gevent.sleep(delay_ms / 1000)
            produced += 1
            if index == 0:
                yield event([{"index": 0, "delta": {"role": "assistant", "content": word}, "finish_reason": None}])
            else:  # leading spaces after the first word make the deltas concatenate to the full reply
                yield f'data: {head}" {word}"{tail}\n\n'
        if completion_tokens == cut_after:
            raise StreamCut
        finished = True  # every token is out: what follows cannot cancel it
        yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if usage is not None:
            yield f'data: {json.dumps({**chunk, "choices": []})[:-1]}, "usage": {usage}}}\n\n'
        yield "data: [DONE]\n\n"
    finally:
        generation.finish(produced, cancelled=not finished)
