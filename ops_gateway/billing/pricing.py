"""What a completion costs: the charging formula, the prompt estimate and the worst case held
before the upstream call. Pure arithmetic on Decimal; nothing here reads or writes a balance."""

import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

COST_QUANTUM = Decimal("0.0000000001")  # numeric(20, 10)
MAX_COST = Decimal("9999999999")
CHARS_PER_TOKEN_ESTIMATE = 3  # conservative: real tokenisers average about 4 characters a token
MESSAGE_OVERHEAD_TOKENS = 4
REPLY_PRIMING_TOKENS = 3


def price(model, prompt_tokens, completion_tokens):
    """Cost in USD of the given token counts at the model's cached prices (the charging formula)."""
    pricing = model["pricing"]
    cost = Decimal(prompt_tokens) * Decimal(pricing["prompt"]) + Decimal(completion_tokens) * Decimal(
        pricing["completion"]
    )
    return cost.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


def cost_of(model, status, prompt_tokens, completion_tokens):
    """What a finished request is charged: its tokens' price, nothing when upstream failed."""
    return price(model, prompt_tokens, completion_tokens) if status != "error" else Decimal(0)


def _content_chars(content):
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        texts = (part.get("text") for part in content if isinstance(part, dict))
        return sum(len(text) for text in texts if isinstance(text, str))
    return 0


def estimate_prompt_tokens(messages):
    """An estimate of a message list's prompt tokens, charged for an unfinished stream that reported no usage
    (never used for holds: it counts message text only)."""
    return (
        sum(_content_chars(m.get("content")) // CHARS_PER_TOKEN_ESTIMATE + MESSAGE_OVERHEAD_TOKENS for m in messages)
        + REPLY_PRIMING_TOKENS
    )


# Content parts upstream bills by something other than their bytes (an image, audio, a file): a
# short URL can cost a thousand prompt tokens, so such a body may fill the whole context.
_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})


def body_bytes(body):
    """The size in UTF-8 bytes of ``body`` serialised as it is sent upstream."""
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode())


def _content_parts(items):
    """The content parts of a list of messages (chat) or input items (the Responses API)."""
    if not isinstance(items, list):
        return
    for item in items:
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, list):
            yield from content


def _has_non_text_parts(items):
    return any(isinstance(part, dict) and part.get("type") not in _TEXT_PART_TYPES for part in _content_parts(items))


@dataclass(frozen=True)
class RequestShape:
    """Where a kind of request keeps what bounds its cost."""

    content: str  # the field with the messages or input items (their non-text parts fill the context)
    output_limits: tuple  # fields bounding the output tokens, first present wins; () with no output
    estimate: object  # body -> the prompt tokens charged to a stream that reported no usage


def _chat_estimate(body):
    return estimate_prompt_tokens(body["messages"])


def _text_estimate(value):
    return body_bytes(value) // CHARS_PER_TOKEN_ESTIMATE


CHAT = RequestShape("messages", ("max_tokens", "max_completion_tokens"), _chat_estimate)
EMBEDDINGS = RequestShape("input", (), lambda b: _text_estimate(b["input"]))
RESPONSES = RequestShape("input", ("max_output_tokens",), lambda b: _text_estimate(b.get("input")))


def prompt_bound(body, context_length=None, shape=CHAT):
    """A safe upper bound on the prompt tokens upstream can bill for ``body``.

    Upstream bills as prompt everything in the body (messages, tools, ``response_format``, ...)
    and a token is at least one byte, so the serialised body's bytes bound it; parts billed by
    other means (images, audio, files) make the bound the model's whole context. No prompt is
    longer than the context, so ``context_length``, when known, caps it.
    """
    bound = body_bytes(body)
    if context_length and _has_non_text_parts(body.get(shape.content)):
        bound = max(bound, context_length)
    return min(bound, context_length) if context_length else bound


@dataclass(frozen=True)
class WorstCase:
    """The most a request can cost, held from the balance before upstream is called."""

    prompt_tokens: int  # the prompt bound, as far as the context leaves room for it
    completion_tokens: int  # the body's output limit, else DEFAULT_MAX_TOKENS (within the context); 0: no output
    cost: Decimal
    prompt_estimate: int  # what an unfinished stream that reported nothing is charged for its prompt


def output_bound(body, default_max_tokens, shape=CHAT):
    """The most output tokens a request can be billed for: its first output limit, else the default."""
    if not shape.output_limits:
        return 0
    return next((body[field] for field in shape.output_limits if body.get(field)), default_max_tokens)


def worst_case(model, body, default_max_tokens, shape=CHAT):
    """The hold for a validated request body of ``shape`` on ``model``: the dearest split of prompt
    and output tokens within their bounds and the model's context (prompt + output)."""
    context = model.get("context_length") or None
    prompt = prompt_bound(body, context, shape)
    completion = output_bound(body, default_max_tokens, shape)
    splits = [(prompt, completion)]
    if context:
        # The cost is linear in both counts, so its maximum under prompt + completion <= context
        # is at a corner: fill the context with prompt first, or with completion first.
        completion = min(completion, context)
        splits = [(prompt, min(completion, context - prompt)), (min(prompt, context - completion), completion)]
    prompt, completion = max(splits, key=lambda split: price(model, *split))
    return WorstCase(prompt, completion, price(model, prompt, completion), shape.estimate(body))


def billable_tokens(reported_usage, prompt_estimate, completion_fallback):
    """(prompt, completion) tokens to charge: what upstream reported, else the prompt estimate and
    ``completion_fallback`` (one token per content event of a stream, the output bound otherwise)."""
    reported_usage = reported_usage or {}
    prompt = reported_usage.get("prompt_tokens")
    completion = reported_usage.get("completion_tokens")
    return (
        int(prompt) if prompt is not None else prompt_estimate,
        int(completion) if completion is not None else completion_fallback,
    )


def reported_cost(reported_usage):
    """Upstream's own figure for what a request cost (OpenRouter's ``usage.cost``, in USD), exact
    to our quantum, or None when it reported none or nothing sensible.

    JSON parses it as a float; its shortest text is the decimal upstream wrote (for fewer than 16
    significant digits), so the comparison with our Decimal cost is exact.
    """
    cost = (reported_usage or {}).get("cost")
    if isinstance(cost, bool) or not isinstance(cost, (int, float, str)):
        return None
    try:
        value = Decimal(str(cost))
    except InvalidOperation:
        return None
    if not value.is_finite() or not 0 <= value < MAX_COST:
        return None
    return value.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)
