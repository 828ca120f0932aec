"""Settling a finished completion: its hold released, its cost charged with a ledger row, its
usage record and the day's totals written, all in one statement (``queries.settle_request``),
so balances, ledger and usage always agree to the cent. The statement claims the request's
settlement id first (``settlements``' primary key): a request is settled at most once, whatever
code path asks twice. A request whose cost upstream has not reported yet is queued for its
generation lookup in the same statement (``reconciliation``).
"""

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from ops_gateway.billing import queries
from ops_gateway.billing.money import format_money

logger = logging.getLogger("ops_gateway.billing")


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
    org_id: int | None = None  # an org key's org: charged instead of the user
    client_ip: str | None = None  # the caller's address, canonical (None: not an IP)
    cache_hit: bool = False  # answered by the response cache, not upstream


def settle_request(cur, request):
    """Charge and record one ``FinishedRequest``; return (charged, balance_after, the figures of
    each budget it was charged to), or None when it was settled already (logged: a code path
    asked twice). A charge above the hold is logged too (and marked ``exceeded_hold``)."""
    row = queries.settle_request(cur, vars(request), charges=request.cost > 0 or request.held > 0)
    if row is None:
        logger.error("a second settlement was refused", extra={"request_id": request.request_id})
        return None
    if row["charged"] > request.held:
        logger.warning(
            "charge exceeded the hold",
            extra={
                "request_id": request.request_id,
                "user_id": request.user_id,
                "held": format_money(request.held),
                "charged": format_money(row["charged"]),
                "balance": format_money(row["balance"]),
            },
        )
    return row["charged"], row["balance"], [row[f"{scope}_budget"] for scope in ("user", "org", "member", "key")]
