"""Organizations: a shared balance, plan, model allowlist and spend cap, and their members.

Operators manage every org through /admin/orgs; an org's owners and admins manage its members
through /org/<id> with their own keys (``acting_member``, ``check_manages``). Every change is
audited with its actor and the org's id. A member leaving revokes their keys of the org at once.
"""

from ops_gateway.accounts import api_keys, key_material, org_membership, org_queries, queries, users
from ops_gateway.billing import budgets, credits
from ops_gateway.billing.money import format_money
from ops_gateway.core.errors import Conflict, Forbidden, NotFound
from ops_gateway.telemetry import audit

MANAGERS = ("owner", "admin")  # the roles that manage an org's members and read all its usage


def _name_taken(name):
    return Conflict("an organization with this name already exists", {"name": name}, code="org_name_taken")


def get_org(cur, org_id):
    """One org, or 404 ``org_not_found``."""
    org = org_queries.org_by_id(cur, org_id)
    if org is None:
        raise org_membership.org_not_found(org_id)
    return org


def list_orgs(cur, name=None, status=None, offset=0, limit=50):
    """(total, page) of orgs, filtered by name substring and status."""
    return org_queries.orgs_page(cur, name, status, offset, limit)


def create_org(cur, request, actor, default_plan):
    """An org from a create request (name; optional plan, opening credits, allowed models and cap)."""
    plan = request.get("plan") or default_plan
    users.check_plan(cur, plan)
    org_id = org_queries.insert_org(cur, request["name"], plan)
    if org_id is None:
        raise _name_taken(request["name"])
    if "allowed_models" in request:
        org_queries.update_org(cur, org_id, {"allowed_models": request["allowed_models"]})
    budgets.apply_changes(cur, "org", org_id, request)
    audit.record(cur, "org_created", actor, details={"org_id": org_id, **api_keys.audit_safe(request)})
    if request.get("credits"):
        adjust_credits(cur, org_id, request["credits"], "opening balance", actor, kind="initial")
    return get_org(cur, org_id)


def update_org(cur, org_id, changes, actor):
    """Rename, change plan, status (a suspended org's keys stop at once), allowed models or cap."""
    get_org(cur, org_id)
    if "plan" in changes:
        users.check_plan(cur, changes["plan"])
    columns = {column: changes[column] for column in org_queries.ORG_CHANGEABLE if column in changes}
    if columns and not org_queries.update_org(cur, org_id, columns):
        raise _name_taken(changes["name"])
    if budgets.apply_changes(cur, "org", org_id, changes) or columns:
        audit.record(cur, "org_updated", actor, details={"org_id": org_id, "changes": api_keys.audit_safe(changes)})
    return get_org(cur, org_id)


def adjust_credits(cur, org_id, amount, reason, actor, request_id=None, kind=None):
    """Grant (positive) or remove (negative) org credits: one ledger row naming the org, audited."""
    kind = kind or ("grant" if amount > 0 else "debit")
    balance = credits.adjust(cur, org_id, amount, kind, reason, actor, request_id, owner="org")
    details = {"org_id": org_id, "amount": format_money(amount), "reason": reason}
    audit.record(cur, "org_credits_adjusted", actor, details={**details, "balance_after": format_money(balance)})
    return balance


def list_members(cur, org_id, only_user_id=None):
    """The org's members (or one member's own row)."""
    return org_queries.members(cur, org_id, only_user_id)


def get_member(cur, org_id, user_id, lock=False):
    """One membership of the org, or 404 ``member_not_found``."""
    membership = org_queries.member(cur, org_id, user_id, lock)
    if membership is None:
        raise NotFound(f"user {user_id} is not a member of organization {org_id}", code="member_not_found")
    return membership


def add_member(cur, org_id, request, actor):
    """Add a user with a role and, optionally, an org budget no higher than the org's."""
    get_org(cur, org_id)
    user_id = request["user_id"]
    if queries.user_by_id(cur, user_id) is None:
        raise NotFound(f"user {user_id} does not exist", code="user_not_found")
    if not org_queries.insert_member(cur, org_id, user_id, request["role"]):
        raise Conflict("the user is a member already", {"user_id": user_id}, code="already_member")
    membership = get_member(cur, org_id, user_id)
    budgets.apply_changes(cur, "member", membership["member_id"], request, ceiling=("org", org_id))
    details = {"org_id": org_id, **api_keys.audit_safe(request)}
    audit.record(cur, "org_member_added", actor, user_id, details=details)
    return get_member(cur, org_id, user_id)


def update_member(cur, org_id, user_id, changes, actor):
    """Change a member's role or org budget (never above the org's); the last owner stays one."""
    membership = get_member(cur, org_id, user_id, lock=True)
    new_role = changes.get("role", membership["role"])
    if new_role != membership["role"]:
        if membership["role"] == "owner":
            _keep_an_owner(cur, org_id, user_id)
        org_queries.set_role(cur, org_id, user_id, new_role)
    capped = budgets.apply_changes(cur, "member", membership["member_id"], changes, ceiling=("org", org_id))
    if capped or new_role != membership["role"]:
        details = {"org_id": org_id, "changes": api_keys.audit_safe(changes)}
        audit.record(cur, "org_member_updated", actor, user_id, details=details)
    return get_member(cur, org_id, user_id)


def remove_member(cur, org_id, user_id, actor):
    """Remove a member (the last owner stays) and revoke their keys of the org at once."""
    membership = get_member(cur, org_id, user_id, lock=True)
    if membership["role"] == "owner":
        _keep_an_owner(cur, org_id, user_id)
    revoked = org_queries.revoke_member_keys(cur, org_id, user_id)
    for key in revoked:
        masked = key_material.mask(key["prefix"], key["last4"])
        audit.record(cur, "delete", actor, user_id, key["id"], {"reason": "left_org", "org_id": org_id, "key": masked})
    org_queries.delete_member(cur, org_id, user_id)
    details = {"org_id": org_id, "role": membership["role"], "revoked_keys": [key["id"] for key in revoked]}
    audit.record(cur, "org_member_removed", actor, user_id, details=details)
    return membership


def _keep_an_owner(cur, org_id, user_id):
    """409 ``last_owner`` when ``user_id`` is the org's only owner (an org always has someone to run it)."""
    if org_queries.lock_owners(cur, org_id) == [user_id]:
        raise Conflict("an organization keeps at least one owner", {"user_id": user_id}, code="last_owner")


def acting_member(cur, org_id, user_id):
    """The caller's membership of the org, or 404 ``org_not_found`` (outsiders learn nothing)."""
    membership = org_queries.member(cur, org_id, user_id)
    if membership is None:
        raise org_membership.org_not_found(org_id)
    return membership


def check_manages(cur, actor, user_id=None, new_role=None):
    """403 ``org_role_required`` unless ``actor`` (a membership) may manage the member ``user_id``
    (None: one being added) and give them ``new_role``: owners manage anyone, admins everyone but
    owners."""
    target = org_queries.member(cur, actor["org_id"], user_id) if user_id is not None else None
    target_role = target["role"] if target else None
    if actor["role"] not in MANAGERS:
        raise Forbidden("only the organization's owners and admins manage it", code="org_role_required")
    if actor["role"] != "owner" and "owner" in (target_role, new_role):
        raise Forbidden("only an owner manages the organization's owners", code="org_role_required")


def visible_member(actor):
    """Whose rows ``actor`` (a membership) sees of the org's members and usage: everyone's (None)
    for owners and admins, else only their own user id."""
    return None if actor["role"] in MANAGERS else actor["user_id"]


def memberships(cur, user_id):
    """The orgs a user belongs to and their role in each."""
    return org_queries.memberships_of_user(cur, user_id)
