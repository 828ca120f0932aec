"""/dashboard/orgs/<id>/members: add a user to an org, change a member's role or org budget, remove a member.

The admin API's member actions (/admin/orgs/<id>/members) through the same schemas and ``orgs``
service functions, so the last-owner and budget-ceiling rules hold and the audit names the
signed-in admin; each runs only after the confirmation page (``dashboard_forms``).
"""

from flask import Blueprint, g, request

from blueprints import dashboard_forms as forms
from blueprints.dashboard import protect
from blueprints.dashboard_orgs import acting, done, org_line, org_page_url
from blueprints.org_schemas import AddMemberSchema, UpdateMemberSchema
from blueprints.query_args import whole_number
from ops_gateway.accounts import orgs, users
from ops_gateway.billing.money import format_money
from ops_gateway.core.errors import NotFound
from ops_gateway.dashboard import queries as dashboard_queries

blp = Blueprint("dashboard_org_members", __name__, url_prefix="/dashboard/orgs", template_folder="templates")
protect(blp)

REMOVAL_EFFECT = (
    "They leave the organization and their API keys of this organization are revoked at once;"
    " their personal keys keep working."
)


def _user_id(cur, typed):
    """The user id typed, or the id of the user with the email typed; None when left blank."""
    if typed is None:
        return None
    if (number := whole_number(typed)) is not None:
        return number
    user = dashboard_queries.user_by_email(cur, typed)
    if user is None:
        raise NotFound(f"no user has the email {typed}", code="user_not_found")
    return user["id"]


def _budget_input():
    """A member's org budget from the form: blank removes the cap, the period as chosen."""
    fields = {"budget": forms.given("budget")}
    if period := forms.given("budget_period"):
        fields["budget_period"] = period
    return fields


def _budget_line(changes):
    """The confirmation line of a member's org budget."""
    budget, period = changes.get("budget"), changes.get("budget_period", "period unchanged")
    return ("Org budget", "none (no cap)" if budget is None else f"${format_money(budget)}, {period}")


@blp.route("/<int:org_id>/members", methods=["POST"])
def add(org_id):
    """Add a user (by id or email) as owner, admin or member with an optional org budget, as
    POST /admin/orgs/<id>/members."""

    def act(cur, org):
        user_id = _user_id(cur, forms.given("user", 400))
        typed = {"role": request.form.get("role", "")[:20], **_budget_input()}
        body = AddMemberSchema().load({**typed, **({"user_id": user_id} if user_id is not None else {})})
        if not forms.confirmed():
            user = users.get_user(cur, body["user_id"])
            summary = [
                org_line(org),
                ("User", f"{user['email']} (id {user['id']})"),
                ("Role", body["role"]),
                _budget_line(body),
            ]
            return forms.ask("Add this member?", summary, "Add member", org_page_url(org_id))
        member = orgs.add_member(cur, org_id, body, g.user["actor"])
        return done(org_id, f"Added {member['email']} as {member['role']}.")

    return acting(org_id, act)


@blp.route("/<int:org_id>/members/<int:user_id>", methods=["POST"])
def change(org_id, user_id):
    """Change a member's role and org budget, as PATCH /admin/orgs/<id>/members/<user id>."""

    def act(cur, org):
        changes = UpdateMemberSchema().load({"role": request.form.get("role", "")[:20], **_budget_input()})
        if not forms.confirmed():
            member = orgs.get_member(cur, org_id, user_id)
            summary = [
                org_line(org),
                ("Member", f"{member['email']} (id {user_id})"),
                ("Role", f"{member['role']} → {changes['role']}"),
                _budget_line(changes),
            ]
            return forms.ask("Change this member?", summary, "Save", org_page_url(org_id))
        member = orgs.update_member(cur, org_id, user_id, changes, g.user["actor"])
        return done(org_id, f"Saved {member['email']}'s role and org budget.")

    return acting(org_id, act)


@blp.route("/<int:org_id>/members/<int:user_id>/remove", methods=["POST"])
def remove(org_id, user_id):
    """Remove a member and revoke their keys of the org at once, as DELETE /admin/orgs/<id>/members/<user id>."""

    def act(cur, org):
        if not forms.confirmed():
            member = orgs.get_member(cur, org_id, user_id)
            summary = [
                org_line(org),
                ("Member", f"{member['email']} (id {user_id}), {member['role']}"),
                ("Effect", REMOVAL_EFFECT),
            ]
            return forms.ask("Remove this member?", summary, "Remove member", org_page_url(org_id), danger=True)
        member = orgs.remove_member(cur, org_id, user_id, g.user["actor"])
        return done(org_id, f"Removed {member['email']}; their keys of this organization are revoked.")

    return acting(org_id, act)
