"""The credit ledger: every balance change is a ledger row written in the same transaction, and
holds are given back when a request ends without reaching upstream."""

from decimal import Decimal

import psycopg2

from ops_gateway.billing import queries
from ops_gateway.billing.money import format_money
from ops_gateway.core.errors import Conflict, NotFound, PaymentRequired

MAX_BALANCE = Decimal("9999999999")  # numeric(20, 10) holds less than 10^10


def adjust(cur, owner_id, amount, kind, reason, actor, request_id=None, owner="user"):
    """Add (or, negative, remove) credits of a user or an org (``owner``); never below what
    in-flight requests hold. Returns the balance."""
    amount = Decimal(amount)
    try:
        balance = queries.add_credits(cur, owner_id, amount, owner)
    except psycopg2.errors.NumericValueOutOfRange:
        # The transaction is aborted; the caller's block rolls it back when this propagates.
        raise Conflict(
            f"the balance cannot exceed {MAX_BALANCE}", {"amount": format_money(amount)}, code="credit_limit_exceeded"
        ) from None
    if balance is None:
        existing = queries.balance(cur, owner_id, owner)
        if existing is None:
            raise NotFound(f"{owner} {owner_id} does not exist", code=f"{owner}_not_found")
        raise Conflict(
            "the debit would take the balance below zero",
            {
                "credits": format_money(existing["credits"]),
                "reserved": format_money(existing["reserved_credits"]),
                "amount": format_money(amount),
            },
            code="insufficient_credits",
        )
    queries.insert_ledger_row(cur, owner_id, amount, balance, kind, reason, actor, request_id, owner)
    return balance


def hold_lifetime_seconds(config):
    """The longest a request holding credits can live: a stream cut at MAX_STREAM_SECONDS, after
    at most one more upstream read, one blocked write to a slow client and the upstream queue,
    plus a minute for its settlement. A hold older than this belongs to a request that is gone."""
    return (
        config["MAX_STREAM_SECONDS"]
        + config["OPENROUTER_TIMEOUT_SECONDS"]
        + config["CLIENT_BODY_TIMEOUT_SECONDS"]
        + config["UPSTREAM_QUEUE_SECONDS"]
        + 60
    )


def release(cur, hold_id):
    """Give back one request's hold without charging (the request was refused before upstream)."""
    queries.release_hold(cur, hold_id)


def release_expired_holds(cur, config):
    """Release the holds of requests that can no longer be running (a killed worker, an outage
    between hold and settlement); return {holds, users} released."""
    return queries.release_expired_holds(cur, hold_lifetime_seconds(config))


def payment_required(principal, model_id, worst_case):
    """The 402 for a completion whose hold was not taken: a balance in debt refuses every
    completion, even a free one (a debt is paid before anything more is served); otherwise the
    balance cannot cover the request's worst case (``pricing.WorstCase``)."""
    credits_now = principal["credits"]
    if credits_now < 0:
        return PaymentRequired(
            "your balance is in debt: add credits before making further requests",
            {"credits": format_money(credits_now), "model": model_id},
            code="insufficient_credits",
        )
    return PaymentRequired(
        "your credits cannot cover this request's maximum cost",
        {"required": str(worst_case.cost), "model": model_id, "max_tokens": worst_case.completion_tokens},
        code="insufficient_credits",
    )
