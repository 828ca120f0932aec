"""Chat completions in the fake: the JSON answer, or its SSE stream one chunk a word.

A completion is max_tokens (else max_completion_tokens) words long; with ``"usage": {"include":
true}`` its usage carries ``cost``; streamed, it ends with a stop chunk, the usage chunk when asked
for (``stream_options.include_usage`` or usage accounting) and ``[DONE]``; with ``cut_stream_after``
it stops after that many content chunks (StreamCut).
"""

import json

from devtools.fake_openrouter.replies import (
    JSON_HEADERS,
    NOT_AN_OBJECT,
    SLOT,
    SSE_HEADERS,
    StreamRecord,
    flag,
    json_template,
    output_length,
    positive_int_problem,
    reply_text,
    words,
)

# A non-streamed answer with %-placeholders for what varies: filling it in costs a fraction of
# json.dumps, and all that goes in is JSON-safe as it is (numbers, known model ids, ASCII words).
_COMPLETION_JSON = (
    '{"id": "%s", "created": %d, "model": "%s", "object": "chat.completion", '
    '"choices": [{"index": 0, "message": {"role": "assistant", "content": "%s"}, "finish_reason": "stop"}], '
    '"usage": %s}'
)
_USAGE_JSON = '{"prompt_tokens": %d, "completion_tokens": %d, "total_tokens": %d%s}'


def chat_answer(request, generation, faults, prompt):
    """(status, headers, body) of a chat completion whose generation has begun."""
    asked = request.get("max_tokens") or request.get("max_completion_tokens")
    completion_tokens = output_length(asked, faults["long_answer_tokens"])
    usage_accounting = flag(request, "usage", "include")
    cost_usd = generation.cost(completion_tokens) if usage_accounting else None
    usage = _usage_json(prompt, completion_tokens, cost_usd)
    headers = (("X-Generation-Id", generation.id),)
    created = generation.created // 1_000_000
    if request.get("stream") is not True:
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


def chat_problem(body):
    """Return why a chat completion request is invalid (status, message), or None."""
    if not isinstance(body, dict):
        return NOT_AN_OBJECT
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

    def deltas():
        for index, word in enumerate(words(completion_tokens)):
            if index == 0:
                yield event([{"index": 0, "delta": {"role": "assistant", "content": word}, "finish_reason": None}])
            else:  # leading spaces after the first word make the deltas concatenate to the full reply
                yield f'data: {head}" {word}"{tail}\n\n'

    record = StreamRecord(generation)
    try:
        yield from record.paced(deltas(), delay_ms, cut_after)
        yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if usage is not None:
            yield f'data: {json.dumps({**chunk, "choices": []})[:-1]}, "usage": {usage}}}\n\n'
        yield "data: [DONE]\n\n"
    finally:
        record.close()
