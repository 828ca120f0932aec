"""/admin/users: create users (with their first key), list, inspect, change, grant credits."""

from flask import current_app, g
from flask.views import MethodView
from flask_smorest import Blueprint

from blueprints import paging
from blueprints.account_schemas import (
    CreateUserResponseSchema,
    CreateUserSchema,
    CreditAdjustmentResultSchema,
    CreditAdjustmentSchema,
    UpdateUserSchema,
    UserListArgsSchema,
    UserListSchema,
    UserSchema,
)
from blueprints.docs import ADMIN_ERRORS, documents_errors
from blueprints.guards import admin_only
from ops_gateway.accounts import users
from ops_gateway.core import db

blp = Blueprint(
    "admin_users",
    __name__,
    url_prefix="/admin/users",
    description="Create, list, update and suspend users; grant or remove credits (admin key)",
)
admin_only(blp)


@blp.route("")
class Users(MethodView):
    """The user collection."""

    @blp.arguments(UserListArgsSchema, location="query")
    @blp.response(200, UserListSchema)
    @documents_errors(blp, *ADMIN_ERRORS, 422)
    def get(self, args):
        """List users, filtered by email substring and status, a page at a time."""
        email, status = args.get("email"), args.get("status")
        return paging.numbered_page(args, "users", lambda cur, *page: users.list_users(cur, email, status, *page))

    @blp.arguments(CreateUserSchema)
    @blp.response(201, CreateUserResponseSchema)
    @documents_errors(blp, *ADMIN_ERRORS, 409, 422)
    def post(self, body):
        """Create a user with optional opening credits; the response shows their first key once."""
        with db.transaction() as cur:
            user, key, full_key = users.create_requested_user(
                cur, body, g.user["actor"], current_app.config["DEFAULT_PLAN"]
            )
        return {"user": user, "api_key": full_key, "key": key}


@blp.route("/<int:user_id>")
class UserById(MethodView):
    """One user."""

    @blp.response(200, UserSchema)
    @documents_errors(blp, *ADMIN_ERRORS, 404)
    def get(self, user_id):
        """Show a user."""
        with db.transaction() as cur:
            return users.get_user(cur, user_id)

    @blp.arguments(UpdateUserSchema)
    @blp.response(200, UserSchema)
    @documents_errors(blp, *ADMIN_ERRORS, 404, 422)
    def patch(self, body, user_id):
        """Suspend/reactivate, change role or plan; a suspended user's keys stop at once."""
        with db.transaction() as cur:
            return users.update_user(cur, user_id, body, g.user["actor"])


@blp.route("/<int:user_id>/credits", methods=["POST"])
@blp.arguments(CreditAdjustmentSchema)
@blp.response(200, CreditAdjustmentResultSchema)
@documents_errors(blp, *ADMIN_ERRORS, 404, 409, 422)
def adjust_credits(body, user_id):
    """Grant (positive) or remove (negative) credits; one ledger row, never below zero."""
    amount, reason = body["amount"], body["reason"]
    with db.transaction() as cur:
        balance = users.adjust_credits(cur, user_id, amount, reason, g.user["actor"], g.request_id)
    return {"user_id": user_id, "amount": amount, "credits": balance, "reason": reason}
