"""/dashboard/users/<id>/keys: one user's API key on a page; revoke it, rotate it, set its spend cap and models.

The same service functions and schemas as /admin/users/<id>/api-keys, so an admin acts with no
grant ceiling but the last-active-key rule holds (the "even if it is their last key" box is the
API's ?force=true). A rotated key's replacement is shown once, on the page that answers the
rotation, and never again (only its hash is stored).
"""

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from blueprints import dashboard_forms as forms
from blueprints.account_schemas import RevokeArgsSchema, RotateKeySchema, UpdateKeySchema
from blueprints.dashboard import protect
from blueprints.dashboard_format import masked_key
from ops_gateway.accounts import api_keys, users
from ops_gateway.core import db

blp = Blueprint("dashboard_keys", __name__, url_prefix="/dashboard/users", template_folder="templates")
protect(blp)

GRACE_CHOICES = ((0, "none: the old key stops now"), (3600, "1 hour"), (86400, "1 day"), (7 * 86400, "7 days"))


def _key_line(user, key):
    """The confirmation page's line naming a key."""
    return ("Key", f"{key['name']} · {masked_key(key)} of {user['email']}")


def _acting(user_id, key_id, act):
    """``dashboard_forms.acting`` on the user's key: ``act(cur, user, key)``, refusals back to the user's page."""

    def load(cur):
        return users.get_user(cur, user_id), api_keys.get_key(cur, user_id, key_id)

    return forms.acting(load, act, _back(user_id))


@blp.route("/<int:user_id>/keys/<int:key_id>")
def key_page(user_id, key_id):
    """One key: its grants, its cap, and the forms to change its budget and models, rotate or revoke it."""
    with db.transaction() as cur:
        user = users.get_user(cur, user_id)
        key = api_keys.get_key(cur, user_id, key_id)
    return render_template("dashboard/key.html", user=user, key=key, grace_choices=GRACE_CHOICES)


@blp.route("/<int:user_id>/keys/<int:key_id>/revoke", methods=["POST"])
def revoke(user_id, key_id):
    """Revoke a key at once, as DELETE /admin/users/<id>/api-keys/<key id> (the last active key needs the box)."""

    def act(cur, user, key):
        args = RevokeArgsSchema().load({"force": request.form.get("force", "false")[:10]})
        if not forms.confirmed():
            summary = [_key_line(user, key), ("Effect", "It stops working at once; this cannot be undone.")]
            return forms.ask("Revoke this key?", summary, "Revoke key", _back(user_id), danger=True)
        api_keys.revoke_key(cur, user_id, key_id, g.user["actor"], force=args["force"])
        flash(f"Revoked {masked_key(key)}.", "success")
        return redirect(_back(user_id))

    return _acting(user_id, key_id, act)


@blp.route("/<int:user_id>/keys/<int:key_id>/rotate", methods=["POST"])
def rotate(user_id, key_id):
    """Replace a key with all its grants (as POST /admin/users/<id>/api-keys/<key id>/rotate); shown once."""

    def act(cur, user, key):
        body = RotateKeySchema().load({"grace_seconds": request.form.get("grace_seconds", "0")[:10] or "0"})
        if not forms.confirmed():
            grace = dict(GRACE_CHOICES).get(body["grace_seconds"], f"{body['grace_seconds']} s")
            summary = [_key_line(user, key), ("Old key keeps working for", grace)]
            return forms.ask("Rotate this key?", summary, "Rotate key", _back(user_id), danger=True)
        new, full_key = api_keys.rotate_key(cur, user_id, key_id, g.user["actor"], body["grace_seconds"])
        return render_template(
            "dashboard/revealed_key.html", title="Key rotated", user=user, key=new, full_key=full_key
        )

    return _acting(user_id, key_id, act)


@blp.route("/<int:user_id>/keys/<int:key_id>/budget", methods=["POST"])
def set_budget(user_id, key_id):
    """Set or remove a key's spend cap and allowed models, as PATCH /admin/users/<id>/api-keys/<key id>."""

    def act(cur, user, key):
        changes = UpdateKeySchema(only=forms.BUDGET_FORM_FIELDS).load(forms.budget_input())
        back = url_for(".key_page", user_id=user_id, key_id=key_id)
        if not forms.confirmed():
            summary = [_key_line(user, key), *forms.budget_summary(changes)]
            return forms.ask("Change this key's budget and models?", summary, "Save", back)
        api_keys.update_key(cur, user_id, key_id, changes, g.user["actor"])
        flash("The key's budget and allowed models are saved.", "success")
        return redirect(back)

    return _acting(user_id, key_id, act)


def _back(user_id):
    """The user's page, where their keys are listed."""
    return url_for("dashboard_users.detail", user_id=user_id)
