"""The credit ledger: every balance change is a ledger row written in the same transaction."""

from decimal import Decimal

import psycopg2

from ops_gateway.billing.money import format_money
from ops_gateway.core.errors import Conflict, NotFound

MAX_BALANCE = Decimal("9999999999")  # numeric(20, 10) holds less than 10^10


def adjust(cur, user_id, amount, kind, reason, actor, request_id=None):
    """Add (or, negative, remove) credits; never below what in-flight requests hold. Returns the balance."""
    amount = Decimal(amount)
    try:
        cur.execute(
            "UPDATE users SET credits = credits + %s, updated_at = now()"
            " WHERE id = %s AND credits + %s >= reserved_credits RETURNING credits",
            (amount, user_id, amount),
        )
    except psycopg2.errors.NumericValueOutOfRange:
        # The transaction is aborted; the caller's block rolls it back when this propagates.
        raise Conflict(
            f"the balance cannot exceed {MAX_BALANCE}", {"amount": format_money(amount)}, code="credit_limit_exceeded"
        ) from None
    row = cur.fetchone()
    if row is None:
        cur.execute("SELECT credits, reserved_credits FROM users WHERE id = %s", (user_id,))
        existing = cur.fetchone()
        if existing is None:
            raise NotFound(f"user {user_id} does not exist", code="user_not_found")
        raise Conflict(
            "the debit would take the balance below zero",
            {
                "credits": format_money(existing["credits"]),
                "reserved": format_money(existing["reserved_credits"]),
                "amount": format_money(amount),
            },
            code="insufficient_credits",
        )
    _ledger(cur, user_id, amount, row["credits"], kind, reason, actor, request_id)
    return row["credits"]


def _ledger(cur, user_id, amount, balance_after, kind, reason, actor, request_id):
    cur.execute(
        "INSERT INTO credit_transactions (user_id, amount, balance_after, kind, reason, actor, request_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (user_id, amount, balance_after, kind, reason, actor, request_id),
    )


def release(cur, user_id, amount):
    """Give back a hold without charging (upstream failed, nothing was used)."""
    cur.execute(
        "UPDATE users SET reserved_credits = GREATEST(reserved_credits - %s, 0) WHERE id = %s",
        (amount, user_id),
    )


# Settling a request as WITH-clause parts, so callers can add their own writes to the same single
# statement (one round trip; the parts commit or fail together): release the hold, charge the cost
# capped at the balance, and write the ledger row when anything was charged. ``charge`` yields
# (charged, balance). Parameters: user_id, reserved, cost, actor, request_id, reason. The cap only
# bites when the real usage exceeded the held worst case and the user has nothing left: the
# balance never goes negative. (The hold itself is taken by the key lookup, auth._KEY_AND_HOLD_QUERY.)
SETTLE_CTE = """
charge AS (
    UPDATE users u SET reserved_credits = GREATEST(u.reserved_credits - %(reserved)s, 0),
           credits = u.credits - LEAST(%(cost)s, b.old), updated_at = now()
    FROM (SELECT credits AS old FROM users WHERE id = %(user_id)s FOR UPDATE) b
    WHERE u.id = %(user_id)s
    RETURNING LEAST(%(cost)s, b.old) AS charged, u.credits AS balance
), ledger AS (
    INSERT INTO credit_transactions (user_id, amount, balance_after, kind, reason, actor, request_id)
    SELECT %(user_id)s, -charged, balance, 'usage', %(reason)s, %(actor)s, %(request_id)s
    FROM charge WHERE charged > 0
)"""


def release_stale_holds(cur, older_than_seconds):
    """Release holds untouched for longer than any request can run; return how many users were freed."""
    cur.execute(
        "UPDATE users SET reserved_credits = 0 WHERE reserved_credits > 0"
        " AND reserved_at < now() - make_interval(secs => %s) RETURNING id",
        (older_than_seconds,),
    )
    return len(cur.fetchall())
