"""Who may hold an org key: the rules ``api_keys`` asks of an org before it makes or bounds one."""

from ops_gateway.accounts import org_queries
from ops_gateway.core.errors import Conflict, NotFound


def org_not_found(org_id):
    """The 404 for an org the caller is not in: an outsider cannot tell it from one that does not exist."""
    return NotFound(f"organization {org_id} does not exist", code="org_not_found")


def check_key_org(cur, org_id, user_id):
    """404 unless the user is a member of the org; 409 ``org_suspended`` while the org is suspended."""
    membership = org_queries.member(cur, org_id, user_id)
    if membership is None:
        raise org_not_found(org_id)
    if org_queries.org_by_id(cur, org_id)["status"] != "active":
        raise Conflict("the organization is suspended", {"org_id": org_id}, code="org_suspended")


def member_id(cur, org_id, user_id):
    """The membership row's id (an org key's budget ceiling), or None when the user has left."""
    membership = org_queries.member(cur, org_id, user_id)
    return membership["member_id"] if membership else None
