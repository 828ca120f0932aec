"""/dashboard/users: find users, see credits, plan and effective limits; grant credits, change plan and limits.

Changes go through the services behind /admin/users and /admin/limit, validated by the same
schemas, so they write the same ledger and audit rows.
"""

import marshmallow as ma
from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from blueprints.account_schemas import CreditAdjustmentSchema
from blueprints.dashboard import protect
from blueprints.dashboard_forms import field_problems
from blueprints.dashboard_keys import GRACE_CHOICES
from blueprints.limit_schemas import RateLimitsSchema
from blueprints.query_args import page_number, whole_number
from ops_gateway.accounts import api_keys, orgs, users
from ops_gateway.billing import budgets
from ops_gateway.billing.money import format_money
from ops_gateway.core import db
from ops_gateway.core.errors import GatewayError, NotFound
from ops_gateway.limits import limit_overrides, window_caps
from ops_gateway.limits.windows import LIMIT_FIELDS
from ops_gateway.telemetry import audit

blp = Blueprint("dashboard_users", __name__, url_prefix="/dashboard/users", template_folder="templates")
protect(blp)

PAGE_SIZE = 25
RECENT_AUDIT = 10
KEY_ROWS = 50  # newest first; revoked and rotated keys pile up, and the API pages the rest
STATUSES = ("active", "suspended")


@blp.route("")
def index():
    """Users whose email contains the search text (a number jumps to that user id)."""
    query = request.args.get("q", "").strip()[:200]
    status = request.args.get("status") if request.args.get("status") in STATUSES else None
    page = page_number(request.args.get("page"))
    with db.transaction() as cur:
        if (user_id := whole_number(query)) is not None:
            try:
                return redirect(url_for("dashboard_users.detail", user_id=users.get_user(cur, user_id)["id"]))
            except GatewayError:
                pass  # no such id: search emails for the digits instead
        total, rows = users.list_users(cur, query or None, status, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    return render_template(
        "dashboard/users.html", users=rows, total=total, page=page, pages=pages, query=query, status=status
    )


@blp.route("/<int:user_id>")
def detail(user_id):
    """One user: balance, plan, spend caps, keys (masked), effective limits with their source and the
    windows a longer one caps (as POST /admin/limit warns), latest audit entries."""
    with db.transaction() as cur:
        user = users.get_user(cur, user_id)
        limits, sources, _ = limit_overrides.effective_for_user(cur, user_id)
        plans = limit_overrides.list_plans(cur)
        _, recent = audit.query_logs(cur, user_id=user_id, limit=RECENT_AUDIT, count=False)
        caps = budgets.caps_of_user(cur, user_id)
        keys = api_keys.list_keys(cur, user_id, KEY_ROWS)
        memberships = orgs.memberships(cur, user_id)
    windows = [{"field": f, "value": limits[f], "source": sources[f]} for f in LIMIT_FIELDS]
    return render_template(
        "dashboard/user.html",
        user=user,
        windows=windows,
        plans=plans,
        recent=recent,
        budgets=caps,
        keys=keys,
        memberships=memberships,
        key_limit=KEY_ROWS,
        grace_choices=GRACE_CHOICES,
        capped=window_caps.capped_windows(limits),
    )


def _messages(error):
    """A marshmallow error as one readable line."""
    return ", ".join(f"{field}: {problem}" for field, problem in field_problems(error))


def _back(user_id):
    """Post/redirect/get: back to the user's page."""
    return redirect(url_for("dashboard_users.detail", user_id=user_id))


@blp.route("/<int:user_id>/credits", methods=["POST"])
def adjust_credits(user_id):
    """Grant (positive) or remove (negative) credits, as POST /admin/users/<id>/credits."""
    try:
        body = CreditAdjustmentSchema().load(
            {"amount": request.form.get("amount", ""), "reason": request.form.get("reason", "")}
        )
        with db.transaction() as cur:
            balance = users.adjust_credits(cur, user_id, body["amount"], body["reason"], g.user["actor"], g.request_id)
    except ma.ValidationError as error:
        flash(f"Credits not changed — {_messages(error)}", "error")
    except GatewayError as error:
        if isinstance(error, NotFound):
            raise
        flash(f"Credits not changed — {error.message}", "error")
    else:
        verb = "Granted" if body["amount"] > 0 else "Removed"
        flash(f"{verb} ${format_money(abs(body['amount']))}; balance is now ${format_money(balance)}.", "success")
    return _back(user_id)


@blp.route("/<int:user_id>/limits", methods=["POST"])
def set_limits(user_id):
    """Override rate-limit windows (blank inherits the plan), or reset every window to the plan."""
    try:
        if request.form.get("action") == "reset":
            with db.transaction() as cur:
                users.get_user(cur, user_id)
                limit_overrides.clear_overrides(cur, user_id, g.user["actor"])
            flash("Limits reset to the plan.", "success")
            return _back(user_id)
        given = {field: request.form.get(field, "").strip() or None for field in LIMIT_FIELDS}
        windows = RateLimitsSchema().load(given)
        with db.transaction() as cur:
            users.get_user(cur, user_id)
            limit_overrides.set_overrides(cur, user_id, windows, g.user["actor"])
    except ma.ValidationError as error:
        flash(f"Limits not changed — {_messages(error)}", "error")
    else:
        flash("Limits updated; they apply from the user's next request.", "success")
    return _back(user_id)


@blp.route("/<int:user_id>/plan", methods=["POST"])
def change_plan(user_id):
    """Move the user to another plan, as PATCH /admin/users/<id>."""
    try:
        with db.transaction() as cur:
            users.update_user(cur, user_id, {"plan": request.form.get("plan", "")[:50]}, g.user["actor"])
    except GatewayError as error:
        if isinstance(error, NotFound):
            raise
        flash(f"Plan not changed — {error.message}", "error")
    else:
        flash("Plan changed.", "success")
    return _back(user_id)
