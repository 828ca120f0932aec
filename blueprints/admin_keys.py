"""/admin/users/<id>/api-keys: support acting on any user's keys (list, change, revoke, rotate).

The same service functions and schemas as the user's own /user/api-keys routes, with the admin
as the audited actor (``admin:<id>`` or ``admin:bootstrap``). An admin acts with no granter, so
no grant ceiling applies (scopes, models, a spend cap: support may set or lift any of them); the
last-active-key rule does (``?force=true``), as for the user, so a
support call cannot lock a customer out by accident.
"""

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from blueprints import paging
from blueprints.account_schemas import (
    ApiKeySchema,
    RevealedKeySchema,
    RevokeArgsSchema,
    RotateKeySchema,
    UpdateKeySchema,
)
from blueprints.docs import ADMIN_ERRORS, documents_errors
from blueprints.guards import admin_only
from blueprints.query_args import page_cursor
from blueprints.user_keys import KeyListArgsSchema, KeyPageSchema
from ops_gateway.accounts import api_keys, users
from ops_gateway.core import db

blp = Blueprint(
    "admin_keys",
    __name__,
    url_prefix="/admin/users",
    description="List, create, update, revoke and rotate any user's API keys on their behalf (admin key)",
)
admin_only(blp)


@blp.route("/<int:user_id>/api-keys")
@blp.arguments(KeyListArgsSchema, location="query")
@blp.response(200, KeyPageSchema)
@documents_errors(blp, *ADMIN_ERRORS, 400, 404, 422)
def key_list(args, user_id):
    """List a user's keys, masked, newest first, paged with limit/cursor as in GET /user/api-keys."""
    limit = args.get("limit")
    with db.transaction() as cur:
        users.get_user(cur, user_id)
        rows = api_keys.list_keys(cur, user_id, limit, page_cursor(args))
    return {"keys": rows, "next_cursor": paging.next_cursor(rows, limit) if limit else None}


@blp.route("/<int:user_id>/api-keys/<int:key_id>")
class UserKeyById(MethodView):
    """One key of one user (404 for a key of another user)."""

    @blp.arguments(UpdateKeySchema)
    @blp.response(200, ApiKeySchema)
    @documents_errors(blp, *ADMIN_ERRORS, 404, 409, 422)
    def patch(self, body, user_id, key_id):
        """Change a user's key (name, allowlist, expiry, scopes, models, spend cap); audited with the admin as actor."""
        with db.transaction() as cur:
            return api_keys.update_key(cur, user_id, key_id, body, g.user["actor"])

    @blp.arguments(RevokeArgsSchema, location="query")
    @blp.response(200, ApiKeySchema)
    @documents_errors(blp, *ADMIN_ERRORS, 404, 409)
    def delete(self, args, user_id, key_id):
        """Revoke a user's key at once (the user's last active key needs ?force=true)."""
        with db.transaction() as cur:
            return api_keys.revoke_key(cur, user_id, key_id, g.user["actor"], force=args["force"])


@blp.route("/<int:user_id>/api-keys/<int:key_id>/rotate", methods=["POST"])
@blp.arguments(RotateKeySchema)
@blp.response(201, RevealedKeySchema)
@documents_errors(blp, *ADMIN_ERRORS, 404, 409, 422)
def rotate(body, user_id, key_id):
    """Issue a replacement for a user's key with all its grants (shown once, to hand over); the old one stops now or
    after grace_seconds."""
    with db.transaction() as cur:
        row, full_key = api_keys.rotate_key(cur, user_id, key_id, g.user["actor"], body["grace_seconds"])
    return {"api_key": full_key, "key": row}
