"""/dashboard/users actions on accounts: create a user (their first key shown once), suspend or reactivate,
set the spend cap and allowed models.

Each is the admin API's action (POST /admin/users, PATCH /admin/users/<id>) through the same
schemas and service functions, so it writes the same rows and audit entries with the signed-in
admin as actor; each runs only after the confirmation page (``dashboard_forms``).
"""

import marshmallow as ma
from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for

from blueprints import dashboard_forms as forms
from blueprints.account_schemas import CreateUserSchema, UpdateUserSchema
from blueprints.dashboard import protect
from blueprints.envelope import status_of
from ops_gateway.accounts import users
from ops_gateway.billing.money import format_money
from ops_gateway.core import db
from ops_gateway.core.errors import GatewayError, NotFound
from ops_gateway.limits import limit_overrides

blp = Blueprint("dashboard_user_actions", __name__, url_prefix="/dashboard/users", template_folder="templates")
protect(blp)

NEW_USER_FIELDS = ("email", "username", "plan", "role", "credits")
STATUS_VERBS = {"suspended": "Suspend", "active": "Reactivate"}


def _new_user_form(problems=(), message=None, status=200):
    """The create-user form, refilled with what was typed and the problems with it."""
    with db.transaction() as cur:
        plans = limit_overrides.list_plans(cur)
    values = {name: request.form.get(name, "") for name in NEW_USER_FIELDS}
    values["plan"] = values["plan"] or current_app.config["DEFAULT_PLAN"]
    page = render_template("dashboard/user_new.html", plans=plans, values=values, problems=problems, message=message)
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


@blp.route("/<int:user_id>/status", methods=["POST"])
def change_status(user_id):
    """Suspend (every key stops at its next request) or reactivate a user, as PATCH /admin/users/<id>."""
    back = url_for("dashboard_users.detail", user_id=user_id)
    try:
        body = UpdateUserSchema(only=("status",)).load({"status": request.form.get("status", "")[:20]})
        if not forms.confirmed():
            with db.transaction() as cur:
                user = users.get_user(cur, user_id)
            verb = STATUS_VERBS[body["status"]]
            effect = "Their API keys stop working at once." if verb == "Suspend" else "Their active keys work again."
            summary = [("User", f"{user['email']} (id {user_id})"), ("Effect", effect)]
            return forms.ask(f"{verb} this user?", summary, verb, back, danger=verb == "Suspend")
        with db.transaction() as cur:
            users.update_user(cur, user_id, body, g.user["actor"])
    except ma.ValidationError as error:
        return forms.refusal(error, back)
    flash("User suspended." if body["status"] == "suspended" else "User reactivated.", "success")
    return redirect(back)


@blp.route("/<int:user_id>/budget", methods=["POST"])
def set_budget(user_id):
    """Set or remove the user's spend cap and their allowed models, as PATCH /admin/users/<id>."""
    back = url_for("dashboard_users.detail", user_id=user_id)
    try:
        changes = UpdateUserSchema(only=forms.BUDGET_FORM_FIELDS).load(forms.budget_input())
        with db.transaction() as cur:
            user = users.get_user(cur, user_id)
            if not forms.confirmed():
                summary = [("User", f"{user['email']} (id {user_id})"), *forms.budget_summary(changes)]
                return forms.ask("Change this user's budget and models?", summary, "Save", back)
            users.update_user(cur, user_id, changes, g.user["actor"])
    except ma.ValidationError as error:
        return forms.refusal(error, back)
    except GatewayError as error:
        if isinstance(error, NotFound):
            raise
        return forms.refusal(error, back)
    flash("Budget and allowed models saved.", "success")
    return redirect(back)
