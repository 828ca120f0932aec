"""Settling a finished completion: its charge, ledger row, usage record and daily totals.

A finished request is settled in one statement: the credit hold is released, the exact
cost charged with its ledger row, the ``usage_records`` row written and the per-day totals
bumped — so balances, ledger and usage always agree to the cent.
"""

from dataclasses import dataclass
from decimal import Decimal

from ops_gateway.billing import credits
from ops_gateway.core import db

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


@dataclass(frozen=True)
class FinishedRequest:
    """One finished completion as it is billed and recorded."""

    user_id: int
    api_key_id: int
    actor: str
    request_id: str
    model: str
    held: Decimal  # the hold taken for it, released by the settlement
    streamed: bool
    status: str  # success | incomplete | error
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    latency_ms: float
    upstream_status: int | None = None
    error_code: str | None = None
    upstream_latency_ms: float | None = None


def settle_request(cur, request):
    """Charge and record one ``FinishedRequest`` in one statement; return (charged, balance_after).

    The hold's release, the charge, its ledger row, the usage row and the day's totals are one
    statement (see ``credits.SETTLE_CTE``): one round trip, and they commit or fail together
    even outside an explicit transaction.
    """
    charges = request.cost > 0 or request.held > 0
    prompt, completion = request.prompt_tokens, request.completion_tokens
    upstream_ms = request.upstream_latency_ms
    params = {
        "user_id": request.user_id,
        "reserved": request.held,
        "cost": request.cost,
        "actor": request.actor,
        "request_id": request.request_id,
        "reason": f"usage: {request.model}",
        "api_key_id": request.api_key_id,
        "model": request.model,
        "prompt": prompt,
        "completion": completion,
        "total": prompt + completion,
        "status": request.status,
        "errors": 0 if request.status == "success" else 1,
        "upstream_status": request.upstream_status,
        "error_code": request.error_code,
        "latency_ms": request.latency_ms,
        "upstream_ms": upstream_ms,
        "overhead_ms": None if upstream_ms is None else max(request.latency_ms - upstream_ms, 0.0),
        "streamed": request.streamed,
    }
    (_SETTLE if charges else _RECORD_FREE).execute(cur, params)
    row = cur.fetchone()
    return row["charged"], row["balance"]
