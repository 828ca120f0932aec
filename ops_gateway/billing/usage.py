"""Pricing and usage accounting: what a request may cost, what it did cost, and its records.

A finished request is settled in one statement: the credit hold is released, the exact
cost charged with its ledger row, the ``usage_records`` row written and the per-day totals
bumped — so balances, ledger and usage always agree to the cent.
"""

from decimal import ROUND_HALF_UP, Decimal

from ops_gateway.billing import credits
from ops_gateway.core import db

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


# With nothing held and nothing to charge (free models) the user's row is not touched.
_NO_CHARGE_CTE = "charge AS (SELECT 0::numeric AS charged, NULL::numeric AS balance)"

# The usage row and the day's totals, at what ``charge`` charged; appended to the charge parts.
_RECORD_CTE = """, record AS (
    INSERT INTO usage_records (request_id, user_id, api_key_id, model, prompt_tokens, completion_tokens,
        total_tokens, cost, status, upstream_status, error_code, latency_ms, upstream_latency_ms, overhead_ms,
        streamed)
    SELECT %(request_id)s, %(user_id)s, %(api_key_id)s, %(model)s, %(prompt)s, %(completion)s, %(total)s, charged,
           %(status)s, %(upstream_status)s, %(error_code)s, %(latency_ms)s, %(upstream_ms)s, %(overhead_ms)s,
           %(streamed)s
    FROM charge
), daily AS (
    INSERT INTO usage_daily_totals AS t (day, user_id, model, requests, errors, prompt_tokens, completion_tokens,
        cost, last_request_at)
    SELECT (now() AT TIME ZONE 'UTC')::date, %(user_id)s, %(model)s, 1, %(errors)s, %(prompt)s, %(completion)s,
           charged, now()
    FROM charge
    ON CONFLICT (user_id, day, model) DO UPDATE SET requests = t.requests + 1,
        errors = t.errors + EXCLUDED.errors, prompt_tokens = t.prompt_tokens + EXCLUDED.prompt_tokens,
        completion_tokens = t.completion_tokens + EXCLUDED.completion_tokens, cost = t.cost + EXCLUDED.cost,
        last_request_at = EXCLUDED.last_request_at
)
SELECT charged, balance FROM charge"""

_SETTLE = db.Prepared("settle_request", f"WITH {credits.SETTLE_CTE}{_RECORD_CTE}")
_RECORD_FREE = db.Prepared("record_free_request", f"WITH {_NO_CHARGE_CTE}{_RECORD_CTE}")


def settle_request(cur, request, outcome):
    """Charge and record one finished request in one statement; return (charged, balance_after).

    The hold's release, the charge, its ledger row, the usage row and the day's totals are one
    statement (see ``credits.SETTLE_CTE``): one round trip, and they commit or fail together
    even outside an explicit transaction.

    ``request``: user_id, api_key_id, request_id, model, reserved, streamed, actor.
    ``outcome``: status, prompt_tokens, completion_tokens, cost, upstream_status, error_code,
    latency_ms, upstream_latency_ms.
    """
    charges = outcome["cost"] > 0 or request["reserved"] > 0
    prompt, completion = outcome["prompt_tokens"], outcome["completion_tokens"]
    upstream_ms = outcome.get("upstream_latency_ms")
    params = {
        "user_id": request["user_id"],
        "reserved": request["reserved"],
        "cost": outcome["cost"],
        "actor": request["actor"],
        "request_id": request["request_id"],
        "reason": f"usage: {request['model']}",
        "api_key_id": request["api_key_id"],
        "model": request["model"],
        "prompt": prompt,
        "completion": completion,
        "total": prompt + completion,
        "status": outcome["status"],
        "errors": 0 if outcome["status"] == "success" else 1,
        "upstream_status": outcome.get("upstream_status"),
        "error_code": outcome.get("error_code"),
        "latency_ms": outcome["latency_ms"],
        "upstream_ms": upstream_ms,
        "overhead_ms": None if upstream_ms is None else max(outcome["latency_ms"] - upstream_ms, 0.0),
        "streamed": request["streamed"],
    }
    (_SETTLE if charges else _RECORD_FREE).execute(cur, params)
    row = cur.fetchone()
    return row["charged"], row["balance"]
