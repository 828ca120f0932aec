"""/dashboard/users actions on accounts: create a user (their first key shown once), suspend or reactivate,
grant or remove credits, change the plan and the rate-limit overrides, set the spend cap and allowed models.

Each is the admin API's action (POST /admin/users, PATCH /admin/users/<id>, POST /admin/users/<id>/credits,
POST /admin/limit) through the same schemas and service functions, so it writes the same rows and audit
entries with the signed-in admin as actor; each runs only after the confirmation page (``dashboard_forms``).
"""

import marshmallow as ma
from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for

from blueprints import dashboard_forms as forms
from blueprints.account_schemas import CreateUserSchema, UpdateUserSchema
from blueprints.dashboard import protect
from blueprints.envelope import status_of
from blueprints.limit_schemas import RateLimitsSchema
from ops_gateway.accounts import users
from ops_gateway.billing.money import format_money
from ops_gateway.core import db
from ops_gateway.core.errors import GatewayError
from ops_gateway.limits import limit_overrides, plans, window_caps
from ops_gateway.limits.windows import LIMIT_FIELDS

blp = Blueprint("dashboard_user_actions", __name__, url_prefix="/dashboard/users", template_folder="templates")
protect(blp)

NEW_USER_FIELDS = ("email", "username", "plan", "role", "credits")
STATUS_VERBS = {"suspended": "Suspend", "active": "Reactivate"}


def _new_user_form(problems=(), message=None, status=200):
    """The create-user form, refilled with what was typed and the problems with it."""
    with db.transaction() as cur:
        plan_rows = limit_overrides.list_plans(cur)
    values = {name: request.form.get(name, "") for name in NEW_USER_FIELDS}
    values["plan"] = values["plan"] or current_app.config["DEFAULT_PLAN"]
    page = render_template(
        "dashboard/user_new.html", plans=plan_rows, values=values, problems=problems, message=message
    )
    return page, status


@blp.route("/new", methods=["GET", "POST"])
def create():
    """Create a user with a plan, a role and opening credits (as POST /admin/users); their first key is shown once."""
    if request.method != "POST":
        return _new_user_form()
    given = {name: value for name in NEW_USER_FIELDS if (value := forms.given(name, 400)) is not None}
    try:
        body = CreateUserSchema().load(given)
    except ma.ValidationError as error:
        return _new_user_form(forms.field_problems(error), "Some fields are not valid.", 400)
    plan = body.get("plan") or current_app.config["DEFAULT_PLAN"]
    if not forms.confirmed():
        summary = [
            ("Email", body["email"]),
            ("Username", body.get("username") or "—"),
            ("Plan", plan),
            ("Role", body["role"]),
            ("Opening credits", f"${format_money(body.get('credits') or 0)}"),
        ]
        return forms.ask("Create this user?", summary, "Create user", url_for("dashboard_users.index"))
    try:
        with db.transaction() as cur:
            user, key, full_key = users.create_requested_user(cur, body, g.user["actor"], plan)
    except GatewayError as error:
        return _new_user_form(message=error.message, status=status_of(error))
    return render_template("dashboard/revealed_key.html", title="User created", user=user, key=key, full_key=full_key)


def _user_page(user_id):
    """The user's page: where every form of this module is, and where Cancel and Back lead."""
    return url_for("dashboard_users.detail", user_id=user_id)


def _user_line(user):
    """The confirmation page's line naming the user."""
    return ("User", f"{user['email']} (id {user['id']})")


def _acting(user_id, act):
    """``dashboard_forms.acting`` on the user: ``act(cur, user)``, refusals back to their page."""
    return forms.acting(lambda cur: (users.get_user(cur, user_id),), act, _user_page(user_id))


def _done(user_id, message):
    """Post/redirect/get: the user's page with ``message``."""
    flash(message, "success")
    return redirect(_user_page(user_id))


@blp.route("/<int:user_id>/status", methods=["POST"])
def change_status(user_id):
    """Suspend (every key stops at its next request) or reactivate a user, as PATCH /admin/users/<id>."""

    def act(cur, user):
        body = UpdateUserSchema(only=("status",)).load({"status": request.form.get("status", "")[:20]})
        verb = STATUS_VERBS[body["status"]]
        if not forms.confirmed():
            effect = "Their API keys stop working at once." if verb == "Suspend" else "Their active keys work again."
            summary = [_user_line(user), ("Effect", effect)]
            return forms.ask(f"{verb} this user?", summary, verb, _user_page(user_id), danger=verb == "Suspend")
        users.update_user(cur, user_id, body, g.user["actor"])
        return _done(user_id, "User suspended." if verb == "Suspend" else "User reactivated.")

    return _acting(user_id, act)


@blp.route("/<int:user_id>/budget", methods=["POST"])
def set_budget(user_id):
    """Set or remove the user's spend cap and their allowed models, as PATCH /admin/users/<id>."""

    def act(cur, user):
        changes = UpdateUserSchema(only=forms.BUDGET_FORM_FIELDS).load(forms.budget_input())
        if not forms.confirmed():
            summary = [_user_line(user), *forms.budget_summary(changes)]
            return forms.ask("Change this user's budget and models?", summary, "Save", _user_page(user_id))
        users.update_user(cur, user_id, changes, g.user["actor"])
        return _done(user_id, "Budget and allowed models saved.")

    return _acting(user_id, act)


@blp.route("/<int:user_id>/credits", methods=["POST"])
def adjust_credits(user_id):
    """Grant (positive) or remove (negative) credits with a reason, as POST /admin/users/<id>/credits."""

    def act(cur, user):
        amount, reason, verb = forms.credit_adjustment()
        if not forms.confirmed():
            summary = forms.credit_summary(_user_line(user), amount, reason, user)
            return forms.ask(f"{verb} credits?", summary, verb, _user_page(user_id), danger=amount < 0)
        balance = users.adjust_credits(cur, user_id, amount, reason, g.user["actor"], g.request_id)
        return _done(user_id, forms.credits_done(amount, balance))

    return _acting(user_id, act)


@blp.route("/<int:user_id>/plan", methods=["POST"])
def change_plan(user_id):
    """Move the user to another plan, as PATCH /admin/users/<id>; windows without an override follow it."""

    def act(cur, user):
        changes = UpdateUserSchema(only=("plan",)).load({"plan": request.form.get("plan", "")[:100]})
        if not forms.confirmed():
            summary = [
                _user_line(user),
                ("Plan", f"{user['plan']} → {changes['plan']}"),
                ("Effect", "Every window without an override follows the new plan from the user's next request."),
            ]
            return forms.ask("Change this user's plan?", summary, "Change plan", _user_page(user_id))
        users.update_user(cur, user_id, changes, g.user["actor"])
        return _done(user_id, "Plan changed.")

    return _acting(user_id, act)


def _shown(limit, source):
    """A window's limit as the confirmation page shows it, saying when the plan sets it."""
    return f"{limit:,}" + (" (plan)" if source == "plan" else "")


def _limits_summary(cur, user, overrides):
    """Each window's limit now → after ``overrides`` ({window: value, None = the plan}), and the windows a
    longer one would then cap (as the user page and POST /admin/limit warn)."""
    now, now_sources, plan_name = limit_overrides.effective_for_user(cur, user["id"])
    plan = next(row for row in limit_overrides.list_plans(cur) if row["name"] == plan_name)
    after, after_sources = plans.effective_limits({**plan, **{f"o_{f}": overrides[f] for f in LIMIT_FIELDS}})
    lines = []
    for field in LIMIT_FIELDS:
        before, then = _shown(now[field], now_sources[field]), _shown(after[field], after_sources[field])
        lines.append((field.replace("_", " "), f"{then}, unchanged" if before == then else f"{before} → {then}"))
    return lines + [("Warning", warning["message"]) for warning in window_caps.capped_windows(after)]


@blp.route("/<int:user_id>/limits", methods=["POST"])
def set_limits(user_id):
    """Override rate-limit windows (blank follows the plan), as POST /admin/limit, or drop every override
    (``action=reset``), as DELETE /admin/limit/<id>; either applies from the user's next request."""

    def act(cur, user):
        resetting = request.form.get("action") == "reset"
        if resetting:
            overrides = dict.fromkeys(LIMIT_FIELDS)
        else:
            overrides = RateLimitsSchema().load({field: forms.given(field) for field in LIMIT_FIELDS})
        if not forms.confirmed():
            windows, back = _limits_summary(cur, user, overrides), _user_page(user_id)
            if not resetting:
                return forms.ask("Change this user's limits?", [_user_line(user), *windows], "Save limits", back)
            effect = ("Effect", f"Every override is dropped: each window follows the {user['plan']} plan.")
            summary = [_user_line(user), effect, *windows]
            return forms.ask("Reset limits to the plan?", summary, "Reset to plan", back, danger=True)
        if resetting:
            limit_overrides.clear_overrides(cur, user_id, g.user["actor"])
            return _done(user_id, "Limits reset to the plan.")
        limit_overrides.set_overrides(cur, user_id, overrides, g.user["actor"])
        return _done(user_id, "Limits updated; they apply from the user's next request.")

    return _acting(user_id, act)
