"""Relaying an upstream stream to the client as server-sent events, settling it exactly once.

Chat completions stream ``data:`` lines ending in ``[DONE]``; the Responses API streams named
events (``event:`` + ``data:``) ending with ``response.completed``, the Messages API named events
ending with ``message_stop``. Each event is relayed as it arrives, and the stream settles once,
whatever ends it: the last event, the client going away, upstream breaking, ``MAX_STREAM_SECONDS``,
or the key's revocation (``key_watch``), checked after each event and each keep-alive comment.
A stream is charged what upstream reported; one that ended without it is charged its whole prompt
bound plus one token per output event (text, reasoning and tool-call deltas) until its generation
lookup brings upstream's bill (``billing.reconciliation``).
"""

import json
import logging
import time

from ops_gateway.accounts.key_watch import OPEN_STREAMS
from ops_gateway.billing.money import format_money
from ops_gateway.upstream.failures import UpstreamError
from ops_gateway.upstream.streams import KEEP_ALIVE

logger = logging.getLogger("ops_gateway.pipeline")

KEEP_ALIVE_TEXT = ": processing\n\n"  # an SSE comment: every client ignores it
_COST_COMMENT = ": gateway-cost="  # the charge written into a chat stream before its [DONE]
# A chat chunk carrying any of these is output upstream bills (text, reasoning, tool calls).
_CHAT_OUTPUT_FIELDS = ('"content"', '"reasoning"', '"tool_calls"')


class _Progress:
    """What a stream has shown so far: the usage upstream reported, output events, who answered,
    and the generation's id (what its lookup asks for)."""

    def __init__(self):
        self.reported = None
        self.output_events = 0
        self.served_model = None
        self.generation_id = None


# Anthropic's error type for each way the gateway ends a stream early (the anthropic SDK raises it).
_ANTHROPIC_TYPES = {
    "stream_too_long": "timeout_error",
    "api_key_revoked": "authentication_error",
    "upstream_stream_error": "api_error",
}


def _error_event(code, message, stream_format):
    """The SSE event telling the client why its stream ended early, in its API's shape."""
    if stream_format == "chat":
        return f"data: {json.dumps({'error': {'code': code, 'message': message}})}\n\n"
    if stream_format == "messages":
        error = {"type": _ANTHROPIC_TYPES[code], "message": message, "code": code}
        return f"event: error\ndata: {json.dumps({'type': 'error', 'error': error})}\n\n"
    return f"event: error\ndata: {json.dumps({'error': {'code': code, 'message': message}})}\n\n"


def _cut_reason(cut_at, key_id):
    """(code, message) when a running stream must stop now, else None."""
    if time.perf_counter() >= cut_at:
        return "stream_too_long", "the stream exceeded the gateway's maximum duration"
    if not OPEN_STREAMS.usable(key_id):
        return "api_key_revoked", "the API key was revoked or its user suspended during the stream"
    return None


def relay(upstream, listener, *, stream_format, key_id, request_id, cut_at):
    """Yield the client's SSE text for ``upstream``'s events (``stream_format``: chat, responses or
    messages) until its last one, the key's revocation or ``cut_at`` (a perf_counter time).

    ``listener`` (the ``Completion``) is told once when the last event arrives
    (``stream_finished``, which returns the charge) and once when the stream is over, however it
    ended (``stream_ended``).
    """
    progress = _Progress()
    read = _READERS[stream_format]
    done = False
    OPEN_STREAMS.watch(key_id)
    try:
        for item in upstream:
            text, finished = (KEEP_ALIVE_TEXT, False) if item is KEEP_ALIVE else read(item, progress)
            if finished:
                done = True
                charged = listener.stream_finished(progress)
                if stream_format == "chat":
                    text = f"{_COST_COMMENT}{format_money(charged)}\n\n" + text
            yield text
            cut = None if done else _cut_reason(cut_at, key_id)
            if cut:
                logger.warning("stream cut", extra={"request_id": request_id, "reason": cut[0]})
                yield _error_event(*cut, stream_format)
                break
    except UpstreamError as error:
        logger.warning("upstream stream broke", extra={"error_kind": error.kind})
        yield _error_event("upstream_stream_error", error.message, stream_format)
    finally:
        OPEN_STREAMS.forget(key_id)
        upstream.close()
        listener.stream_ended(progress)


def copied(texts, on_end, max_chars):
    """Pass a stream's texts through and, however it ends, call ``on_end(text, whole)`` with what
    went out (the gateway's cost comment left out: a replay is not charged the original's), at
    most ``max_chars`` of it; ``whole`` says the stream ran to its end and all of it was kept."""
    parts, size, ended = [], 0, False
    try:
        for text in texts:
            if size <= max_chars:
                kept = text.split("\n\n", 1)[1] if text.startswith(_COST_COMMENT) else text
                parts.append(kept)
                size += len(kept)
            yield text
        ended = True
    finally:
        on_end("".join(parts)[:max_chars], ended and size <= max_chars)


def _read_chat_event(data, progress):
    """(client text, whether this ends the stream) for one chat ``data:`` payload."""
    if data == "[DONE]":
        return "data: [DONE]\n\n", True
    if '"usage"' in data or progress.served_model is None:
        event = json.loads(data)
        if isinstance(event, dict):
            progress.reported = event.get("usage") or progress.reported
            progress.served_model = progress.served_model or event.get("model") or ""
            progress.generation_id = progress.generation_id or event.get("id")
    if any(field in data for field in _CHAT_OUTPUT_FIELDS):
        progress.output_events += 1
    return f"data: {data}\n\n", False


def _read_responses_event(item, progress):
    """(client text, whether this ends the stream) for one Responses ``(event, data)``."""
    name, data = item
    if name and name.endswith(".delta"):  # output text, reasoning, a function call's arguments
        progress.output_events += 1
    elif name in ("response.created", "response.completed", "response.incomplete"):
        event = json.loads(data)
        response = (event.get("response") if isinstance(event, dict) else None) or {}
        progress.served_model = response.get("model") or progress.served_model
        progress.reported = response.get("usage") or progress.reported
        progress.generation_id = progress.generation_id or response.get("id")
    return f"event: {name}\ndata: {data}\n\n", name in ("response.completed", "response.incomplete")


def _read_messages_event(item, progress):
    """(client text, whether this ends the stream) for one Messages API ``(event, data)``: the
    prompt's usage comes with ``message_start``, the output's (and upstream's cost) with
    ``message_delta``."""
    name, data = item
    if name == "content_block_delta":  # text, a tool call's input, thinking
        progress.output_events += 1
    elif name in ("message_start", "message_delta"):
        event = json.loads(data)
        message = (event.get("message") if name == "message_start" else event) if isinstance(event, dict) else None
        usage = message.get("usage") if isinstance(message, dict) else None
        if isinstance(usage, dict):
            if name == "message_start":  # its output count is a placeholder until the delta
                usage = {field: value for field, value in usage.items() if field != "output_tokens"}
            progress.reported = {**(progress.reported or {}), **usage}
        if name == "message_start" and isinstance(message, dict):
            progress.served_model = message.get("model") or progress.served_model
            progress.generation_id = progress.generation_id or message.get("id")
    return f"event: {name}\ndata: {data}\n\n", name == "message_stop"


_READERS = {"chat": _read_chat_event, "responses": _read_responses_event, "messages": _read_messages_event}
