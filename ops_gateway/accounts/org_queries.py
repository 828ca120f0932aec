"""The organizations' SQL (sql/0024): orgs, their members and the org keys a member holds.

Plain functions taking the cursor first and returning rows as dicts; a unique violation (an org
name taken, a user already a member) comes back as None, rolled back to a savepoint.
"""

from ops_gateway.accounts.queries import unless_unique_violation
from ops_gateway.core.sql_where import Where

ORG_COLUMNS = (
    "o.id, o.name, o.plan, o.status, o.credits, o.reserved_credits, o.allowed_models, o.budget, o.budget_period,"
    " o.budget_alert_thresholds, o.log_payloads, o.created_at, o.updated_at,"
    " (SELECT count(*) FROM org_members m WHERE m.org_id = o.id) AS member_count"
)
ORG_CHANGEABLE = ("name", "plan", "status", "allowed_models", "log_payloads")
MEMBER_COLUMNS = (
    "m.id AS member_id, m.org_id, m.user_id, u.email, m.role, m.budget, m.budget_period, m.budget_alert_thresholds,"
    " m.created_at"
)
ROLES = ("owner", "admin", "member")


def insert_org(cur, name, plan):
    """The new org's id, or None when the name is taken (case-insensitively)."""
    statement = "INSERT INTO organizations (name, plan) VALUES (%s, %s) RETURNING id"
    if not unless_unique_violation(cur, "insert_org", statement, (name, plan)):
        return None
    return cur.fetchone()["id"]


def org_by_id(cur, org_id):
    """One org with its member count, or None."""
    cur.execute(f"SELECT {ORG_COLUMNS} FROM organizations o WHERE o.id = %s", (org_id,))
    return cur.fetchone()


def orgs_page(cur, name=None, status=None, offset=0, limit=50):
    """(total, page) of orgs by id, filtered by name substring and status."""
    where = Where().contains("o.name", name).equal("o.status", status)
    cur.execute(f"SELECT count(*) AS total FROM organizations o WHERE {where.sql}", where.params)
    total = cur.fetchone()["total"]
    cur.execute(
        f"SELECT {ORG_COLUMNS} FROM organizations o WHERE {where.sql} ORDER BY o.id LIMIT %s OFFSET %s",
        where.params + [limit, offset],
    )
    return total, cur.fetchall()


def update_org(cur, org_id, changes):
    """Set ``changes`` (ORG_CHANGEABLE columns); False when the new name is taken."""
    assignments = ", ".join(f"{column} = %s" for column in changes)
    statement = f"UPDATE organizations SET {assignments}, updated_at = now() WHERE id = %s"
    return unless_unique_violation(cur, "update_org", statement, [*changes.values(), org_id])


def insert_member(cur, org_id, user_id, role):
    """Add a member; False when the user is one already."""
    statement = "INSERT INTO org_members (org_id, user_id, role) VALUES (%s, %s, %s)"
    return unless_unique_violation(cur, "insert_member", statement, (org_id, user_id, role))


def member(cur, org_id, user_id, lock=False):
    """A membership with the member's email, or None (``lock``: FOR UPDATE, against a concurrent change)."""
    suffix = " FOR UPDATE OF m" if lock else ""
    cur.execute(
        f"SELECT {MEMBER_COLUMNS} FROM org_members m JOIN users u ON u.id = m.user_id"
        f" WHERE m.org_id = %s AND m.user_id = %s{suffix}",
        (org_id, user_id),
    )
    return cur.fetchone()


def members(cur, org_id, user_id=None):
    """The org's members (or only ``user_id``'s membership), owners first, then by when they joined."""
    where = Where().equal("m.org_id", org_id).equal("m.user_id", user_id)
    cur.execute(
        f"SELECT {MEMBER_COLUMNS} FROM org_members m JOIN users u ON u.id = m.user_id WHERE {where.sql}"
        " ORDER BY array_position(ARRAY['owner', 'admin', 'member'], m.role), m.id",
        where.params,
    )
    return cur.fetchall()


def set_role(cur, org_id, user_id, role):
    """Change a member's role."""
    cur.execute("UPDATE org_members SET role = %s WHERE org_id = %s AND user_id = %s", (role, org_id, user_id))


def lock_owners(cur, org_id):
    """The org's owners' user ids, their rows locked: two owners leaving at once cannot leave none."""
    cur.execute("SELECT user_id FROM org_members WHERE org_id = %s AND role = 'owner' FOR UPDATE", (org_id,))
    return [row["user_id"] for row in cur.fetchall()]


def delete_member(cur, org_id, user_id):
    """Remove a membership."""
    cur.execute("DELETE FROM org_members WHERE org_id = %s AND user_id = %s", (org_id, user_id))


def revoke_member_keys(cur, org_id, user_id):
    """Revoke the member's keys of this org; the revoked keys (id, prefix, last4)."""
    cur.execute(
        "UPDATE api_keys SET status = 'revoked', revoked_at = now()"
        " WHERE org_id = %s AND user_id = %s AND status <> 'revoked' RETURNING id, prefix, last4",
        (org_id, user_id),
    )
    return cur.fetchall()


def memberships_of_user(cur, user_id):
    """The orgs a user belongs to, with their role there."""
    cur.execute(
        "SELECT o.id AS org_id, o.name, o.status, m.role FROM org_members m JOIN organizations o ON o.id = m.org_id"
        " WHERE m.user_id = %s ORDER BY o.id",
        (user_id,),
    )
    return cur.fetchall()
