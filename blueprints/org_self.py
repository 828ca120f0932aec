"""/org/<id>: an org's owners and admins manage its members with their own keys; every member
reads the org and their own use of it.

Outsiders get 404 (an org they are not in is indistinguishable from none); a member asking to
manage gets 403 ``org_role_required``. Reads need the key's ``usage:read`` scope, changes
``org:manage``. Budgets set here are bounded by the org's own.
"""

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from blueprints.docs import USER_ERRORS, documents_errors
from blueprints.guards import require_scope, require_user
from blueprints.org_schemas import (
    AddMemberSchema,
    MemberListSchema,
    MemberSchema,
    MyOrgSchema,
    OrgUsageArgsSchema,
    UpdateMemberSchema,
)
from blueprints.usage_report_schemas import UsageReportSchema
from blueprints.usage_reports import REPORT_IN_FORMAT, report_in_format
from ops_gateway.accounts import orgs
from ops_gateway.core import db
from ops_gateway.observability import spend_reports

blp = Blueprint(
    "org",
    __name__,
    url_prefix="/org",
    description="Your organization: its members, roles and budgets (owners and admins), and its usage",
)
blp.before_request(require_user)
_ORG_USAGE_DIMENSIONS = ("user", "key", "model", "endpoint", "day", "tag")


def _caller(cur, org_id, scope):
    """The caller's membership of the org, once their key holds ``scope`` (404 for outsiders)."""
    require_scope(scope)
    return orgs.acting_member(cur, org_id, g.user["user_id"])


@blp.route("/<int:org_id>")
@blp.response(200, MyOrgSchema)
@documents_errors(blp, *USER_ERRORS, 404)
def my_org(org_id):
    """The org (balance, plan, budget) and your membership of it."""
    with db.transaction() as cur:
        membership = _caller(cur, org_id, "usage:read")
        return {**orgs.get_org(cur, org_id), "membership": membership}


@blp.route("/<int:org_id>/members")
class Members(MethodView):
    """The org's members."""

    @blp.response(200, MemberListSchema)
    @documents_errors(blp, *USER_ERRORS, 404)
    def get(self, org_id):
        """Owners and admins see every member; a member sees their own row."""
        with db.transaction() as cur:
            caller = _caller(cur, org_id, "usage:read")
            return {"members": orgs.list_members(cur, org_id, orgs.visible_member(caller))}

    @blp.arguments(AddMemberSchema)
    @blp.response(201, MemberSchema)
    @documents_errors(blp, *USER_ERRORS, 404, 409, 422)
    def post(self, body, org_id):
        """Add a user (by id) with a role and an optional org budget; only owners add owners."""
        with db.transaction() as cur:
            orgs.check_manages(cur, _caller(cur, org_id, "org:manage"), new_role=body["role"])
            return orgs.add_member(cur, org_id, body, g.user["actor"])


@blp.route("/<int:org_id>/members/<int:user_id>")
class MemberById(MethodView):
    """One member of the org."""

    @blp.arguments(UpdateMemberSchema)
    @blp.response(200, MemberSchema)
    @documents_errors(blp, *USER_ERRORS, 404, 409, 422)
    def patch(self, body, org_id, user_id):
        """Change a member's role or org budget (never above the org's); only owners touch owners."""
        with db.transaction() as cur:
            orgs.check_manages(cur, _caller(cur, org_id, "org:manage"), user_id, body.get("role"))
            return orgs.update_member(cur, org_id, user_id, body, g.user["actor"])

    @blp.response(200, MemberSchema)
    @documents_errors(blp, *USER_ERRORS, 404, 409)
    def delete(self, org_id, user_id):
        """Remove a member (yourself: leave the org); their org keys are revoked at once."""
        with db.transaction() as cur:
            caller = _caller(cur, org_id, "org:manage" if user_id != g.user["user_id"] else "usage:read")
            if user_id != caller["user_id"]:
                orgs.check_manages(cur, caller, user_id)
            return orgs.remove_member(cur, org_id, user_id, g.user["actor"])


@blp.route("/<int:org_id>/usage")
@blp.arguments(OrgUsageArgsSchema, location="query")
@blp.response(200, UsageReportSchema)
@blp.doc(responses={"200": REPORT_IN_FORMAT})
@documents_errors(blp, *USER_ERRORS, 400, 404, 422)
def org_usage(args, org_id):
    """The org's spend by member (user), key, model, endpoint, day and/or tag, as JSON or CSV;
    a member's report holds only their own use."""
    group_by = spend_reports.parse_group_by(args["group_by"], _ORG_USAGE_DIMENSIONS)
    first, last = spend_reports.report_days(args.get("start_date"), args.get("end_date"))
    with db.transaction() as cur:
        caller = _caller(cur, org_id, "usage:read")
        only = orgs.visible_member(caller)
        report = spend_reports.usage_report(cur, group_by, first, last, only, fresh=args["fresh"], org_id=org_id)
    return report_in_format(report, args["format"], f"org-{org_id}-usage-{first}-{last}.csv")
