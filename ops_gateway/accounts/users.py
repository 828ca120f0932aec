"""Users: creation (with their first key), lookup, listing and status/role/plan changes."""

from decimal import Decimal

from ops_gateway.accounts import api_keys, queries
from ops_gateway.billing import budgets, credits
from ops_gateway.billing.money import format_money
from ops_gateway.core.errors import Conflict, Invalid, NotFound
from ops_gateway.telemetry import audit


def check_plan(cur, plan):
    """422 ``unknown_plan`` unless the plan exists (users and orgs name one)."""
    if not queries.plan_exists(cur, plan):
        raise Invalid(f"there is no plan named {plan!r}", {"plan": plan}, code="unknown_plan")


def create_user(cur, email, actor, username=None, initial_credits=Decimal("0"), plan="trial", role="user"):
    """Insert a user, their opening ledger row and their first API key; return (user, key, full key)."""
    check_plan(cur, plan)
    user = queries.insert_user(cur, email, username, plan, role)
    if user is None:
        raise Conflict("a user with this email already exists", {"email": email}, code="email_taken")
    audit.record(cur, "user_created", actor, user["id"], details={"plan": plan, "role": role})
    if initial_credits > 0:
        user["credits"] = adjust_credits(cur, user["id"], initial_credits, "opening balance", actor, kind="initial")
    key, full_key = api_keys.create_key(cur, user["id"], "default", actor)
    return user, key, full_key


def create_requested_user(cur, request, actor, default_plan):
    """``create_user`` from the fields of a create-user request (the admin API's and the dashboard's
    form, both validated by one schema): email and role, optional username, plan and opening credits."""
    return create_user(
        cur,
        request["email"],
        actor,
        username=request.get("username"),
        initial_credits=request.get("credits") or 0,
        plan=request.get("plan") or default_plan,
        role=request["role"],
    )


def get_user(cur, user_id):
    """One user, or NotFound."""
    user = queries.user_by_id(cur, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist", code="user_not_found")
    return user


def list_users(cur, email=None, status=None, offset=0, limit=50):
    """(total, page) of users, filtered by email substring and status."""
    return queries.users_page(cur, email, status, offset, limit)


def update_user(cur, user_id, changes, actor):
    """Change status, role, plan, allowed models or budget; suspension takes effect on the next
    request (auth reads it)."""
    get_user(cur, user_id)
    if "plan" in changes:
        check_plan(cur, changes["plan"])
    allowed = {k: v for k, v in changes.items() if k in queries.USER_CHANGEABLE}
    if allowed:
        queries.update_user(cur, user_id, allowed)
    if budgets.apply_changes(cur, "user", user_id, changes) or allowed:
        audit.record(cur, "user_updated", actor, user_id, details={"changes": api_keys.audit_safe(changes)})
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
