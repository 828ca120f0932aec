"""``POST /api/v1/responses`` of the fake: the OpenAI Responses API, as JSON or as named SSE events.

The output is a ``reasoning`` item when the request asks for ``reasoning``, a ``message`` whose
``output_text`` is max_output_tokens words (DEFAULT_COMPLETION_TOKENS when not asked), and a
``function_call`` of the first function tool when the request has ``tools``. Input tokens are a
quarter of the bytes of ``input``, ``instructions`` and ``tools``. A stream sends the event
sequence the openai SDK's accumulator checks: created, in_progress, each item added then done (a
message's text as one ``response.output_text.delta`` per word in between), completed with usage.

Without ``max_output_tokens`` the answer is ``long_answer_tokens`` words when that switch is set. With
``cut_stream_after`` a stream stops after that many deltas: the connection is dropped (StreamCut)
with no ``response.completed``. The generation is recorded when the response ends, under the
response's id: a stream's when its last event was produced or it was cut or the client went away
(then billed for the deltas produced).
"""

import itertools
import json

from devtools.fake_openrouter.catalogue import dumps_with_cost, usage_with_cost
from devtools.fake_openrouter.replies import (
    JSON_HEADERS,
    SLOT,
    SSE_HEADERS,
    StreamRecord,
    json_template,
    output_length,
    positive_int_problem,
    prompt_tokens,
    reply_text,
    words,
)

_PROMPT_FIELDS = ("input", "instructions", "tools")


def responses_problem(request):
    """Why a Responses API request is invalid (status, message), or None."""
    if not isinstance(request.get("input"), (str, list)) or not request["input"]:
        return 400, "input is required: a string or a list of input items"
    if not isinstance(request.get("instructions", ""), (str, type(None))):
        return 400, "instructions must be a string"
    if not isinstance(request.get("tools", []), list):
        return 400, "tools must be a list"
    return positive_int_problem(request, "max_output_tokens")


def responses_input_tokens(request):
    """The input tokens of a valid request: a quarter of the bytes of its input, instructions and tools."""
    return max(prompt_tokens({field: request[field] for field in _PROMPT_FIELDS if field in request}), 1)


def responses_answer(request, generation, faults, usage_accounting):
    """The 200 reply to a valid request for generation: a response object, or its SSE events."""
    input_tokens = generation.prompt_tokens
    output_tokens = output_length(request.get("max_output_tokens"), faults["long_answer_tokens"])
    cost_usd = generation.cost(output_tokens) if usage_accounting else None
    usage = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }
    response = {
        "id": generation.id,
        "object": "response",
        "created_at": generation.created // 1_000_000,
        "status": "completed",
        "model": generation.model,
        "output": _output_items(request, generation.id, reply_text(output_tokens)),
        "parallel_tool_calls": True,
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools", []),
        "instructions": request.get("instructions"),
        "error": None,
        "incomplete_details": None,
        "usage": usage_with_cost(usage, cost_usd),
    }
    headers = (*JSON_HEADERS, ("X-Generation-Id", generation.id))
    if not generation.streamed:
        generation.finish(output_tokens)
        return 200, headers, dumps_with_cost(response, cost_usd).encode()
    delay_ms, cut_after = faults["chunk_delay_ms"], faults["cut_stream_after"]
    events = _stream_events(response, generation, output_tokens, cost_usd, delay_ms, cut_after)
    # Without delays or a cut the whole stream is one write; else each event leaves when it is due.
    sse_headers = (*SSE_HEADERS, headers[-1])
    return 200, sse_headers, events if delay_ms or cut_after is not None else "".join(events).encode()


def _output_items(request, response_id, text):
    """The output list: reasoning (when asked), the message, a function call (when tools are given)."""
    suffix = response_id.removeprefix("resp_")
    items = []
    if request.get("reasoning") is not None:
        items.append({"type": "reasoning", "id": f"rs_{suffix}", "summary": []})
    content = [{"type": "output_text", "text": text, "annotations": []}]
    message = {"type": "message", "id": f"msg_{suffix}", "status": "completed", "role": "assistant"}
    items.append({**message, "content": content})
    tools = [tool for tool in request.get("tools", []) if isinstance(tool, dict) and tool.get("type") == "function"]
    if tools:
        call = {"type": "function_call", "id": f"fc_{suffix}", "call_id": f"call_{suffix}", "arguments": "{}"}
        items.append({**call, "name": str(tools[0].get("name", "function")), "status": "completed"})
    return items


def _stream_events(response, generation, output_tokens, cost_usd, delay_ms, cut_after):
    """Yield the SSE events of a streamed response, each ``event: <type>`` then its ``data:``.

    The generation is recorded when the events end: finished, or cancelled after the deltas
    produced when cut_after of them were sent or the client went away.
    """
    sequence = itertools.count()

    def event(kind, with_cost=False, **fields):
        data = {"type": kind, "sequence_number": next(sequence), **fields}
        return f"event: {kind}\ndata: {dumps_with_cost(data, cost_usd) if with_cost else json.dumps(data)}\n\n"

    record = StreamRecord(generation)
    try:
        pending = {**response, "status": "in_progress", "output": [], "usage": None}
        yield event("response.created", response=pending)
        yield event("response.in_progress", response=pending)
        for index, item in enumerate(response["output"]):
            if item["type"] != "message":
                yield event("response.output_item.added", output_index=index, item=item)
                yield event("response.output_item.done", output_index=index, item=item)
                continue
            started = {**item, "status": "in_progress", "content": []}
            yield event("response.output_item.added", output_index=index, item=started)
            part = {"output_index": index, "item_id": item["id"], "content_index": 0}
            empty = {"type": "output_text", "text": "", "annotations": []}
            yield event("response.content_part.added", **part, part=empty)
            kind = "response.output_text.delta"
            head, middle, tail = json_template(
                {"type": kind, "sequence_number": SLOT, **part, "delta": SLOT, "logprobs": []}
            )
            # Leading spaces after the first word make the deltas concatenate to the full text.
            spaced = (f'"{word}"' if n == 0 else f'" {word}"' for n, word in enumerate(words(output_tokens)))
            deltas = (f"event: {kind}\ndata: {head}{next(sequence)}{middle}{quoted}{tail}\n\n" for quoted in spaced)
            yield from record.paced(deltas, delay_ms, cut_after)
            text = item["content"][0]["text"]
            yield event("response.output_text.done", **part, text=text, logprobs=[])
            yield event("response.content_part.done", **part, part=item["content"][0])
            yield event("response.output_item.done", output_index=index, item=item)
        yield event("response.completed", with_cost=True, response=response)
    finally:
        record.close()
