"""Pricing and usage accounting: what a request may cost, what it did cost, and its records.

A finished request is settled in one transaction: the credit hold is released, the exact
cost charged with its ledger row, the ``usage_records`` row written and the per-day totals
bumped — so balances, ledger and usage always agree to the cent.
"""

from decimal import ROUND_HALF_UP, Decimal

from ops_gateway import credits

COST_QUANTUM = Decimal("0.0000000001")  # numeric(20, 10)
CHARS_PER_TOKEN_ESTIMATE = 3  # conservative: real tokenisers average about 4 characters a token
MESSAGE_OVERHEAD_TOKENS = 4


def price(model, prompt_tokens, completion_tokens):
    """Cost in USD of the given token counts at the model's cached prices."""
    pricing = model["pricing"]
    cost = Decimal(prompt_tokens) * Decimal(pricing["prompt"]) + Decimal(completion_tokens) * Decimal(
        pricing["completion"]
    )
    return cost.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


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
        + 3
    )


def settle_request(cur, request, outcome):
    """Charge and record one finished request; return (charged, balance_after).

    ``request``: user_id, api_key_id, request_id, model, reserved, streamed, actor.
    ``outcome``: status, prompt_tokens, completion_tokens, cost, upstream_status, error_code,
    latency_ms, upstream_latency_ms.
    """
    if outcome["cost"] > 0 or request["reserved"] > 0:
        charged, balance = credits.settle(
            cur,
            request["user_id"],
            request["reserved"],
            outcome["cost"],
            request["actor"],
            request["request_id"],
            f"usage: {request['model']}",
        )
    else:
        charged, balance = Decimal("0"), None
    prompt, completion = outcome["prompt_tokens"], outcome["completion_tokens"]
    upstream_ms = outcome.get("upstream_latency_ms")
    overhead_ms = None if upstream_ms is None else max(outcome["latency_ms"] - upstream_ms, 0.0)
    cur.execute(
        "INSERT INTO usage_records (request_id, user_id, api_key_id, model, prompt_tokens, completion_tokens,"
        " total_tokens, cost, status, upstream_status, error_code, latency_ms, upstream_latency_ms, overhead_ms,"
        " streamed) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            request["request_id"],
            request["user_id"],
            request["api_key_id"],
            request["model"],
            prompt,
            completion,
            prompt + completion,
            charged,
            outcome["status"],
            outcome.get("upstream_status"),
            outcome.get("error_code"),
            outcome["latency_ms"],
            upstream_ms,
            overhead_ms,
            request["streamed"],
        ),
    )
    cur.execute(
        "INSERT INTO usage_daily_totals AS t (day, user_id, model, requests, errors, prompt_tokens,"
        " completion_tokens, cost, last_request_at)"
        " VALUES ((now() AT TIME ZONE 'UTC')::date, %s, %s, 1, %s, %s, %s, %s, now())"
        " ON CONFLICT (user_id, day, model) DO UPDATE SET requests = t.requests + 1,"
        " errors = t.errors + EXCLUDED.errors, prompt_tokens = t.prompt_tokens + EXCLUDED.prompt_tokens,"
        " completion_tokens = t.completion_tokens + EXCLUDED.completion_tokens, cost = t.cost + EXCLUDED.cost,"
        " last_request_at = EXCLUDED.last_request_at",
        (
            request["user_id"],
            request["model"],
            0 if outcome["status"] == "success" else 1,
            prompt,
            completion,
            charged,
        ),
    )
    return charged, balance
