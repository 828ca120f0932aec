"""Users: creation (with their first key), lookup, listing and status/role/plan changes."""

from decimal import Decimal

import psycopg2

from ops_gateway.accounts import api_keys, audit
from ops_gateway.billing import credits
from ops_gateway.billing.money import format_money
from ops_gateway.core.errors import Conflict, Invalid, NotFound

USER_COLUMNS = "id, email, username, role, status, plan, credits, reserved_credits, created_at, updated_at"


def _check_plan(cur, plan):
    cur.execute("SELECT 1 FROM plans WHERE name = %s", (plan,))
    if cur.fetchone() is None:
        raise Invalid(f"there is no plan named {plan!r}", {"plan": plan}, code="unknown_plan")


def create_user(cur, email, actor, username=None, initial_credits=Decimal("0"), plan="trial", role="user"):
    """Insert a user, their opening ledger row and their first API key; return (user, key, full key)."""
    _check_plan(cur, plan)
    cur.execute("SAVEPOINT create_user")
    try:
        cur.execute(
            f"INSERT INTO users (email, username, plan, role) VALUES (%s, %s, %s, %s) RETURNING {USER_COLUMNS}",
            (email, username, plan, role),
        )
    except psycopg2.errors.UniqueViolation:
        cur.execute("ROLLBACK TO SAVEPOINT create_user")
        raise Conflict("a user with this email already exists", {"email": email}, code="email_taken") from None
    user = cur.fetchone()
    audit.record(cur, "user_created", actor, user["id"], details={"plan": plan, "role": role})
    if initial_credits > 0:
        user["credits"] = adjust_credits(cur, user["id"], initial_credits, "opening balance", actor, kind="initial")
    key, full_key = api_keys.create_key(cur, user["id"], "default", actor)
    return user, key, full_key


def get_user(cur, user_id):
    """One user or a 404 envelope."""
    cur.execute(f"SELECT {USER_COLUMNS} FROM users WHERE id = %s", (user_id,))
    user = cur.fetchone()
    if user is None:
        raise NotFound(f"user {user_id} does not exist", code="user_not_found")
    return user


def list_users(cur, email=None, status=None, offset=0, limit=50):
    """(total, page) of users, filtered by email substring and status."""
    clauses, params = [], []
    if email:
        clauses.append("lower(email) LIKE %s")
        escaped = email.lower().replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
        params.append(f"%{escaped}%")
    if status:
        clauses.append("status = %s")
        params.append(status)
    where = " AND ".join(clauses) or "TRUE"
    cur.execute(f"SELECT count(*) AS total FROM users WHERE {where}", params)
    total = cur.fetchone()["total"]
    cur.execute(
        f"SELECT {USER_COLUMNS} FROM users WHERE {where} ORDER BY id LIMIT %s OFFSET %s", params + [limit, offset]
    )
    return total, cur.fetchall()


def update_user(cur, user_id, changes, actor):
    """Change status, role or plan; suspension takes effect on the next request (auth reads it)."""
    get_user(cur, user_id)
    if "plan" in changes:
        _check_plan(cur, changes["plan"])
    allowed = {k: v for k, v in changes.items() if k in ("status", "role", "plan", "username")}
    if allowed:
        assignments = ", ".join(f"{column} = %s" for column in allowed)
        cur.execute(
            f"UPDATE users SET {assignments}, updated_at = now() WHERE id = %s",
            list(allowed.values()) + [user_id],
        )
        audit.record(cur, "user_updated", actor, user_id, details={"changes": allowed})
    return get_user(cur, user_id)


def adjust_credits(cur, user_id, amount, reason, actor, request_id=None, kind=None):
    """An admin's grant (positive) or debit (negative): ledger row plus credits_adjusted audit row."""
    kind = kind or ("grant" if amount > 0 else "debit")
    balance = credits.adjust(cur, user_id, amount, kind, reason, actor, request_id)
    audit.record(
        cur,
        "credits_adjusted",
        actor,
        user_id,
        details={"amount": format_money(amount), "reason": reason, "balance_after": format_money(balance)},
    )
    return balance


def user_for_key(cur, api_key):
    """The user owning a full key (admin limit changes by key); 404 when unknown."""
    row = api_keys.find_by_full_key(cur, api_key)
    if row is None:
        raise NotFound("no API key matches", code="api_key_not_found")
    return row["user_id"]
