"""Module-level extension objects, bound to an app in ``create_app``."""

from flask import g, request
from flask_limiter import Limiter
from flask_smorest import Api

from ops_gateway.errors import ErrorSchema


class GatewayApi(Api):
    """flask-smorest Api whose documented default error is our envelope.

    Error handlers are registered by ``ops_gateway.errors`` instead of flask-smorest's own,
    so every error (not only those raised through the Api) has one shape.
    """

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        """Leave error rendering to ops_gateway.errors."""


def rate_limit_key():
    """Limits are per user when authenticated, else per client IP."""
    user = getattr(g, "user", None)
    return f"user:{user['user_id']}" if user else f"ip:{request.remote_addr}"


api = GatewayApi()

# Storage, strategy and fail-open behaviour come from app config (see create_app).
limiter = Limiter(key_func=rate_limit_key)
