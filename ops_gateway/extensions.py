"""Module-level extension objects, bound to an app in ``create_app``."""

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


api = GatewayApi()
