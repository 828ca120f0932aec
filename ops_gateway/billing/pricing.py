"""What a completion costs: the charging formula, the prompt estimate and the worst case held
before the upstream call. Pure arithmetic on Decimal; nothing here reads or writes a balance."""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

COST_QUANTUM = Decimal("0.0000000001")  # numeric(20, 10)
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
        return sum(len(part.get("text") or "") for part in content if isinstance(part, dict))
    return 0


def estimate_prompt_tokens(messages):
    """An upper-leaning estimate of prompt tokens, used for holds and for unfinished streams."""
    return (
        sum(_content_chars(m.get("content")) // CHARS_PER_TOKEN_ESTIMATE + MESSAGE_OVERHEAD_TOKENS for m in messages)
        + REPLY_PRIMING_TOKENS
    )


@dataclass(frozen=True)
class WorstCase:
    """The most a completion request can cost, held from the balance before upstream is called."""

    prompt_tokens: int  # the prompt estimate
    completion_tokens: int  # max_tokens, else max_completion_tokens, else DEFAULT_MAX_TOKENS
    cost: Decimal


def worst_case(model, body, default_max_tokens):
    """The hold for a validated chat-completion body on ``model``."""
    completion = body.get("max_tokens") or body.get("max_completion_tokens") or default_max_tokens
    prompt = estimate_prompt_tokens(body["messages"])
    return WorstCase(prompt, completion, price(model, prompt, completion))


def billable_tokens(reported_usage, prompt_estimate, completion_fallback):
    """(prompt, completion) tokens to charge: what upstream reported, else the prompt estimate and
    ``completion_fallback`` (one token per content chunk of a stream, max_tokens otherwise)."""
    reported_usage = reported_usage or {}
    prompt = reported_usage.get("prompt_tokens")
    completion = reported_usage.get("completion_tokens")
    return (
        int(prompt) if prompt is not None else prompt_estimate,
        int(completion) if completion is not None else completion_fallback,
    )
