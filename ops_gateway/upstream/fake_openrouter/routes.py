"""The fake's routes: the model list, chat completions (JSON or SSE) and the control endpoints.

Answers are deterministic (same request, same usage and text) and cheap to produce: a completion
is max_tokens (else max_completion_tokens) words long (one stream chunk each),
DEFAULT_COMPLETION_TOKENS when the request gives neither, never more than MAX_COMPLETION_TOKENS.
The prompt is one token per PROMPT_BYTES_PER_TOKEN bytes of everything in the body a real
upstream bills as prompt. With ``"usage": {"include": true}`` the usage also carries ``cost``, in
USD at the catalogue's prices, as OpenRouter's usage accounting does.
"""

import itertools
import json
import os
import time
from decimal import Decimal

import gevent

from ops_gateway.upstream.fake_openrouter.faults import FaultSwitches, is_count

DEFAULT_COMPLETION_TOKENS = 16
MAX_COMPLETION_TOKENS = 256
PROMPT_BYTES_PER_TOKEN = 4
# Request options that steer generation rather than give it text: not billed as prompt. A field
# not named here (messages, tools, response_format, one the fake has never heard of) counts.
_NOT_PROMPT_FIELDS = frozenset(
    {
        *("model", "models", "provider", "route", "transforms", "user"),
        *("stream", "stream_options", "usage", "max_tokens", "max_completion_tokens", "stop", "n", "seed"),
        *("temperature", "top_p", "top_k", "min_p", "top_a", "logit_bias", "logprobs", "top_logprobs"),
        *("frequency_penalty", "presence_penalty", "repetition_penalty", "parallel_tool_calls", "reasoning"),
    }
)
JSON_HEADERS = (("Content-Type", "application/json"),)
SSE_HEADERS = (("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"))

MODELS = [
    {
        "id": model_id,
        "name": name,
        "context_length": context_length,
        "pricing": {"prompt": prompt, "completion": completion},
    }
    for model_id, name, context_length, prompt, completion in [
        ("openai/gpt-4o-mini", "OpenAI: GPT-4o-mini", 128000, "0.00000015", "0.0000006"),
        ("anthropic/claude-3.5-sonnet", "Anthropic: Claude 3.5 Sonnet", 200000, "0.000003", "0.000015"),
        ("meta-llama/llama-3.1-8b-instruct", "Meta: Llama 3.1 8B Instruct", 131072, "0.00000002", "0.00000005"),
        ("google/gemini-flash-1.5", "Google: Gemini Flash 1.5", 1000000, "0.000000075", "0.0000003"),
        ("mistralai/mistral-7b-instruct", "Mistral: Mistral 7B Instruct", 32768, "0.00000003", "0.000000055"),
        ("test/free-model", "Test: Free Model", 8192, "0", "0"),
    ]
]
# Per-token prices as Decimal from the catalogue's own strings, so that the reported cost is exactly
# what a client computes from the catalogue.
_PRICES = {
    model["id"]: (Decimal(model["pricing"]["prompt"]), Decimal(model["pricing"]["completion"])) for model in MODELS
}
_MODEL_IDS = frozenset(_PRICES)
_MODELS_BODY = json.dumps({"data": MODELS}).encode()
_WORDS = [f"word{i}" for i in range(MAX_COMPLETION_TOKENS)]
_REPLIES = [" ".join(_WORDS[:count]) for count in range(MAX_COMPLETION_TOKENS + 1)]
# A non-streamed answer with %-placeholders for what varies: filling it in costs a fraction of
# json.dumps, and all that goes in is JSON-safe as it is (numbers, known model ids, ASCII words).
_COMPLETION_JSON = (
    '{"id": "%s", "created": %d, "model": "%s", "object": "chat.completion", '
    '"choices": [{"index": 0, "message": {"role": "assistant", "content": "%s"}, "finish_reason": "stop"}], '
    '"usage": %s}'
)
_USAGE_JSON = '{"prompt_tokens": %d, "completion_tokens": %d, "total_tokens": %d%s}'


class FakeOpenRouter:
    """The routes: a request's method, path and body in; (status, headers, body) out.

    The body is bytes, or an iterator of str when a stream must go out event by event.
    """

    def __init__(self, state_file):
        """Serve with the fault switches kept in state_file."""
        self.faults = FaultSwitches(state_file)
        self._generation_ids = itertools.count(1)
        self._served = {"completions": 0, "streams": 0}
        self._control_routes = {
            ("GET", "/_control"): lambda body: json_reply(self.faults.current()),
            ("POST", "/_control"): self._change_faults,
            ("POST", "/_control/reset"): lambda body: json_reply(self.faults.reset()),
            ("GET", "/_stats"): self._stats,
        }

    def answer(self, method, path, body):
        """Answer one request; API routes pass the fault switches first, control routes never do."""
        control = self._control_routes.get((method, path))
        if control:
            return control(body)
        faults = self.faults.current()
        if faults["latency_ms"]:
            gevent.sleep(faults["latency_ms"] / 1000)
        if faults["outage"]:
            return error_reply(503, "fake upstream outage")
        if (method, path) == ("POST", "/api/v1/chat/completions"):
            return self._chat_completion(body, faults)
        if (method, path) == ("GET", "/api/v1/models"):
            return 200, JSON_HEADERS, _MODELS_BODY
        return error_reply(404, f"no route for {method} {path}")

    def _chat_completion(self, body, faults):
        """Answer a chat completion, streamed as SSE when the request asks for it."""
        if faults["status"]:
            retry_after = (("Retry-After", "1"),) if faults["status"] == 429 else ()
            return error_reply(faults["status"], f"fake upstream forced status {faults['status']}", retry_after)
        request = _parsed_json(body)
        problem = _completion_problem(request)
        if problem:
            return error_reply(*problem)
        prompt_tokens = _prompt_tokens(request)
        asked = request.get("max_tokens") or request.get("max_completion_tokens")
        completion_tokens = min(asked or DEFAULT_COMPLETION_TOKENS, MAX_COMPLETION_TOKENS)
        usage_accounting = _flag(request, "usage", "include")
        cost = _cost(request["model"], prompt_tokens, completion_tokens) if usage_accounting else None
        usage = _usage_json(prompt_tokens, completion_tokens, cost)
        generation_id = f"gen-fake-{os.getpid()}-{next(self._generation_ids)}"
        created = int(time.time())
        streamed = request.get("stream") is True
        self._served["streams" if streamed else "completions"] += 1
        if not streamed:
            reply = _COMPLETION_JSON % (generation_id, created, request["model"], _REPLIES[completion_tokens], usage)
            return 200, JSON_HEADERS, reply.encode()
        envelope = {"id": generation_id, "created": created, "model": request["model"]}
        with_usage = usage_accounting or _flag(request, "stream_options", "include_usage")
        delay_ms = faults["chunk_delay_ms"]
        events = _completion_events(envelope, _WORDS[:completion_tokens], usage if with_usage else None, delay_ms)
        # Without delays the whole stream is one write; with them each event leaves when it is due.
        return 200, SSE_HEADERS, events if delay_ms else "".join(events).encode()

    def _change_faults(self, body):
        """Merge the JSON body into the fault switches."""
        try:
            return json_reply(self.faults.update(_parsed_json(body)))
        except ValueError as problem:
            return error_reply(400, str(problem))

    def _stats(self, body):
        """Return how many completions this process has served."""
        counts = self._served
        return json_reply({"pid": os.getpid(), "completions_served": sum(counts.values()), **counts})


def json_reply(data, status=200, headers=()):
    """A JSON reply."""
    return status, (*JSON_HEADERS, *headers), json.dumps(data).encode()


def error_reply(status, message, headers=()):
    """An OpenAI/OpenRouter-style error reply."""
    return json_reply({"error": {"message": message, "code": status}}, status, headers)


def _parsed_json(body):
    """The body's JSON, or None when it is not JSON."""
    try:
        return json.loads(body)
    except ValueError:
        return None


def _flag(request, field, switch):
    """Whether request[field] is an object with switch set to true."""
    options = request.get(field)
    return isinstance(options, dict) and options.get(switch) is True


def _prompt_tokens(request):
    """One token per PROMPT_BYTES_PER_TOKEN bytes of the body's prompt fields, serialised compactly.

    Re-serialising (rather than measuring the body as received) keeps the count independent of the
    sender's whitespace, and of option fields such as ``usage`` that the gateway adds.
    """
    prompt = {field: value for field, value in request.items() if field not in _NOT_PROMPT_FIELDS}
    serialised = json.dumps(prompt, ensure_ascii=False, separators=(",", ":"))
    return len(serialised.encode()) // PROMPT_BYTES_PER_TOKEN


def _cost(model_id, prompt_tokens, completion_tokens):
    """The tokens' price in USD, exact: Decimal arithmetic on the catalogue's price strings."""
    prompt_price, completion_price = _PRICES[model_id]
    return prompt_tokens * prompt_price + completion_tokens * completion_price


def _usage_json(prompt_tokens, completion_tokens, cost):
    """The usage object as JSON text, ``cost`` (when given) written as the Decimal's fixed-point digits.

    json.dumps would pass the cost through a float; written literally, a client parsing the
    number as Decimal reads back exactly the value computed here.
    """
    cost_field = f', "cost": {cost:f}' if cost is not None else ""
    return _USAGE_JSON % (prompt_tokens, completion_tokens, prompt_tokens + completion_tokens, cost_field)


def _completion_problem(body):
    """Return why a completion request is invalid, or None."""
    if not isinstance(body, dict):
        return 400, "request body must be a JSON object"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return 400, "messages is required and must be a non-empty list of objects"
    for field in ("max_tokens", "max_completion_tokens"):
        limit = body.get(field)
        if limit is not None and not (is_count(limit) and limit > 0):
            return 400, f"{field} must be a positive integer"
    if not isinstance(body.get("model"), str):
        return 400, "model is required"
    if body["model"] not in _MODEL_IDS:
        return 404, f"Model {body['model']} not found"
    return None


def _completion_events(envelope, words, usage, chunk_delay_ms):
    """Yield the SSE events of a streamed completion: one chunk per word, then stop, usage, [DONE].

    ``usage`` is the usage object's JSON text (see _usage_json), spliced in as it is.
    """
    chunk = {**envelope, "object": "chat.completion.chunk"}

    def event(choices):
        return f"data: {json.dumps({**chunk, 'choices': choices})}\n\n"

    for index, word in enumerate(words):
        if chunk_delay_ms:
            gevent.sleep(chunk_delay_ms / 1000)
        # Leading spaces after the first word make the deltas concatenate to the full reply.
        delta = {"role": "assistant", "content": word} if index == 0 else {"content": f" {word}"}
        yield event([{"index": 0, "delta": delta, "finish_reason": None}])
    yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    if usage is not None:
        yield f'data: {json.dumps({**chunk, "choices": []})[:-1]}, "usage": {usage}}}\n\n'
    yield "data: [DONE]\n\n"
