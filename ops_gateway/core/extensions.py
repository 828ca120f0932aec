"""Module-level extension objects, bound to an app in ``create_app``."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_smorest import Api

from ops_gateway.core.errors import ErrorSchema


class GatewayApi(Api):
    """flask-smorest Api whose documented default error is our envelope.

    Error handlers are registered by ``blueprints/envelope.py`` instead of flask-smorest's own,
    so every error (not only those raised through the Api) has one shape.
    """

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        """Leave error rendering to blueprints/envelope.py."""


api = GatewayApi()

# Flask-Limiter on the shared Redis (RATELIMIT_STORAGE_URI): the per-IP admin limit as a shared
# route limit, and the ``limits`` strategy that names and counts every other window (auth
# failures; the /v1 windows, which one Lua call counts with the same keys and arithmetic).
# Redis errors are swallowed: limits fail open, as the rest of the gateway's Redis checks do.
limiter = Limiter(key_func=get_remote_address, strategy="fixed-window", headers_enabled=False, swallow_errors=True)
