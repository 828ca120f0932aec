"""The credit ledger: every balance change is a ledger row written in the same transaction."""

from decimal import Decimal

from ops_gateway.errors import ApiError


def adjust(cur, user_id, amount, kind, reason, actor, request_id=None):
    """Add (or, negative, remove) credits; never below what in-flight requests hold. Returns the balance."""
    amount = Decimal(amount)
    cur.execute(
        "UPDATE users SET credits = credits + %s, updated_at = now()"
        " WHERE id = %s AND credits + %s >= reserved_credits RETURNING credits",
        (amount, user_id, amount),
    )
    row = cur.fetchone()
    if row is None:
        cur.execute("SELECT credits, reserved_credits FROM users WHERE id = %s", (user_id,))
        existing = cur.fetchone()
        if existing is None:
            raise ApiError(404, "user_not_found", f"user {user_id} does not exist")
        raise ApiError(
            409,
            "insufficient_credits",
            "the debit would take the balance below zero",
            {"credits": str(existing["credits"]), "reserved": str(existing["reserved_credits"]), "amount": str(amount)},
        )
    _ledger(cur, user_id, amount, row["credits"], kind, reason, actor, request_id)
    return row["credits"]


def _ledger(cur, user_id, amount, balance_after, kind, reason, actor, request_id):
    cur.execute(
        "INSERT INTO credit_transactions (user_id, amount, balance_after, kind, reason, actor, request_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (user_id, amount, balance_after, kind, reason, actor, request_id),
    )


def reserve(cur, user_id, amount):
    """Hold ``amount`` for a request in flight; False when the spendable balance cannot cover it."""
    cur.execute(
        "UPDATE users SET reserved_credits = reserved_credits + %s"
        " WHERE id = %s AND credits - reserved_credits >= %s RETURNING credits - reserved_credits AS spendable",
        (amount, user_id, amount),
    )
    return cur.fetchone() is not None


def release(cur, user_id, amount):
    """Give back a hold without charging (upstream failed, nothing was used)."""
    cur.execute(
        "UPDATE users SET reserved_credits = GREATEST(reserved_credits - %s, 0) WHERE id = %s",
        (amount, user_id),
    )


def settle(cur, user_id, reserved, cost, actor, request_id, reason):
    """Release the hold and charge the exact cost, capped at the balance, with its ledger row.

    Returns (charged, balance_after). The cap only bites when the real usage exceeded the
    reserved worst case and the user has nothing left; the balance never goes negative.
    """
    cur.execute(
        "UPDATE users u SET reserved_credits = GREATEST(u.reserved_credits - %(reserved)s, 0),"
        " credits = u.credits - LEAST(%(cost)s, b.old), updated_at = now()"
        " FROM (SELECT credits AS old FROM users WHERE id = %(user_id)s FOR UPDATE) b"
        " WHERE u.id = %(user_id)s RETURNING u.credits, LEAST(%(cost)s, b.old) AS charged",
        {"reserved": reserved, "cost": cost, "user_id": user_id},
    )
    row = cur.fetchone()
    if row["charged"] > 0:
        _ledger(cur, user_id, -row["charged"], row["credits"], "usage", reason, actor, request_id)
    return row["charged"], row["credits"]
