"""Reconciling provisional charges with upstream's bill.

A request settled without upstream's reported cost (a stream cut by the client, upstream, a
revocation or the maximum duration; an answer without ``usage.cost``) was charged its prompt
bound plus the output delivered, and its generation queued for lookup in the same statement
(``queries.settle_request``). Upstream posts a generation's ``total_cost`` a moment after the
request ends; ``reconcile`` asks for each due one (``fetch``: the OpenRouter client's lookup)
and moves the difference, once, in one transaction. A generation not there yet is asked again
with exponential backoff; after ``MAX_ATTEMPTS`` its provisional charge stands.
"""

import logging
import time
from decimal import Decimal

from ops_gateway.billing import pricing, reconciliation_queries
from ops_gateway.core import db

logger = logging.getLogger("ops_gateway.billing")

BATCH = 200  # lookups read at a time
RUN_SECONDS = 20.0  # a run stops taking batches after this, well within the job's 30 s interval
FIRST_RETRY_SECONDS = 5
MAX_RETRY_SECONDS = 3600
MAX_ATTEMPTS = 12  # about 4 hours of backoff in all


def retry_delay(attempts):
    """Seconds before the next lookup after ``attempts`` failed ones (doubling, capped)."""
    return min(FIRST_RETRY_SECONDS * 2**attempts, MAX_RETRY_SECONDS)


def billed(generation):
    """(cost, prompt tokens, completion tokens) upstream billed for a generation's ``data``, or
    None when it reports no usable cost; tokens are upstream's native counts when given."""
    cost = pricing.reported_cost({"cost": generation.get("total_cost")})
    if cost is None:
        return None
    tokens = [
        next((n for n in (generation.get(f"native_{field}"), generation.get(field)) if pricing.is_token_count(n)), None)
        for field in ("tokens_prompt", "tokens_completion")
    ]
    return cost, *tokens


def reconcile(fetch, run_seconds=RUN_SECONDS):
    """Look up every due generation with ``fetch(generation_id)`` (its data; None when it is not
    there yet or upstream failed) and settle the difference, batch after batch for at most
    ``run_seconds``; return the counts."""
    report = {"reconciled": 0, "postponed": 0, "given_up": 0, "charged_more": "0", "refunded": "0"}
    more = refunded = Decimal(0)
    deadline = time.monotonic() + run_seconds
    while time.monotonic() < deadline:
        with db.transaction() as cur:
            due = reconciliation_queries.due_lookups(cur, BATCH)
        if not due:
            break
        for lookup in due:  # each one leaves the due set: reconciled, postponed or dropped
            generation = fetch(lookup["generation_id"])
            bill = billed(generation) if generation else None
            with db.transaction() as cur:
                if bill is None:
                    _postpone_or_drop(cur, lookup, report)
                    continue
                moved = reconciliation_queries.apply_upstream_bill(cur, lookup["settlement_id"], *bill)
            if moved:
                report["reconciled"] += 1
                more += max(moved["delta"], 0)
                refunded += max(-moved["delta"], 0)
    report["charged_more"], report["refunded"] = f"{more:f}", f"{refunded:f}"
    with db.transaction() as cur:
        report.update(reconciliation_queries.pending(cur))
    return report


def _postpone_or_drop(cur, lookup, report):
    if lookup["attempts"] + 1 >= MAX_ATTEMPTS:
        reconciliation_queries.drop(cur, lookup["settlement_id"])
        report["given_up"] += 1
        logger.warning(
            "generation never reported; the provisional charge stands",
            extra={"generation_id": lookup["generation_id"]},
        )
        return
    reconciliation_queries.postpone(cur, lookup["settlement_id"], retry_delay(lookup["attempts"]))
    report["postponed"] += 1
