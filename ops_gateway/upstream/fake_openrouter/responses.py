"""``POST /api/v1/responses`` of the fake: the OpenAI Responses API, as JSON or as named SSE events.

The output is a ``reasoning`` item when the request asks for ``reasoning``, a ``message`` whose
``output_text`` is max_output_tokens words (DEFAULT_COMPLETION_TOKENS when not asked), and a
``function_call`` of the first function tool when the request has ``tools``. Input tokens are a
quarter of the bytes of ``input``, ``instructions`` and ``tools``. A stream sends the event
sequence the openai SDK's accumulator checks: created, in_progress, each item added then done (a
message's text as one ``response.output_text.delta`` per word in between), completed with usage.
"""

import itertools
import json
import time

import gevent

from ops_gateway.upstream.fake_openrouter.catalogue import cost, dumps_with_cost, usage_with_cost
from ops_gateway.upstream.fake_openrouter.replies import (
    JSON_HEADERS,
    REPLIES,
    SSE_HEADERS,
    WORDS,
    output_length,
    positive_int_problem,
    prompt_tokens,
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


def responses_answer(request, model, response_id, usage_accounting, chunk_delay_ms):
    """The 200 reply to a valid request answered by model: a response object, or its SSE events."""
    input_tokens = max(prompt_tokens({field: request[field] for field in _PROMPT_FIELDS if field in request}), 1)
    words = output_length(request.get("max_output_tokens"))
    cost_usd = cost(model, input_tokens, words) if usage_accounting else None
    usage = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": words,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + words,
    }
    response = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": _output_items(request, response_id, REPLIES[words]),
        "parallel_tool_calls": True,
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools", []),
        "instructions": request.get("instructions"),
        "error": None,
        "incomplete_details": None,
        "usage": usage_with_cost(usage, cost_usd),
    }
    if request.get("stream") is not True:
        return 200, JSON_HEADERS, dumps_with_cost(response, cost_usd).encode()
    events = _stream_events(response, words, cost_usd, chunk_delay_ms)
    return 200, SSE_HEADERS, events if chunk_delay_ms else "".join(events).encode()


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


def _stream_events(response, words, cost_usd, chunk_delay_ms):
    """Yield the SSE events of a streamed response, each ``event: <type>`` then its ``data:``."""
    sequence = itertools.count()

    def event(kind, with_cost=False, **fields):
        data = {"type": kind, "sequence_number": next(sequence), **fields}
        return f"event: {kind}\ndata: {dumps_with_cost(data, cost_usd) if with_cost else json.dumps(data)}\n\n"

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
        yield event("response.content_part.added", **part, part={"type": "output_text", "text": "", "annotations": []})
        for position, word in enumerate(WORDS[:words]):
            if chunk_delay_ms:
                gevent.sleep(chunk_delay_ms / 1000)
            # Leading spaces after the first word make the deltas concatenate to the full text.
            yield event("response.output_text.delta", **part, delta=word if position == 0 else f" {word}", logprobs=[])
        text = item["content"][0]["text"]
        yield event("response.output_text.done", **part, text=text, logprobs=[])
        yield event("response.content_part.done", **part, part=item["content"][0])
        yield event("response.output_item.done", output_index=index, item=item)
    yield event("response.completed", with_cost=True, response=response)
