"""Organizations for tests: an org made through /admin/orgs, members with org keys, the org's books."""

from itertools import count

from tests.helpers import ADMIN, create_key, create_user

_names = count()


def create_org(client, **fields):
    """POST /admin/orgs (plan team unless given); the new org."""
    body = {"name": f"Org {next(_names)}", "plan": "team", **fields}
    response = client.post("/admin/orgs", json=body, headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def add_member(client, org_id, user_id, role="member", headers=ADMIN, **fields):
    """Add a member through /admin/orgs (the bootstrap key) or, with a member's headers, /org; the response."""
    base = "admin/orgs" if headers is ADMIN else "org"
    body = {"user_id": user_id, "role": role, **fields}
    return client.post(f"/{base}/{org_id}/members", json=body, headers=headers)


def org_key(client, key, org_id, **fields):
    """(key dict, full key) of a new key of the org, made with the member's ``key``."""
    return create_key(client, key, name=f"org-{org_id}-{next(_names)}", org_id=org_id, **fields)


def member_with_key(client, org_id, role="member", credits="5.00", **member_fields):
    """A new user (with personal credits) made a member of the org: (user, personal key, org key)."""
    user, key = create_user(client, credits=credits, plan="team")
    assert add_member(client, org_id, user["id"], role, **member_fields).status_code == 201
    _, okey = org_key(client, key, org_id)
    return user, key, okey


def org_books(sql, org_id):
    """The org's balance, holds and cap figures, its usage and its ledger's sum."""
    [row] = sql(
        "SELECT o.credits, o.reserved_credits, o.budget_spent, o.budget_reserved,"
        " (SELECT coalesce(sum(cost), 0) FROM usage_records WHERE org_id = o.id) AS usage,"
        " (SELECT coalesce(sum(amount), 0) FROM credit_transactions WHERE org_id = o.id) AS ledger"
        " FROM organizations o WHERE o.id = %s",
        (org_id,),
    )
    return row
