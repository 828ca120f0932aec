"""Settling a finished completion: its hold released, its cost charged with a ledger row, its
usage record and the day's totals written, all in one statement (``queries.settle_request``),
so balances, ledger and usage always agree to the cent. The statement claims the request's
settlement id first (``settlements``' primary key): a request is settled at most once, whatever
code path asks twice. A request whose cost upstream has not reported yet is queued for its
generation lookup in the same statement (``reconciliation``).
"""

from dataclasses import dataclass, field
from decimal import Decimal

from ops_gateway.billing import queries


@dataclass(frozen=True)
class FinishedRequest:
    """One finished completion as it is billed and recorded."""

    settlement_id: str  # made by the gateway for this request: what makes its settlement unique
    user_id: int
    api_key_id: int
    actor: str
    request_id: str
    model: str
    held: Decimal  # the hold taken for it, released by the settlement
    hold_id: int | None  # the hold's credit_holds row (None: nothing was held)
    streamed: bool
    status: str  # success | incomplete | error
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    latency_ms: float
    upstream_status: int | None = None
    error_code: str | None = None
    upstream_latency_ms: float | None = None
    upstream_cost: Decimal | None = None  # what upstream reported it cost (``cost`` is it times the markup)
    markup: Decimal = Decimal(1)  # BILLING_MARKUP at settlement
    generation_id: str | None = None  # a generation whose cost upstream still has to report
    tags: list[str] = field(default_factory=list)  # the caller's request tags
    endpoint: str = "chat"  # chat | embeddings | responses
    served_model: str | None = None  # the model that answered and was billed, when not ``model``


def settle_request(cur, request):
    """Charge and record one ``FinishedRequest``; return (charged, balance_after, the figures of
    each budget it was charged to), or None when it was settled already."""
    row = queries.settle_request(cur, vars(request), charges=request.cost > 0 or request.held > 0)
    if row is None:
        return None
    return row["charged"], row["balance"], [row["user_budget"], row["key_budget"]]
