"""/user/balance and /user/api-keys: what a key holder manages with their own key."""

import marshmallow as ma
from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from blueprints import paging
from blueprints.account_schemas import (
    ApiKeySchema,
    BalanceSchema,
    CreateKeySchema,
    KeyListSchema,
    RevealedKeySchema,
    RevokeArgsSchema,
    RotateKeySchema,
    UpdateKeySchema,
)
from blueprints.docs import USER_ERRORS, documents_errors
from blueprints.guards import require_scope, require_user
from blueprints.query_args import page_cursor
from ops_gateway.accounts import api_keys
from ops_gateway.accounts.grants import Granter, refusals_audited
from ops_gateway.billing import budgets
from ops_gateway.core import db

blp = Blueprint(
    "user",
    __name__,
    url_prefix="/user",
    description="Your credit balance and budgets; create, list, revoke and rotate your own API keys",
)
blp.before_request(require_user)

__all__ = ["blp", "require_scope"]  # require_scope is re-exported for other blueprints


class KeyListArgsSchema(ma.Schema):
    """Optional paging of GET /user/api-keys: without ``limit`` every key comes back at once."""

    limit = ma.fields.Integer(validate=ma.validate.Range(min=1, max=1000))
    cursor = ma.fields.String(metadata={"description": "next_cursor from the previous page"})


class KeyPageSchema(KeyListSchema):
    """The caller's keys, newest first, and the cursor of the next page (null on the last one)."""

    next_cursor = ma.fields.String(allow_none=True)


@blp.route("/balance")
@blp.response(200, BalanceSchema)
@documents_errors(blp, *USER_ERRORS)
def balance():
    """The caller's credits, status, plan and spend caps (as of this request); needs the usage:read scope."""
    require_scope("usage:read")
    user = g.user
    caps = []
    if user["budgeted"]:
        with db.transaction() as cur:
            caps = budgets.status(cur, user)
    return {
        "user_id": user["user_id"],
        "org_id": user["org_id"],
        "api_key": user["key_mask"],
        "credits": user["credits"],
        "reserved_credits": user["reserved_credits"],
        "status": user["user_status"],
        "plan": user["plan"],
        "budgets": caps,
    }


@blp.route("/api-keys")
class ApiKeys(MethodView):
    """The caller's keys."""

    @blp.arguments(KeyListArgsSchema, location="query")
    @blp.response(200, KeyPageSchema)
    @documents_errors(blp, *USER_ERRORS, 400, 422)
    def get(self, args):
        """List your keys, masked, with last use, expiry and status; newest first, paged with limit/cursor."""
        require_scope("keys:manage")
        limit = args.get("limit")
        with db.transaction() as cur:
            rows = api_keys.list_keys(cur, g.user["user_id"], limit, page_cursor(args))
        return {"keys": rows, "next_cursor": paging.next_cursor(rows, limit) if limit else None}

    @blp.arguments(CreateKeySchema)
    @blp.response(201, RevealedKeySchema)
    @documents_errors(blp, *USER_ERRORS, 409, 422)
    def post(self, body):
        """Create a key within your key's grants (scopes, models, spend cap); the full key is in this response only."""
        require_scope("keys:manage")
        granter = Granter.of(g.user)
        with refusals_audited(granter) as cur:
            row, full_key = api_keys.create_key(
                cur,
                g.user["user_id"],
                body["name"],
                g.user["actor"],
                environment=body["environment"],
                expires_in_days=body.get("expires_in_days"),
                ip_allowlist=body["ip_allowlist"],
                scopes=body.get("scopes"),
                allowed_models=body.get("allowed_models"),
                cap={field: body[field] for field in budgets.FIELDS if field in body},
                granter=granter,
                org_id=body.get("org_id"),
                cache_ttl_seconds=body.get("cache_ttl_seconds"),
            )
        return {"api_key": full_key, "key": row}


@blp.route("/api-keys/<int:key_id>")
class ApiKeyById(MethodView):
    """One of the caller's keys."""

    @blp.arguments(UpdateKeySchema)
    @blp.response(200, ApiKeySchema)
    @documents_errors(blp, *USER_ERRORS, 404, 409, 422)
    def patch(self, body, key_id):
        """Rename a key or change its IP allowlist, expiry, scopes, models or spend cap, within your key's grants."""
        require_scope("keys:manage")
        granter = Granter.of(g.user)
        with refusals_audited(granter, key_id) as cur:
            return api_keys.update_key(cur, g.user["user_id"], key_id, body, g.user["actor"], granter)

    @blp.arguments(RevokeArgsSchema, location="query")
    @blp.response(200, ApiKeySchema)
    @documents_errors(blp, *USER_ERRORS, 404, 409)
    def delete(self, args, key_id):
        """Revoke a key at once; your last active key needs ?force=true."""
        require_scope("keys:manage")
        with db.transaction() as cur:
            return api_keys.revoke_key(cur, g.user["user_id"], key_id, g.user["actor"], force=args["force"])


@blp.route("/api-keys/<int:key_id>/rotate", methods=["POST"])
@blp.arguments(RotateKeySchema)
@blp.response(201, RevealedKeySchema)
@documents_errors(blp, *USER_ERRORS, 404, 409, 422)
def rotate(body, key_id):
    """Issue a replacement with every grant of the old key; the old one stops now or when grace_seconds have passed."""
    require_scope("keys:manage")
    granter = Granter.of(g.user)
    with refusals_audited(granter, key_id) as cur:
        row, full_key = api_keys.rotate_key(
            cur, g.user["user_id"], key_id, g.user["actor"], body["grace_seconds"], granter
        )
    return {"api_key": full_key, "key": row}
