"""``POST /api/v1/messages`` of the fake: the Anthropic Messages API as OpenRouter serves it, as one
message or as named SSE events, and its errors in Anthropic's shape.

The answer is a ``text`` block of max_tokens words (DEFAULT_COMPLETION_TOKENS when not asked, or
``long_answer_tokens``; OpenRouter, unlike Anthropic, does not require max_tokens), stop_reason
``max_tokens`` when the words reached max_tokens, else ``end_turn``. A request with ``tools`` whose
``tool_choice`` is ``{"type": "any"}`` or ``{"type": "tool", "name": ...}``, or whose last user
message says "use tool" (``tool_choice`` auto or absent), is answered with one ``tool_use`` block
instead: that named tool (else the first), ``input`` ``{}``, stop_reason ``tool_use``, billed as a
quarter of the bytes of its name and input. The prompt is counted as for chat (every field but the
options, ``replies.NOT_PROMPT_FIELDS``): system, messages, tools and tool_choice.

``usage`` always carries ``cost`` (USD at the catalogue's prices times ``cost_multiplier``), as
OpenRouter's usage accounting does on every response; a stream sends it, with every token count, in
``message_delta``. A stream is message_start, content_block_start, ping, one content_block_delta per
word (``text_delta``; a tool call: one ``input_json_delta``), content_block_stop, message_delta,
message_stop. With ``cut_stream_after`` it stops after that many deltas (StreamCut), with no
message_delta. The message id (``msg_...``) is the generation's, named in ``X-Generation-Id`` too.
"""

import json

from devtools.fake_openrouter.catalogue import dumps_with_cost, usage_with_cost
from devtools.fake_openrouter.replies import (
    JSON_HEADERS,
    SLOT,
    SSE_HEADERS,
    StreamRecord,
    json_reply,
    json_template,
    output_length,
    positive_int_problem,
    prompt_tokens,
    reply_text,
    request_prompt_tokens,
    words,
)

# Anthropic's error type for each status, as OpenRouter's /messages answers them; others: api_error.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_TOOL_CHOICES = ("auto", "any", "tool", "none")
_ASKS_FOR_A_TOOL = "use tool"


def anthropic_error_reply(status, message, headers=()):
    """An error reply in Anthropic's shape, ``{"type": "error", "error": {"type", "message"}}``."""
    error = {"type": _ERROR_TYPES.get(status, "api_error"), "message": message}
    return json_reply({"type": "error", "error": error, "request_id": None}, status, headers)


def messages_problem(request):
    """Why a Messages API request is invalid (status, message), or None."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return 400, "messages: a non-empty list of messages is required"
    if not all(isinstance(m, dict) and m.get("role") in ("user", "assistant") for m in messages):
        return 400, "messages: each message must be an object whose role is user or assistant"
    if not isinstance(request.get("system", ""), (str, list)):
        return 400, "system must be a string or a list of text blocks"
    tools = request.get("tools", [])
    if not isinstance(tools, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools):
        return 400, "tools must be a list of tools, each with a name"
    choice = request.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in _TOOL_CHOICES:
            return 400, f"tool_choice.type must be one of {', '.join(_TOOL_CHOICES)}"
        if choice["type"] == "tool" and choice.get("name") not in {tool["name"] for tool in tools}:
            return 400, "tool_choice names a tool that is not in tools"
    return positive_int_problem(request, "max_tokens")


def messages_input_tokens(request):
    """The input tokens of a valid request, at least one."""
    return max(request_prompt_tokens(request), 1)


def messages_answer(request, generation, faults):
    """The 200 reply to a valid request for generation: a message, or its SSE events."""
    asked = request.get("max_tokens")
    tool = _called_tool(request)
    if tool is None:
        output_tokens = output_length(asked, faults["long_answer_tokens"])
        block = {"type": "text", "text": reply_text(output_tokens)}
        stop_reason = "max_tokens" if output_tokens == asked else "end_turn"
    else:
        call = {"name": tool, "input": {}}
        output_tokens = max(prompt_tokens(call), 1)
        output_tokens = min(output_tokens, asked) if asked else output_tokens
        block = {"type": "tool_use", "id": f"toolu_{generation.id.removeprefix('msg_')}", **call}
        stop_reason = "tool_use"
    cost_usd = generation.cost(output_tokens)
    usage = {
        "input_tokens": generation.prompt_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    message = {
        "id": generation.id,
        "type": "message",
        "role": "assistant",
        "model": generation.model,
        "content": [block],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage_with_cost(usage, cost_usd),
    }
    generation_header = ("X-Generation-Id", generation.id)
    if not generation.streamed:
        generation.finish(output_tokens)
        return 200, (*JSON_HEADERS, generation_header), dumps_with_cost(message, cost_usd).encode()
    delay_ms, cut_after = faults["chunk_delay_ms"], faults["cut_stream_after"]
    events = _stream_events(message, generation, output_tokens, cost_usd, delay_ms, cut_after)
    # Without delays or a cut the whole stream is one write; else each event leaves when it is due.
    body = events if delay_ms or cut_after is not None else "".join(events).encode()
    return 200, (*SSE_HEADERS, generation_header), body


def _called_tool(request):
    """The name of the tool the answer calls, or None for a text answer (see the module's rule)."""
    tools = request.get("tools") or []
    choice = request.get("tool_choice") or {"type": "auto"}
    if not tools or choice["type"] == "none":
        return None
    if choice["type"] == "tool":
        return choice["name"]
    if choice["type"] == "any" or _ASKS_FOR_A_TOOL in _last_user_text(request["messages"]).lower():
        return tools[0]["name"]
    return None


def _last_user_text(messages):
    """The text of the last user message: its string content, or its text blocks joined."""
    last = next((message for message in reversed(messages) if message["role"] == "user"), {})
    content = last.get("content", "")
    if isinstance(content, str):
        return content
    blocks = content if isinstance(content, list) else []
    return " ".join(b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str))


def _stream_events(message, generation, output_tokens, cost_usd, delay_ms, cut_after):
    """Yield the SSE events of a streamed message, each ``event: <type>`` then its ``data:``.

    The generation is recorded when the events end: finished, or cancelled after the deltas
    produced when cut_after of them were sent or the client went away.
    """

    def event(kind, with_cost=False, **fields):
        data = {"type": kind, **fields}
        return f"event: {kind}\ndata: {dumps_with_cost(data, cost_usd) if with_cost else json.dumps(data)}\n\n"

    block = message["content"][0]
    record = StreamRecord(generation)
    try:
        usage = {**message["usage"], "output_tokens": 0}
        usage.pop("cost", None)
        yield event("message_start", message={**message, "content": [], "stop_reason": None, "usage": usage})
        if block["type"] == "text":
            yield event("content_block_start", index=0, content_block={"type": "text", "text": ""})
            yield event("ping")
            pieces = _text_deltas(output_tokens)
        else:
            yield event("content_block_start", index=0, content_block=block)
            yield event("ping")
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            pieces = iter([event("content_block_delta", index=0, delta=delta)])
        tokens_each = output_tokens if block["type"] == "tool_use" else 1  # one delta carries a tool call
        yield from record.paced(pieces, delay_ms, cut_after, tokens_each)
        yield event("content_block_stop", index=0)
        delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
        yield event("message_delta", with_cost=True, delta=delta, usage=message["usage"])
        yield event("message_stop")
    finally:
        record.close()


def _text_deltas(output_tokens):
    """The ``content_block_delta`` events of a text answer, one a word; leading spaces after the first
    word make the deltas concatenate to the full text."""
    kind = "content_block_delta"
    head, tail = json_template({"type": kind, "index": 0, "delta": {"type": "text_delta", "text": SLOT}})
    for position, word in enumerate(words(output_tokens)):
        yield f'event: {kind}\ndata: {head}"{word if position == 0 else " " + word}"{tail}\n\n'
