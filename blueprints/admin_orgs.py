"""/admin/orgs: create, list, inspect and change organizations, grant their credits, manage members."""

from flask import current_app, g
from flask.views import MethodView
from flask_smorest import Blueprint

from blueprints import paging
from blueprints.account_schemas import CreditAdjustmentSchema
from blueprints.docs import ADMIN_ERRORS, documents_errors
from blueprints.guards import admin_only
from blueprints.org_schemas import (
    AddMemberSchema,
    CreateOrgSchema,
    MemberListSchema,
    MemberSchema,
    OrgCreditResultSchema,
    OrgListArgsSchema,
    OrgListSchema,
    OrgSchema,
    UpdateMemberSchema,
    UpdateOrgSchema,
)
from ops_gateway.accounts import orgs
from ops_gateway.core import db

blp = Blueprint(
    "admin_orgs",
    __name__,
    url_prefix="/admin/orgs",
    description="Organizations: a shared balance, plan, allowed models and budget; members, roles and budgets",
)
admin_only(blp)


@blp.route("")
class Orgs(MethodView):
    """The org collection."""

    @blp.arguments(OrgListArgsSchema, location="query")
    @blp.response(200, OrgListSchema)
    @documents_errors(blp, *ADMIN_ERRORS, 422)
    def get(self, args):
        """List orgs, filtered by name substring and status, a page at a time."""
        name, status = args.get("name"), args.get("status")
        return paging.numbered_page(args, "orgs", lambda cur, *page: orgs.list_orgs(cur, name, status, *page))

    @blp.arguments(CreateOrgSchema)
    @blp.response(201, OrgSchema)
    @documents_errors(blp, *ADMIN_ERRORS, 409, 422)
    def post(self, body):
        """Create an org (plan default DEFAULT_PLAN) with optional opening credits, allowed models and budget."""
        with db.transaction() as cur:
            return orgs.create_org(cur, body, g.user["actor"], current_app.config["DEFAULT_PLAN"])


@blp.route("/<int:org_id>")
class OrgById(MethodView):
    """One org."""

    @blp.response(200, OrgSchema)
    @documents_errors(blp, *ADMIN_ERRORS, 404)
    def get(self, org_id):
        """Show an org."""
        with db.transaction() as cur:
            return orgs.get_org(cur, org_id)

    @blp.arguments(UpdateOrgSchema)
    @blp.response(200, OrgSchema)
    @documents_errors(blp, *ADMIN_ERRORS, 404, 409, 422)
    def patch(self, body, org_id):
        """Rename, change plan, allowed models or budget, suspend or reactivate (its keys stop at once)."""
        with db.transaction() as cur:
            return orgs.update_org(cur, org_id, body, g.user["actor"])


@blp.route("/<int:org_id>/credits", methods=["POST"])
@blp.arguments(CreditAdjustmentSchema)
@blp.response(200, OrgCreditResultSchema)
@documents_errors(blp, *ADMIN_ERRORS, 404, 409, 422)
def adjust_credits(body, org_id):
    """Grant (positive) or remove (negative) org credits; one ledger row naming the org, never below what is held."""
    amount, reason = body["amount"], body["reason"]
    with db.transaction() as cur:  # a missing org is the ledger's 404
        balance = orgs.adjust_credits(cur, org_id, amount, reason, g.user["actor"], g.request_id)
    return {"org_id": org_id, "amount": amount, "credits": balance, "reason": reason}


@blp.route("/<int:org_id>/members")
class Members(MethodView):
    """An org's members."""

    @blp.response(200, MemberListSchema)
    @documents_errors(blp, *ADMIN_ERRORS, 404)
    def get(self, org_id):
        """List the org's members, owners first."""
        with db.transaction() as cur:
            orgs.get_org(cur, org_id)
            return {"members": orgs.list_members(cur, org_id)}

    @blp.arguments(AddMemberSchema)
    @blp.response(201, MemberSchema)
    @documents_errors(blp, *ADMIN_ERRORS, 404, 409, 422)
    def post(self, body, org_id):
        """Add a user as owner, admin or member, with an optional org budget (never above the org's)."""
        with db.transaction() as cur:
            return orgs.add_member(cur, org_id, body, g.user["actor"])


@blp.route("/<int:org_id>/members/<int:user_id>")
class MemberById(MethodView):
    """One member."""

    @blp.arguments(UpdateMemberSchema)
    @blp.response(200, MemberSchema)
    @documents_errors(blp, *ADMIN_ERRORS, 404, 409, 422)
    def patch(self, body, org_id, user_id):
        """Change a member's role or org budget; the last owner stays an owner (409 last_owner)."""
        with db.transaction() as cur:
            return orgs.update_member(cur, org_id, user_id, body, g.user["actor"])

    @blp.response(200, MemberSchema)
    @documents_errors(blp, *ADMIN_ERRORS, 404, 409)
    def delete(self, org_id, user_id):
        """Remove a member: their keys of this org are revoked at once (the last owner stays)."""
        with db.transaction() as cur:
            return orgs.remove_member(cur, org_id, user_id, g.user["actor"])
