"""Chat completions through OpenRouter: hold credits, call upstream, settle exactly once.

Flow: authenticate and hold the request's worst-case cost in one statement, admit it in one
Redis call (404 for an unknown model and 402 when the balance cannot cover the hold, both
before any upstream call), take an upstream slot, call upstream, then settle the real cost in
one statement. Upstream failures release the hold and cost nothing. No database connection is
held while upstream answers; a stream is cut and settled after ``MAX_STREAM_SECONDS``.
"""

import json
import logging
import time
from decimal import Decimal

from flask import current_app, g
from werkzeug.exceptions import HTTPException

from ops_gateway.accounts import auth
from ops_gateway.billing import credits, usage
from ops_gateway.billing.money import format_money
from ops_gateway.core import db
from ops_gateway.core.errors import (
    BadRequest,
    NotFound,
    PaymentRequired,
    RateLimited,
    UpstreamFailed,
    UpstreamTimedOut,
)
from ops_gateway.limits import rate_limits
from ops_gateway.observability import metrics
from ops_gateway.upstream import catalog as model_catalog
from ops_gateway.upstream import slots as upstream_slots
from ops_gateway.upstream.openrouter import UpstreamError

logger = logging.getLogger("ops_gateway.openrouter")

UPSTREAM_ERRORS = {
    "bad_request": (BadRequest, "upstream_bad_request"),
    "not_found": (NotFound, "upstream_not_found"),
    "rate_limited": (RateLimited, "upstream_rate_limited"),
    "unavailable": (UpstreamFailed, "upstream_unavailable"),
    "timeout": (UpstreamTimedOut, "upstream_timeout"),
}


def _client():
    return current_app.extensions["ops_gateway.openrouter"]


def open_request(read_body):
    """Authenticate, admit and hold credits for one completion; return (body, context) or raise.

    Refusals, in order: 401/403 key, 403 scope, 400/422 body, 429 (IP block, concurrency,
    quotas, token and request windows), 404 model, 402 credits, 503 no upstream slot. The body is read first (no
    side effects) so the worst-case hold can ride on the key lookup: one Postgres statement
    authenticates and holds, one Redis call admits. A request refused after the hold gives it
    back, so only requests that reach upstream keep one. ``read_body()`` returns the validated
    body or raises the 4xx for a bad one; that, or a catalogue that was never fetched (502), is
    answered only after the key has been checked.
    """
    try:
        body, invalid = read_body(), None
        model = model_catalog.find_model(body["model"])
    except (HTTPException, UpstreamError) as error:  # raised once the caller is known
        body, model, invalid = None, None, error
    if model:
        max_completion = (
            body.get("max_tokens") or body.get("max_completion_tokens") or current_app.config["DEFAULT_MAX_TOKENS"]
        )
        prompt_estimate = usage.estimate_prompt_tokens(body["messages"])
        reserve = usage.price(model, prompt_estimate, max_completion)
    else:
        reserve = None  # nothing to hold: the request is refused below
    user = auth.authenticate_and_hold(reserve)
    try:
        refusal = auth.scope_error(user, "chat:write") or invalid
        if refusal:
            rate_limits.refuse_uncounted(user, refusal)
        rate_limits.gate(user, rate_limits.Mode.COMPLETION)
        if model is None:
            raise NotFound(f"model {body['model']!r} is not offered", {"model": body["model"]}, code="model_not_found")
        if not user["held"]:
            raise PaymentRequired(
                "your credits cannot cover this request's maximum cost",
                {"required": str(reserve), "model": model["id"], "max_tokens": max_completion},
                code="insufficient_credits",
            )
        slot = upstream_slots.acquire()
    except BaseException:
        if user["held"]:
            with db.statement() as cur:
                credits.release(cur, user["user_id"], reserve)
        raise
    context = {
        "user_id": user["user_id"],
        "api_key_id": user["api_key_id"],
        "actor": user["actor"],
        "request_id": g.request_id,
        "model": model["id"],
        "pricing": model,
        "reserved": reserve,
        "streamed": bool(body.get("stream")),
        "prompt_estimate": prompt_estimate,
        "upstream_slot": slot,
    }
    return body, context


def finish(
    context,
    status,
    prompt_tokens=0,
    completion_tokens=0,
    upstream_status=None,
    error_code=None,
    upstream_latency_ms=None,
):
    """Settle the request (charge, ledger, usage row, daily totals) and count its tokens."""
    cost = usage.price(context["pricing"], prompt_tokens, completion_tokens) if status != "error" else Decimal(0)
    latency_ms = (time.perf_counter() - g.started) * 1000
    outcome = {
        "status": status,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost": cost,
        "upstream_status": upstream_status,
        "error_code": error_code,
        "latency_ms": latency_ms,
        "upstream_latency_ms": upstream_latency_ms,
    }
    with db.statement() as cur:  # settle_request is a single statement
        charged, balance = usage.settle_request(cur, context, outcome)
    metrics.observe_completion(
        context["model"], upstream_status, upstream_latency_ms, prompt_tokens, completion_tokens, cost, charged
    )
    rate_limits.charge_tokens(g.user, prompt_tokens + completion_tokens)
    context.update(charged=charged, balance=balance, latency_ms=latency_ms, upstream_latency_ms=upstream_latency_ms)
    return charged, balance


def _upstream_failure(context, error, upstream_latency_ms):
    finish(
        context, "error", upstream_status=error.status, error_code=error.kind, upstream_latency_ms=upstream_latency_ms
    )
    kind, code = UPSTREAM_ERRORS.get(error.kind, (UpstreamFailed, "upstream_error"))
    return kind(error.message, {"upstream_status": error.status}, code=code, retry_after=error.retry_after or None)


def _tokens(usage_block, context, completion_fallback):
    usage_block = usage_block or {}
    prompt = usage_block.get("prompt_tokens")
    completion = usage_block.get("completion_tokens")
    return (
        int(prompt) if prompt is not None else context["prompt_estimate"],
        int(completion) if completion is not None else completion_fallback,
    )


def complete(body, context):
    """Non-streaming completion; returns the upstream JSON and fills ``context`` with cost and balance."""
    payload = {**body, "stream": False}
    started = time.perf_counter()
    try:
        result = _client().chat_completion(payload)
    except UpstreamError as error:
        raise _upstream_failure(context, error, (time.perf_counter() - started) * 1000) from None
    finally:
        context["upstream_slot"].release()
    upstream_ms = (time.perf_counter() - started) * 1000
    prompt, completion = _tokens(result.get("usage"), context, body.get("max_tokens") or 0)
    finish(context, "success", prompt, completion, 200, upstream_latency_ms=upstream_ms)
    return result


def open_stream(body, context):
    """Start a streaming completion; upstream errors surface here, before any byte is sent."""
    payload = {**body, "stream": True, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
    started = time.perf_counter()
    try:
        upstream = _client().stream_chat_completion(payload)
    except BaseException as error:
        context["upstream_slot"].release()
        if isinstance(error, UpstreamError):
            raise _upstream_failure(context, error, (time.perf_counter() - started) * 1000) from None
        raise
    context["upstream_started"] = started
    return relay(context, upstream)


def relay(context, upstream):
    """Yield SSE events as they arrive; settle exactly once, even if the client goes away.

    A stream still open after ``MAX_STREAM_SECONDS`` is cut with an error event and settled
    as incomplete.
    """
    usage_block, content_chunks, settled = None, 0, False
    cut_at = context["upstream_started"] + current_app.config["MAX_STREAM_SECONDS"]
    try:
        for data in upstream:
            if data == "[DONE]":
                prompt, completion = _tokens(usage_block, context, content_chunks)
                finish(
                    context,
                    "success",
                    prompt,
                    completion,
                    200,
                    upstream_latency_ms=(time.perf_counter() - context["upstream_started"]) * 1000,
                )
                settled = True
                yield f": gateway-cost={format_money(context['charged'])}\n\ndata: [DONE]\n\n"
                continue
            if '"usage"' in data:
                usage_block = json.loads(data).get("usage") or usage_block
            elif '"content"' in data:
                content_chunks += 1
            yield f"data: {data}\n\n"
            if time.perf_counter() >= cut_at:
                logger.warning("stream cut at MAX_STREAM_SECONDS", extra={"request_id": context["request_id"]})
                message = "the stream exceeded the gateway's maximum duration"
                yield "data: " + json.dumps({"error": {"code": "stream_too_long", "message": message}}) + "\n\n"
                break
    except UpstreamError as error:
        logger.warning("upstream stream broke", extra={"error_kind": error.kind})
        yield "data: " + json.dumps({"error": {"code": "upstream_stream_error", "message": error.message}}) + "\n\n"
    finally:
        upstream.close()
        context["upstream_slot"].release()
        if not settled:
            # Client went away or upstream broke mid-stream: charge what upstream reported, else
            # the estimate (prompt estimate + one token per content chunk received).
            prompt, completion = _tokens(usage_block, context, content_chunks)
            finish(
                context,
                "incomplete",
                prompt,
                completion,
                200,
                upstream_latency_ms=(time.perf_counter() - context["upstream_started"]) * 1000,
            )
