"""/dashboard/orgs: the organizations and one org's figures and members; create an org, grant or remove
its credits, change its plan, budget and allowed models, suspend or reactivate it.

Each action is the admin API's (/admin/orgs) through the same schemas and ``orgs`` service
functions, so it writes the same rows and audit entries with the signed-in admin as actor; each
runs only after the confirmation page (``dashboard_forms``). The members' actions are in
``dashboard_org_members``.
"""

import marshmallow as ma
from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for

from blueprints import dashboard_forms as forms
from blueprints.dashboard import protect
from blueprints.dashboard_user_actions import STATUS_VERBS
from blueprints.envelope import status_of
from blueprints.org_schemas import CreateOrgSchema, UpdateOrgSchema
from blueprints.query_args import page_number
from ops_gateway.accounts import orgs
from ops_gateway.accounts.org_queries import ROLES
from ops_gateway.billing import budget_queries, budgets
from ops_gateway.billing.money import format_money
from ops_gateway.core import db
from ops_gateway.core.errors import GatewayError
from ops_gateway.limits import limit_overrides

blp = Blueprint("dashboard_orgs", __name__, url_prefix="/dashboard/orgs", template_folder="templates")
protect(blp)

PAGE_SIZE = 25
NEW_ORG_FIELDS = ("name", "plan", "credits", "budget", "budget_period", "allowed_models")
STATUS_EFFECTS = {
    "suspended": "Its org keys stop working at once; its members' personal keys keep working.",
    "active": "Its members' active org keys work again.",
}


def _orgs_page(problems=(), message=None, status=200):
    """The org list and the create form, refilled with what was typed and the problems with it."""
    query = request.args.get("q", "").strip()[:200]
    page = page_number(request.args.get("page"))
    with db.transaction() as cur:
        total, rows = orgs.list_orgs(cur, query or None, None, (page - 1) * PAGE_SIZE, PAGE_SIZE)
        plans = limit_overrides.list_plans(cur)
    values = {name: request.form.get(name, "") for name in NEW_ORG_FIELDS}
    values["plan"] = values["plan"] or current_app.config["DEFAULT_PLAN"]
    values["budget_period"] = values["budget_period"] or "monthly"
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    page_html = render_template(
        "dashboard/orgs.html",
        orgs=rows,
        total=total,
        page=page,
        pages=pages,
        query=query,
        plans=plans,
        periods=budgets.PERIODS,
        values=values,
        problems=problems,
        message=message,
    )
    return page_html, status


@blp.route("")
def index():
    """Orgs whose name contains the search text, and the form that creates one."""
    return _orgs_page()


@blp.route("/new", methods=["POST"])
def create():
    """Create an org with a plan, opening credits, an optional budget and allowed models (as POST /admin/orgs)."""
    typed = {name: value for name in ("name", "plan", "credits") if (value := forms.given(name, 400)) is not None}
    try:
        body = CreateOrgSchema().load({**forms.budget_input(), **typed})
    except ma.ValidationError as error:
        return _orgs_page(forms.field_problems(error), "Some fields are not valid.", 400)
    default_plan = current_app.config["DEFAULT_PLAN"]
    if not forms.confirmed():
        summary = [
            ("Name", body["name"]),
            ("Plan", body.get("plan") or default_plan),
            ("Opening credits", f"${format_money(body.get('credits') or 0)}"),
            *forms.budget_summary(body),
        ]
        return forms.ask("Create this organization?", summary, "Create organization", url_for(".index"))
    try:
        with db.transaction() as cur:
            org = orgs.create_org(cur, body, g.user["actor"], default_plan)
    except GatewayError as error:
        return _orgs_page(message=error.message, status=status_of(error))
    flash(f"Created {org['name']}.", "success")
    return redirect(org_page_url(org["id"]))


@blp.route("/<int:org_id>")
def org_page(org_id):
    """One org: its balance, plan, status, budget and this period's spend, its members, and the forms
    that change them."""
    with db.transaction() as cur:
        org = orgs.get_org(cur, org_id)
        spend = budget_queries.figures(cur, "org", org_id)
        members = orgs.list_members(cur, org_id)
        plans = limit_overrides.list_plans(cur)
    return render_template(
        "dashboard/org.html",
        org=org,
        spend=spend,
        members=members,
        plans=plans,
        periods=budgets.PERIODS,
        roles=ROLES,
    )


def org_page_url(org_id):
    """The org's page, where every org action goes back to."""
    return url_for("dashboard_orgs.org_page", org_id=org_id)


def org_line(org):
    """The confirmation page's line naming the org."""
    return ("Organization", f"{org['name']} (id {org['id']})")


def acting(org_id, act):
    """``dashboard_forms.acting`` on the org: ``act(cur, org)``, refusals back to its page."""
    return forms.acting(lambda cur: (orgs.get_org(cur, org_id),), act, org_page_url(org_id))


def done(org_id, message):
    """Post/redirect/get: the org's page with ``message``."""
    flash(message, "success")
    return redirect(org_page_url(org_id))


@blp.route("/<int:org_id>/credits", methods=["POST"])
def adjust_credits(org_id):
    """Grant (positive) or remove (negative) org credits with a reason, as POST /admin/orgs/<id>/credits."""

    def act(cur, org):
        amount, reason, verb = forms.credit_adjustment()
        if not forms.confirmed():
            summary = forms.credit_summary(org_line(org), amount, reason, org)
            return forms.ask(f"{verb} credits?", summary, verb, org_page_url(org_id), danger=amount < 0)
        balance = orgs.adjust_credits(cur, org_id, amount, reason, g.user["actor"], g.request_id)
        return done(org_id, forms.credits_done(amount, balance))

    return acting(org_id, act)


@blp.route("/<int:org_id>/plan", methods=["POST"])
def change_plan(org_id):
    """Move the org (the limits its org keys share) to another plan, as PATCH /admin/orgs/<id>."""

    def act(cur, org):
        changes = UpdateOrgSchema(only=("plan",)).load({"plan": request.form.get("plan", "")[:100]})
        if not forms.confirmed():
            summary = [org_line(org), ("Plan", f"{org['plan']} → {changes['plan']}")]
            return forms.ask("Change this organization's plan?", summary, "Change plan", org_page_url(org_id))
        orgs.update_org(cur, org_id, changes, g.user["actor"])
        return done(org_id, "Plan changed.")

    return acting(org_id, act)


@blp.route("/<int:org_id>/budget", methods=["POST"])
def set_budget(org_id):
    """Set or remove the org's spend cap and its allowed models, as PATCH /admin/orgs/<id>."""

    def act(cur, org):
        changes = UpdateOrgSchema(only=forms.BUDGET_FORM_FIELDS).load(forms.budget_input())
        if not forms.confirmed():
            summary = [org_line(org), *forms.budget_summary(changes)]
            return forms.ask("Change this organization's budget and models?", summary, "Save", org_page_url(org_id))
        orgs.update_org(cur, org_id, changes, g.user["actor"])
        return done(org_id, "Budget and allowed models saved.")

    return acting(org_id, act)


@blp.route("/<int:org_id>/status", methods=["POST"])
def change_status(org_id):
    """Suspend (its org keys stop at their next request) or reactivate an org, as PATCH /admin/orgs/<id>."""

    def act(cur, org):
        changes = UpdateOrgSchema(only=("status",)).load({"status": request.form.get("status", "")[:20]})
        verb = STATUS_VERBS[changes["status"]]
        if not forms.confirmed():
            summary = [org_line(org), ("Effect", STATUS_EFFECTS[changes["status"]])]
            return forms.ask(
                f"{verb} this organization?", summary, verb, org_page_url(org_id), danger=verb == "Suspend"
            )
        orgs.update_org(cur, org_id, changes, g.user["actor"])
        return done(org_id, "Organization suspended." if verb == "Suspend" else "Organization reactivated.")

    return acting(org_id, act)
