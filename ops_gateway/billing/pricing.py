"""What a request costs: upstream's reported cost (what is charged, times the operator's markup),
the catalogue's prices (the fallback when upstream reports nothing) and the worst case held before
the upstream call. Pure arithmetic on Decimal; nothing here reads or writes a balance."""

import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

COST_QUANTUM = Decimal("0.0000000001")  # numeric(20, 10)
MAX_COST = Decimal("9999999999")


def is_unpriced(pricing):
    """Whether a catalogue price pair names no price: OpenRouter lists routers such as
    ``openrouter/auto`` at the sentinel ``"-1"`` (the routed model's price applies)."""
    return any(Decimal(pricing[part]) < 0 for part in ("prompt", "completion"))


def price(model, prompt_tokens, completion_tokens):
    """Cost in USD of the given token counts at the model's catalogue prices (an unpriced model:
    at its ``hold_pricing``, the dearest listed prices, see ``catalog``)."""
    pricing = model.get("hold_pricing") or model["pricing"]
    cost = Decimal(prompt_tokens) * Decimal(pricing["prompt"]) + Decimal(completion_tokens) * Decimal(
        pricing["completion"]
    )
    return cost.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


def marked_up(cost, markup):
    """``cost`` times the operator's markup (BILLING_MARKUP), to our quantum."""
    return min((cost * markup).quantize(COST_QUANTUM, rounding=ROUND_HALF_UP), MAX_COST)


def charge(model, status, upstream_cost, prompt_tokens, completion_tokens, markup):
    """What a finished request is charged: upstream's reported cost times the markup; when upstream
    reported none, the tokens at the catalogue's prices times the markup; nothing when it failed."""
    if status == "error":
        return Decimal(0)
    cost = upstream_cost if upstream_cost is not None else price(model, prompt_tokens, completion_tokens)
    return marked_up(cost, markup)


# Content parts upstream bills by something other than their bytes (an image, audio, a file): a
# short URL can cost a thousand prompt tokens, so such a body may fill the whole context.
# Anthropic's tool calls, tool results and thinking blocks are text too (a tool result's own
# content is looked into: it may hold an image).
_TEXT_PART_TYPES = frozenset(
    {"text", "input_text", "output_text", "tool_use", "tool_result", "thinking", "redacted_thinking"}
)


def body_bytes(body):
    """The size in UTF-8 bytes of ``body`` serialised as it is sent upstream."""
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode())


def _content_parts(items):
    """The content parts of a list of messages (chat, the Messages API) or input items (the
    Responses API), and those nested in them (an Anthropic tool result's content)."""
    if not isinstance(items, list):
        return
    for item in items:
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, list):
            yield from content
            yield from _content_parts(content)


def _has_non_text_parts(items):
    return any(isinstance(part, dict) and part.get("type") not in _TEXT_PART_TYPES for part in _content_parts(items))


@dataclass(frozen=True)
class RequestShape:
    """Where a kind of request keeps what bounds its cost."""

    content: str  # the field with the messages or input items (their non-text parts fill the context)
    output_limits: tuple  # fields bounding the output tokens, first present wins; () with no output
    batched: bool = False  # the content is a batch of inputs, each up to a whole context (embeddings)


CHAT = RequestShape("messages", ("max_tokens", "max_completion_tokens"))
MESSAGES = RequestShape("messages", ("max_tokens",))
EMBEDDINGS = RequestShape("input", (), batched=True)
RESPONSES = RequestShape("input", ("max_output_tokens",))


def _inputs(body, shape):
    """How many separately billed inputs the body holds: a batch's items, else one."""
    content = body.get(shape.content)
    if not shape.batched or not isinstance(content, list) or not content:
        return 1
    return 1 if all(isinstance(item, int) for item in content) else len(content)  # one token array is one input


def prompt_bound(body, context_length=None, shape=CHAT):
    """A safe upper bound on the prompt tokens upstream can bill for ``body``.

    Upstream bills as prompt everything in the body (messages, tools, ``response_format``, ...)
    and a token is at least one byte, so the serialised body's bytes bound it; parts billed by
    other means (images, audio, files) make the bound the model's whole context. No input is
    longer than the context, so ``context_length``, when known, caps it: once per input of a
    batch (each embedding input is its own context).
    """
    bound = body_bytes(body)
    if context_length and _has_non_text_parts(body.get(shape.content)):
        bound = max(bound, context_length)
    return min(bound, context_length * _inputs(body, shape)) if context_length else bound


@dataclass(frozen=True)
class WorstCase:
    """The most a request can cost, held from the balance before upstream is called."""

    prompt_tokens: int  # the prompt bound, as far as the context leaves room for it
    completion_tokens: int  # the body's output limit, else DEFAULT_MAX_TOKENS (within the context); 0: no output
    cost: Decimal  # times the markup
    prompt_bound: int  # the whole prompt bound: charged for the prompt of a stream that reported nothing
    output_limit: int  # the output limit upstream is sent (0: the endpoint has no output)


def output_bound(body, default_max_tokens, shape=CHAT):
    """The most output tokens a request can be billed for: its first output limit, else the default."""
    if not shape.output_limits:
        return 0
    return next((body[field] for field in shape.output_limits if body.get(field)), default_max_tokens)


def worst_case(model, body, default_max_tokens, shape=CHAT, markup=Decimal(1)):
    """The hold for a validated request body of ``shape`` on ``model``: the dearest split of prompt
    and output tokens within their bounds and the model's context (prompt + output), times the
    markup. The output bound is sent upstream as the request's limit (``output_limit``), so the
    model cannot answer past what is held."""
    context = model.get("context_length") or None
    bound = prompt = prompt_bound(body, context, shape)
    limit = completion = output_bound(body, default_max_tokens, shape)
    splits = [(prompt, completion)]
    if context and not shape.batched:
        # The cost is linear in both counts, so its maximum under prompt + completion <= context
        # is at a corner: fill the context with prompt first, or with completion first.
        limit = completion = min(completion, context)
        splits = [(prompt, min(completion, context - prompt)), (min(prompt, context - completion), completion)]
    prompt, completion = max(splits, key=lambda split: price(model, *split))
    return WorstCase(prompt, completion, marked_up(price(model, prompt, completion), markup), bound, limit)


def billable_tokens(reported_usage, prompt_fallback, completion_fallback):
    """(prompt, completion) tokens to record and, without a reported cost, to charge: what
    upstream reported, else ``prompt_fallback`` (the prompt bound) and ``completion_fallback``
    (one token per output event of a stream, the output bound otherwise)."""
    reported_usage = reported_usage or {}
    prompt = reported_usage.get("prompt_tokens")
    completion = reported_usage.get("completion_tokens")
    return (
        _tokens(prompt, prompt_fallback),
        _tokens(completion, completion_fallback),
    )


def _tokens(reported, fallback):
    """A reported token count when it is a sane one, else the fallback."""
    return reported if is_token_count(reported) else fallback


def is_token_count(value):
    """Whether upstream's value is a sane token count: a non-negative integer an integer column holds."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31


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
